"""Who calls: a bearer token (``Authorization: Bearer stw_…``) names the user and the scope.

Every endpoint but the health checks and the API's description needs one; a missing,
unknown, revoked or expired token is 401 with a problem document.

The header is read by a dependency (on the event loop, no database); the token is checked in
the endpoint's own thread by :func:`signed_in`, inside the read the endpoint answers from —
one snapshot, one connection and one BEGIN/COMMIT for the whole call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from steward.db.session import Database
from steward.errors import Detail, Forbidden, Unauthenticated
from steward.services import tokens
from steward.services.access import without_admin
from steward.services.tokens import Caller


def database(request: Request) -> Database:
    db = request.app.state.db
    assert isinstance(db, Database)
    return db


@dataclass(frozen=True)
class Bearer:
    """The token a call presents, not yet checked."""

    token: str


async def bearer(
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Bearer:
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
    return Bearer(credentials)


Presented = Annotated[Bearer, Depends(bearer)]


@contextmanager
def signed_in(request: Request, presented: Bearer, *, hold: bool = True) -> Iterator[Caller]:
    """The caller the token stands for, with the powers its scope allows: without ``admin``,
    an administrator's token has no administrator's powers. ``hold`` keeps the read the
    token was checked in open for the services called inside (all but commands, which
    write in their own transaction)."""
    db = database(request)
    with db.read() if hold else nullcontext():
        caller = tokens.authenticate(db, presented.token)
        with without_admin(caller.scope != "admin"):
            yield caller


def require_write(caller: Caller) -> None:
    if not caller.may_write():
        raise Forbidden(
            f"this token may only read (scope {caller.scope}); make one with --scope write",
            [Detail("read-only token", field="scope", value=caller.scope, accepted="write, admin")],
        )
