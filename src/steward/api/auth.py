"""Who calls: a bearer token (``Authorization: Bearer stw_…``) names the user and the scope.

Every endpoint but the health checks and the API's description needs one; a missing,
unknown, revoked or expired token is 401 with a problem document."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Header, Request

from steward.db.session import Database
from steward.errors import Detail, Forbidden, Unauthenticated
from steward.services import tokens
from steward.services.access import without_admin
from steward.services.tokens import Caller


def database(request: Request) -> Database:
    db = request.app.state.db
    assert isinstance(db, Database)
    return db


def current_caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    if not authorization:
        raise Unauthenticated(
            "sign in: send Authorization: Bearer TOKEN (make one with `steward token create`)",
            [Detail("missing", field="Authorization")],
        )
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthenticated(
            "only bearer tokens are accepted",
            [Detail("not a bearer token", field="Authorization", accepted="Bearer stw_…")],
        )
    return tokens.authenticate(database(request), credentials)


def scoped(caller: Caller) -> AbstractContextManager[None]:
    """Services run as the caller's token allows: without the ``admin`` scope, an
    administrator's token has no administrator's powers."""
    return without_admin(caller.scope != "admin")


def require_write(caller: Caller) -> None:
    if not caller.may_write():
        raise Forbidden(
            f"this token may only read (scope {caller.scope}); make one with --scope write",
            [Detail("read-only token", field="scope", value=caller.scope, accepted="write, admin")],
        )
