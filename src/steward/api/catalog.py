"""A project's access requirements and folder tree: ``/api/v1/projects/{id}/requirements``
and ``…/tree`` — what ``steward requirement …``, ``steward folder`` and ``steward tree`` do.

Members read them; stewards and administrators change them (with a write token). Who may do
what, and the audit of refusals, are :mod:`steward.services.catalog`'s.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import Presented, database, require_write, signed_in
from steward.api.problems import documented
from steward.api.projects import ProjectId
from steward.api.subjects import _only
from steward.services import catalog
from steward.services.catalog import KINDS, RequirementView, TreeNode

router = APIRouter(tags=["access requirements and folders"])


class NewRequirement(BaseModel):
    """An access requirement, as `steward requirement add` takes it; sending an existing
    name again updates its kind and description and attaches more folders."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: str = Field("controlled", max_length=32, description=" or ".join(KINDS))
    description: str = Field("", max_length=20_000, description="What a requester must do.")
    folders: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Folders (datasets) it governs, e.g. raw/wgs.",
    )


class NewFolder(BaseModel):
    """A folder (dataset) of the project, as `steward folder` takes it; its parents are
    registered with it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(max_length=1000, description="Relative path, e.g. raw/wgs/batch-3.")
    requirement: str | None = Field(
        None,
        max_length=200,
        description="The requirement that governs it by name (default: its parent's).",
    )


class FolderView(BaseModel):
    project: str
    path: str = Field(description="The path as registered (normalised).")
    requirement: str | None


@router.get(
    "/api/v1/projects/{project_id}/requirements",
    response_model=list[RequirementView],
    responses=documented(401, 403, 404, 422, 503),
    summary="A project's access requirements and the folders each governs",
    operation_id="list_requirements",
)
def list_requirements(
    request: Request, presented: Presented, project_id: ProjectId
) -> list[RequirementView]:
    with signed_in(request, presented) as caller:
        _only(request, set())
        return catalog.list_requirements(
            database(request), actor=caller.user_id, project=project_id
        )


@router.post(
    "/api/v1/projects/{project_id}/requirements",
    response_model=RequirementView,
    status_code=201,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="Add (or update) an access requirement and attach it to folders",
    operation_id="add_requirement",
)
def add_requirement(
    request: Request,
    presented: Presented,
    project_id: ProjectId,
    body: Annotated[NewRequirement, Body()],
) -> RequirementView:
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        return catalog.add_requirement(
            database(request),
            actor=caller.user_id,
            project=project_id,
            name=body.name,
            kind=body.kind,
            description=body.description,
            folders=body.folders,
        )


@router.get(
    "/api/v1/projects/{project_id}/tree",
    response_model=TreeNode,
    responses=documented(401, 403, 404, 422, 503),
    summary="The project's folder tree with the requirement governing each folder",
    operation_id="folder_tree",
)
def tree(request: Request, presented: Presented, project_id: ProjectId) -> TreeNode:
    """The root is the project; each folder names its requirement and whether it is its own
    or inherited from a parent (`requirement` null: open)."""
    with signed_in(request, presented) as caller:
        _only(request, set())
        return catalog.tree(database(request), actor=caller.user_id, project=project_id)


@router.post(
    "/api/v1/projects/{project_id}/tree",
    response_model=FolderView,
    status_code=201,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="Register a folder (dataset) of the project",
    operation_id="add_folder",
)
def add_folder(
    request: Request,
    presented: Presented,
    project_id: ProjectId,
    body: Annotated[NewFolder, Body()],
) -> FolderView:
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        path = catalog.add_folder(
            database(request),
            actor=caller.user_id,
            project=project_id,
            path=body.path,
            requirement=body.requirement,
        )
    return FolderView(project=project_id, path=path, requirement=body.requirement)
