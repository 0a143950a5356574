"""People: ``/api/v1/users`` — what ``steward user …`` does.

An administrator's ``admin`` token sees every user; anyone else sees only themselves, and to
them every other user does not exist (the same "not found" as for an unknown name). Adding a
user takes an ``admin`` token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import Presented, database, require_admin_scope, signed_in
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.services import access
from steward.services.access import UserView

router = APIRouter(tags=["users"])


class NewUser(BaseModel):
    """A user, as `steward user add` takes it; sending an existing name again updates the
    display name and e-mail given (and may make them an administrator, never the reverse)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        max_length=64, description="Login name: lower-case letters, digits, '.', '_', '-'."
    )
    display_name: str = Field("", max_length=200, description="Default: the login name.")
    email: str = Field("", max_length=320)
    admin: bool = Field(False, description="Make the user an administrator.")


@router.get(
    "/api/v1/users",
    response_model=list[UserView],
    responses=documented(401, 422, 503),
    summary="Users: all of them to an administrator's admin token; else only yourself",
    operation_id="list_users",
)
def list_users(request: Request, presented: Presented) -> list[UserView]:
    with signed_in(request, presented) as caller:
        _only(request, set())
        return access.visible_users(database(request), actor=caller.user_id)


@router.get(
    "/api/v1/users/{user_id}",
    response_model=UserView,
    responses=documented(401, 404, 422, 503),
    summary="One user (yourself, or anyone to an administrator)",
    operation_id="get_user",
)
def get_user(
    request: Request,
    presented: Presented,
    user_id: Annotated[str, Path(max_length=64)],
) -> UserView:
    with signed_in(request, presented) as caller:
        _only(request, set())
        return access.get_user(database(request), actor=caller.user_id, user_id=user_id)


@router.post(
    "/api/v1/users",
    response_model=UserView,
    status_code=201,
    responses=documented(401, 403, 413, 415, 422, 503),
    summary="Add (or update) a user (administrators, with an admin token)",
    operation_id="add_user",
)
def add_user(
    request: Request,
    response: Response,
    presented: Presented,
    body: Annotated[NewUser, Body()],
) -> UserView:
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_admin_scope(caller)
        view = access.add_user(
            database(request),
            actor=caller.user_id,
            user_id=body.id,
            display_name=body.display_name,
            email=body.email,
            admin=body.admin,
        )
    response.headers["Location"] = f"/api/v1/users/{view.id}"
    return view
