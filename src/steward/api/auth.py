"""Who calls: a bearer token (``Authorization: Bearer stw_…``) or a browser session cookie
(``steward_session``, from ``POST /api/v1/session``) names the user and what they may do.

Every endpoint but the health checks, the API's description and signing in needs one; a
missing, unknown, revoked or expired token or session is 401 with a problem document. A call
with the cookie that changes something (any method but GET, HEAD and OPTIONS) must also send
the session's CSRF token as ``X-CSRF-Token``, else 403: another site can make a browser send
the cookie, but cannot read the token. A bearer token needs no CSRF token (browsers never add
one by themselves) and, when both are sent, the token is what counts.

The headers and the cookie are read by a dependency (on the event loop, no database); the
token or session is checked in the endpoint's own thread by :func:`signed_in`, inside the
read the endpoint answers from — one snapshot, one connection and one BEGIN/COMMIT for the
whole call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Annotated

from fastapi import Cookie, Depends, Header, Request

from steward.config import Settings
from steward.db.session import Database
from steward.errors import ConfigurationError, Detail, Forbidden, Unauthenticated
from steward.services import sessions, tokens
from steward.services.access import without_admin
from steward.services.tokens import Caller

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def database(request: Request) -> Database:
    db = request.app.state.db
    assert isinstance(db, Database)
    return db


def settings_of(request: Request) -> Settings:
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    return settings


def public_url(request: Request) -> str:
    """This Steward's configured address (``STEWARD_PUBLIC_URL``, else the one it listens
    on) — never the request's ``Host`` header, which the caller chooses."""
    url = request.app.state.public_url
    if not url:
        raise ConfigurationError(
            "this server does not know its public address: set STEWARD_PUBLIC_URL",
            [Detail("not set", field="STEWARD_PUBLIC_URL", accepted="https://steward.example.org")],
        )
    return str(url)


@dataclass(frozen=True)
class Bearer:
    """The token a call presents, not yet checked."""

    token: str


@dataclass(frozen=True)
class SessionCookie:
    """The session cookie a call presents, not yet checked, with the CSRF token it sent."""

    cookie: str
    csrf: str | None
    changes_state: bool


Credentials = Bearer | SessionCookie


async def credentials(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    session: Annotated[str | None, Cookie(alias=sessions.COOKIE, include_in_schema=False)] = None,
    csrf: Annotated[str | None, Header(alias=sessions.CSRF_HEADER, include_in_schema=False)] = None,
) -> Credentials:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "only bearer tokens are accepted",
                [Detail("not a bearer token", field="Authorization", accepted="Bearer stw_…")],
            )
        return Bearer(token)
    if session:
        return SessionCookie(session, csrf, request.method.upper() not in SAFE_METHODS)
    raise Unauthenticated(
        "sign in: send Authorization: Bearer TOKEN (make one with `steward token create`), "
        "or sign in with POST /api/v1/session",
        [Detail("missing", field="Authorization")],
    )


Presented = Annotated[Credentials, Depends(credentials)]


@contextmanager
def signed_in(request: Request, presented: Credentials, *, hold: bool = True) -> Iterator[Caller]:
    """The caller the token or session stands for, with the powers its scope allows: without
    ``admin``, an administrator's token has no administrator's powers (a session has its
    user's: ``admin`` for administrators, else ``write``). ``hold`` keeps the read the
    credentials were checked in open for the services called inside (all but commands, which
    write in their own transaction)."""
    db = database(request)
    with db.read() if hold else nullcontext():
        if isinstance(presented, Bearer):
            caller = tokens.authenticate(db, presented.token)
        else:
            caller = sessions.authenticate(db, presented.cookie)
            if presented.changes_state:
                sessions.check_csrf(presented.cookie, presented.csrf)
        with without_admin(caller.scope != "admin"):
            yield caller


def require_write(caller: Caller) -> None:
    if not caller.may_write():
        raise Forbidden(
            f"this token may only read (scope {caller.scope}); make one with --scope write",
            [Detail("read-only token", field="scope", value=caller.scope, accepted="write, admin")],
        )


def require_admin_scope(caller: Caller) -> None:
    """Administration (users, projects) needs an administrator's ``admin`` token: without
    it an administrator's token has no administrator's powers, so say which is missing.
    Anyone else hears what the service says (not an administrator), as on the CLI."""
    if caller.is_admin and caller.scope != "admin":
        raise Forbidden(
            f"administering needs an administrator's token of scope admin (this one is "
            f"{caller.scope}); an administrator makes one with --scope admin",
            [Detail("not an admin token", field="scope", value=caller.scope, accepted="admin")],
        )
