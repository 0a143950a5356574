"""Personal API tokens: ``/api/v1/tokens`` — what ``steward token create|list|revoke`` do.

A token never makes a stronger one: making a token takes a ``write`` token (or a browser
session), and the new token's scope is at most the caller's (``admin`` only from an ``admin``
token). Lists never show a secret; the new token's is answered once, with ``no-store``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.api.accounts import lifetime_of
from steward.api.auth import Presented, database, require_write, signed_in
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.errors import Detail, Forbidden
from steward.services import tokens
from steward.services.tokens import SCOPES, NewToken, TokenView

router = APIRouter(tags=["tokens"])
BASE = "/api/v1/tokens"

TokenId = Annotated[str, Path(max_length=64, description="The token's id (tok_…).")]


class TokenRequest(BaseModel):
    """A new token, as `steward token create` takes it."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["read", "write", "admin"] = Field(
        "read", description="read (look only), write (also act), admin (administrators)."
    )
    expires: str = Field("90d", max_length=20, description="How long it works: 1m to 366d.")
    name: str = Field("", max_length=200, description="What it is for, shown in lists.")
    user: str | None = Field(
        None, max_length=64, description="Make it for this user (administrators only)."
    )


def _no_stronger(scope: str, caller_scope: str) -> None:
    if SCOPES.index(scope) > SCOPES.index(caller_scope):
        raise Forbidden(
            f"a {caller_scope} token cannot make a {scope} token",
            [
                Detail(
                    "stronger than the caller's",
                    field="scope",
                    value=scope,
                    accepted=", ".join(SCOPES[: SCOPES.index(caller_scope) + 1]),
                )
            ],
        )


@router.post(
    BASE,
    response_model=NewToken,
    status_code=201,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="Make a personal API token (shown once; at most your own token's scope)",
    operation_id="create_token",
)
def create_token(
    request: Request,
    response: Response,
    presented: Presented,
    body: Annotated[TokenRequest, Body()],
) -> NewToken:
    lifetime = lifetime_of(body.expires)
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        _no_stronger(body.scope, caller.scope)
        made = tokens.create(
            database(request),
            actor=caller.user_id,
            scope=body.scope,
            expires_in=lifetime,
            name=body.name,
            user=body.user,
        )
    response.headers["Location"] = f"{BASE}/{made.token.id}"
    return made


@router.get(
    BASE,
    response_model=list[TokenView],
    responses=documented(401, 422, 503),
    summary="Your tokens, newest first (everyone's, to an administrator's admin token)",
    operation_id="list_tokens",
)
def list_tokens(
    request: Request,
    presented: Presented,
    everyone: Annotated[
        bool, Query(alias="all", description="Every user's tokens (administrators only).")
    ] = False,
) -> list[TokenView]:
    with signed_in(request, presented) as caller:
        _only(request, {"all"})
        return tokens.list_tokens(database(request), actor=caller.user_id, everyone=everyone)


@router.post(
    BASE + "/{token_id}:revoke",
    response_model=TokenView,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="Stop a token at once (yours, or anyone's for administrators)",
    operation_id="revoke_token",
)
def revoke_token(request: Request, presented: Presented, token_id: TokenId) -> TokenView:
    """Revoking it again changes nothing; a token you may not see does not exist."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        return tokens.revoke(database(request), actor=caller.user_id, token_id=token_id)
