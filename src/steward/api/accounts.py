"""Signing in with a password: for a personal token (``POST /api/v1/auth/token``, what
``steward login`` calls) or for a browser session (``/api/v1/session``: a cookie and a CSRF
token).

Both sign-ins answer every refusal with the same 401, whether the user exists or not, and are
rate-limited per account and per client address (429 with ``Retry-After``): see
:mod:`steward.services.accounts`. The session cookie is ``HttpOnly``, ``SameSite=Lax``,
``Path=/``, ``Secure`` when the server is reached over https (the request, or
``STEWARD_PUBLIC_URL``), and expires with the session (``STEWARD_SESSION_LIFETIME``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Cookie, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import (
    Presented,
    SessionCookie,
    database,
    require_write,
    settings_of,
    signed_in,
)
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.errors import Detail, ValidationFailed
from steward.services import accounts, sessions, tokens
from steward.services.sessions import SessionView, Whoami
from steward.services.tokens import NewToken
from steward.timeutil import parse_duration

router = APIRouter(tags=["signing in"])
ANONYMOUS: dict[str, Any] = {"security": []}
"""For the description: these calls need no token (they are how one gets one)."""


class PasswordSignIn(BaseModel):
    """A user name and their password (set with `steward user passwd`)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=64, description="Your user name.")
    password: str = Field(min_length=1, max_length=accounts.MAX_LENGTH)


class TokenSignIn(PasswordSignIn):
    """A password sign-in for a new personal API token, as `steward token create` makes."""

    scope: Literal["read", "write"] = Field(
        "write", description="read (look only) or write (also act)."
    )
    expires: str = Field(
        "90d", max_length=20, description="How long it works: 90d, 12h, 2w (1m to 366d)."
    )
    name: str = Field("", max_length=200, description="What it is for, shown in token lists.")


def client_address(request: Request) -> str:
    """The client's address (behind a proxy on this machine, uvicorn takes it from
    ``X-Forwarded-For``)."""
    return request.client.host if request.client is not None else "unknown"


def secure(request: Request) -> bool:
    public = settings_of(request).public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def keep_session(request: Request, response: Response, cookie: str, lifetime: timedelta) -> None:
    """The browser keeps the session: HttpOnly (no script reads it), SameSite=Lax (no other
    site's form sends it), Secure over https, for the session's lifetime."""
    response.set_cookie(
        sessions.COOKIE,
        cookie,
        max_age=int(lifetime.total_seconds()),
        path="/",
        secure=secure(request),
        httponly=True,
        samesite="lax",
    )


def lifetime_of(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError:
        raise ValidationFailed(
            f"expires {text!r} is not a duration",
            [Detail("not a duration", field="expires", value=text, accepted="e.g. 12h, 90d, 2w")],
        ) from None


@router.post(
    "/api/v1/auth/token",
    response_model=NewToken,
    status_code=201,
    responses=documented(401, 413, 415, 422, 429, 503),
    summary="Sign in with a password for a new personal API token (shown once)",
    operation_id="sign_in_for_token",
    openapi_extra=ANONYMOUS,
)
def sign_in_for_token(request: Request, body: Annotated[TokenSignIn, Body()]) -> NewToken:
    """The token is made exactly as `steward token create` makes it (stored as a hash,
    audited) and answered once, in `secret`."""
    lifetime = lifetime_of(body.expires)  # refused before the password is looked at
    db = database(request)
    who = accounts.login(
        db, user=body.user, password=body.password, address=client_address(request)
    )
    return tokens.create(
        db,
        actor=who.user_id,
        scope=body.scope,
        expires_in=lifetime,
        name=body.name or "signed in with a password",
    )


@router.post(
    "/api/v1/session",
    response_model=Whoami,
    status_code=201,
    responses=documented(401, 413, 415, 422, 429, 503),
    summary="Sign a browser in with a password: a session cookie and its CSRF token",
    operation_id="start_session",
    openapi_extra=ANONYMOUS,
)
def start_session(
    request: Request, response: Response, body: Annotated[PasswordSignIn, Body()]
) -> Whoami:
    """Sets the `steward_session` cookie (HttpOnly, SameSite=Lax) and answers its
    `csrf_token`: send it as `X-CSRF-Token` with every call that changes something."""
    db = database(request)
    lifetime = settings_of(request).session_duration
    who = accounts.login(
        db, user=body.user, password=body.password, address=client_address(request)
    )
    new = sessions.start(db, user_id=who.user_id, lifetime=lifetime)
    keep_session(request, response, new.cookie, lifetime)
    return Whoami(
        user=who.user_id,
        display_name=who.display_name,
        is_admin=who.is_admin,
        scope="admin" if who.is_admin else "write",
        via="session",
        expires_at=new.session.expires_at,
        csrf_token=new.csrf_token,
    )


@router.get(
    "/api/v1/session",
    response_model=Whoami,
    responses=documented(401, 503),
    summary="Who you are (with a session: its CSRF token)",
    operation_id="current_session",
)
def current_session(request: Request, presented: Presented) -> Whoami:
    """Also answers for a bearer token (`via: token`, no CSRF token)."""
    cookie = presented.cookie if isinstance(presented, SessionCookie) else None
    with signed_in(request, presented) as caller:
        return sessions.whoami(database(request), caller, cookie=cookie)


@router.delete(
    "/api/v1/session",
    status_code=204,
    responses=documented(403, 503),
    summary="Sign the browser out: its session ends now",
    operation_id="end_session",
)
def end_session(
    request: Request,
    session: Annotated[str | None, Cookie(alias=sessions.COOKIE, include_in_schema=False)] = None,
    csrf: Annotated[str | None, Header(alias=sessions.CSRF_HEADER, include_in_schema=False)] = None,
) -> Response:
    """A live session needs its `X-CSRF-Token` (403 without); with no session, or one that
    has already ended, there is nothing to do. The cookie is cleared either way."""
    if session:
        sessions.end(database(request), session, csrf=csrf)
    answer = Response(status_code=204)
    answer.delete_cookie(
        sessions.COOKIE, path="/", secure=secure(request), httponly=True, samesite="lax"
    )
    return answer


@router.get(
    "/api/v1/sessions",
    response_model=list[SessionView],
    responses=documented(401, 422, 503),
    summary="Your browser sessions, newest first (everyone's, to an administrator)",
    operation_id="list_sessions",
)
def list_sessions(
    request: Request,
    presented: Presented,
    everyone: Annotated[
        bool, Query(alias="all", description="Every user's sessions (administrators only).")
    ] = False,
) -> list[SessionView]:
    """Where you are signed in: to end a session you do not recognise."""
    with signed_in(request, presented) as caller:
        _only(request, {"all"})
        return sessions.list_sessions(database(request), actor=caller.user_id, everyone=everyone)


@router.post(
    "/api/v1/sessions/{session_id}:revoke",
    response_model=SessionView,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="End a browser session now (yours, or anyone's for administrators)",
    operation_id="revoke_session",
)
def revoke_session(
    request: Request,
    presented: Presented,
    session_id: Annotated[str, Path(max_length=64, description="The session's id (ses_…).")],
) -> SessionView:
    """Ending it again changes nothing; a session you may not see does not exist."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        return sessions.revoke(database(request), actor=caller.user_id, session_id=session_id)
