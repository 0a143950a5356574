"""Projects and their members: ``/api/v1/projects`` — what ``steward project …`` does.

Lists answer the caller's projects (every project to an administrator's ``admin`` token); to
anyone outside a project it does not exist. Creating a project takes an ``admin`` token;
giving someone a role takes a write token of an administrator or of the project's steward,
as :func:`steward.services.access.add_member` allows.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import (
    Presented,
    database,
    require_admin_scope,
    require_write,
    signed_in,
)
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.domain.roles import ALL_ROLES
from steward.services import access
from steward.services.access import MemberView, ProjectSummary, ProjectView

router = APIRouter(tags=["projects"])

ProjectId = Annotated[str, Path(max_length=64, description="The project's short name.")]
UserId = Annotated[str, Path(max_length=64, description="The user's login name.")]


class NewProject(BaseModel):
    """A project, as `steward project create` takes it; you become its steward."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        max_length=64, description="Short name: lower-case letters, digits, '.', '_', '-'."
    )
    title: str = Field("", max_length=200, description="Full title (default: the id).")


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(max_length=32, description=", ".join(sorted(ALL_ROLES)))


@router.get(
    "/api/v1/projects",
    response_model=list[ProjectSummary],
    responses=documented(401, 422, 503),
    summary="The projects you belong to (every project, to an administrator)",
    operation_id="list_projects",
)
def list_projects(request: Request, presented: Presented) -> list[ProjectSummary]:
    with signed_in(request, presented) as caller:
        _only(request, set())
        rows = access.list_projects(database(request), actor=caller.user_id)
        return [ProjectSummary(id=pid, title=title) for pid, title in rows]


@router.get(
    "/api/v1/projects/{project_id}",
    response_model=ProjectView,
    responses=documented(401, 404, 422, 503),
    summary="One project with its members and their roles",
    operation_id="get_project",
)
def get_project(request: Request, presented: Presented, project_id: ProjectId) -> ProjectView:
    with signed_in(request, presented) as caller:
        _only(request, set())
        return access.get_project(database(request), actor=caller.user_id, project_id=project_id)


@router.post(
    "/api/v1/projects",
    response_model=ProjectView,
    status_code=201,
    responses=documented(401, 403, 413, 415, 422, 503),
    summary="Create a project (administrators, with an admin token); you become its steward",
    operation_id="create_project",
)
def create_project(
    request: Request,
    response: Response,
    presented: Presented,
    body: Annotated[NewProject, Body()],
) -> ProjectView:
    """Running it again for an existing project changes nothing and answers it."""
    db = database(request)
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_admin_scope(caller)
        pid = access.create_project(db, actor=caller.user_id, project_id=body.id, title=body.title)
        view = access.get_project(db, actor=caller.user_id, project_id=pid)
    response.headers["Location"] = f"/api/v1/projects/{pid}"
    return view


@router.put(
    "/api/v1/projects/{project_id}/members/{user_id}",
    response_model=MemberView,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="Give a user a role in a project (its stewards and administrators)",
    operation_id="add_project_member",
)
def add_member(
    request: Request,
    presented: Presented,
    project_id: ProjectId,
    user_id: UserId,
    body: Annotated[Role, Body()],
) -> MemberView:
    """Adds the role to those the user has (sending it again changes nothing); answers every
    role the user now holds in the project."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        return access.add_member(
            database(request),
            actor=caller.user_id,
            project_id=project_id,
            user_id=user_id,
            role=body.role,
        )
