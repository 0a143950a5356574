"""People: ``/api/v1/users`` — what ``steward user …`` does.

An administrator's ``admin`` token sees every user; anyone else sees only themselves, and to
them every other user does not exist (the same "not found" as for an unknown name). Adding a
user takes an ``admin`` token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.api.accounts import client_address
from steward.api.auth import Presented, database, require_admin_scope, require_write, signed_in
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.services import access, accounts
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


UserId = Annotated[str, Path(max_length=64, description="The user's login name.")]


class NewPassword(BaseModel):
    """A new password; changing your own needs your current one too (a stolen token must
    not turn into a password that outlives it)."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=accounts.MAX_LENGTH, description=accounts.PASSWORD_RULE)
    current_password: str | None = Field(
        None,
        max_length=accounts.MAX_LENGTH,
        description="Your current password, when you change your own and have one.",
    )


@router.put(
    "/api/v1/users/{user_id}/password",
    response_model=UserView,
    responses=documented(401, 403, 404, 413, 415, 422, 429, 503),
    summary="Set a password (your own, with the current one; anyone's, for administrators)",
    operation_id="set_password",
)
def set_password(
    request: Request, presented: Presented, user_id: UserId, body: Annotated[NewPassword, Body()]
) -> UserView:
    """The user's browser sessions end; their API tokens keep working."""
    db = database(request)
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        if caller.user_id == user_id:
            me = access.get_user(db, actor=caller.user_id, user_id=user_id)
            if me.has_password:
                accounts.check_current(
                    db, user_id, body.current_password, address=client_address(request)
                )
        return accounts.set_password(db, actor=caller.user_id, user_id=user_id,
                                     password=body.password)  # fmt: skip


@router.post(
    "/api/v1/users/{user_id}:disable",
    response_model=UserView,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="Disable an account: its tokens and sessions stop at once (administrators)",
    operation_id="disable_user",
)
def disable_user(request: Request, presented: Presented, user_id: UserId) -> UserView:
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_admin_scope(caller)
        return accounts.disable(database(request), actor=caller.user_id, user_id=user_id)


@router.post(
    "/api/v1/users/{user_id}:enable",
    response_model=UserView,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="Enable a disabled account again (administrators)",
    operation_id="enable_user",
)
def enable_user(request: Request, presented: Presented, user_id: UserId) -> UserView:
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_admin_scope(caller)
        return accounts.enable(database(request), actor=caller.user_id, user_id=user_id)
