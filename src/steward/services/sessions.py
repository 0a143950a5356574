"""Browser sessions: what signing in to the server with a password gives a browser.

The session cookie reads ``ses_<id>.<secret>``: the id finds the row, the secret (256 random
bits) is checked against its SHA-256 in constant time; only the hash is stored. The CSRF token
is derived from the secret (an HMAC), so it is stored nowhere and only someone who holds the
cookie's value — or was given the token by the server — can know it. A session lasts
``session_lifetime`` from sign-in, ends when its user signs out, is disabled or gets a new
password, and acts with the user's own powers: ``write``, or ``admin`` for administrators.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.db.models import AuditEntry, BrowserSession, User
from steward.db.session import Database
from steward.errors import Detail, Forbidden, Unauthenticated
from steward.ids import new_id
from steward.services.access import audited, hold_caller, not_found, require_user, touch
from steward.services.tokens import Caller
from steward.timeutil import utcnow

COOKIE = "steward_session"
CSRF_HEADER = "X-CSRF-Token"
TOUCH_EVERY = timedelta(minutes=1)
"""``last_seen_at`` is written at most this often per session, so reads stay reads."""


class SessionView(BaseModel):
    """A session as its user sees it: never its secret."""

    id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None


class NewSession(BaseModel):
    session: SessionView
    cookie: str
    """The cookie's value; set once, kept by the browser, stored nowhere here."""
    csrf_token: str
    """Send as ``X-CSRF-Token`` with every call that changes something."""


class Whoami(BaseModel):
    """Who a call is made as, and how."""

    user: str
    display_name: str
    is_admin: bool
    """The user is an administrator (their powers in this call: ``scope``)."""
    scope: str
    """read, write or admin: what this call may do."""
    via: Literal["token", "session"]
    expires_at: datetime | None
    """When the token or session stops working."""
    csrf_token: str | None
    """For a session: send it as ``X-CSRF-Token`` with every call that changes something."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(cookie: str) -> str:
    """The CSRF token of the session whose cookie is ``cookie``."""
    mac = hmac.new(cookie.encode(), b"steward csrf token v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def check_csrf(cookie: str, sent: str | None) -> None:
    """Refuse (403) a state-changing call made with the cookie but without its CSRF token:
    another site can make a browser send the cookie, but cannot read the token."""
    if not sent or not hmac.compare_digest(csrf_token(cookie).encode(), sent.strip().encode()):
        raise Forbidden(
            f"a call that changes something with a session cookie needs the {CSRF_HEADER} "
            "header (the csrf_token from signing in, or from GET /api/v1/session)",
            [
                Detail(
                    "missing" if not sent else "does not match",
                    field=CSRF_HEADER,
                    accepted="the session's csrf_token",
                )
            ],
        )


def start(db: Database, *, user_id: str, lifetime: timedelta) -> NewSession:
    """A new session for ``user_id``, who has just proved who they are."""
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    with db.transaction() as s:
        row = BrowserSession(
            id=new_id("browser_session"),
            user_id=user_id,
            secret_sha256=_digest(raw),
            created_at=now,
            expires_at=now + lifetime,
            last_seen_at=now,
            revoked_at=None,
        )
        s.add(row)
        s.flush()
        view = SessionView.model_validate(row, from_attributes=True)
    cookie = f"{row.id}.{raw}"
    return NewSession(session=view, cookie=cookie, csrf_token=csrf_token(cookie))


_INVALID = "the session is not valid: sign in again"


def _split(cookie: str) -> tuple[str, str]:
    session_id, _, secret = cookie.strip().partition(".")
    if not session_id.startswith("ses_") or not secret or len(cookie) > 200:
        raise Unauthenticated(_INVALID, [Detail("malformed", field=COOKIE)])
    return session_id, secret


def _find(s: Session, cookie: str) -> tuple[BrowserSession, User]:
    """The session the cookie stands for and its user, if the secret is right."""
    session_id, secret = _split(cookie)
    found = s.execute(
        select(BrowserSession, User)
        .join(User, User.id == BrowserSession.user_id)
        .where(BrowserSession.id == session_id)
    ).first()
    if found is None or not hmac.compare_digest(found[0].secret_sha256, _digest(secret)):
        raise Unauthenticated(_INVALID, [Detail("unknown session", field=COOKIE)])
    return found[0], found[1]


def authenticate(db: Database, cookie: str) -> Caller:
    """The caller a session cookie stands for, or ``Unauthenticated``: an unknown id and a
    wrong secret read the same; an ended, expired or disabled user's session says so."""
    now = utcnow()
    with db.read() as s:
        row, user = _find(s, cookie)
        hold_caller(s, user)
        if row.revoked_at is not None:
            raise Unauthenticated(
                "this session has ended (signed out); sign in again",
                [Detail("ended", field=COOKIE)],
            )
        if row.expires_at <= now:
            raise Unauthenticated(
                f"this session expired on {row.expires_at:%Y-%m-%d %H:%M} UTC; sign in again",
                [Detail("expired", field=COOKIE)],
            )
        if user.disabled_at is not None:
            raise Unauthenticated(
                f"the account {user.id!r} is disabled", [Detail("disabled user", field=COOKIE)]
            )
        caller = Caller(
            user_id=user.id,
            scope="admin" if user.is_admin else "write",
            token_id=row.id,
            expires_at=row.expires_at,
            is_admin=user.is_admin,
        )
        stale = now - row.last_seen_at >= TOUCH_EVERY
    if stale:
        touch(db, BrowserSession, row.id, "last_seen_at", now)
    return caller


def end(db: Database, cookie: str, *, csrf: str | None) -> bool:
    """Sign out: the session stops working now. A live session needs its CSRF token (so no
    other site can sign its user out); False when the cookie names no live session (ended,
    expired, or not one at all): nothing to do."""
    try:
        session_id, secret = _split(cookie)
    except Unauthenticated:
        return False
    with db.transaction() as s:
        row = s.get(BrowserSession, session_id)
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return False
        if row.revoked_at is not None or row.expires_at <= utcnow():
            return False
        check_csrf(cookie, csrf)
        row.revoked_at = utcnow()
        return True


def whoami(db: Database, caller: Caller, *, cookie: str | None) -> Whoami:
    """Who ``caller`` is; ``cookie`` when they came with a session (for its CSRF token)."""
    with db.read() as s:
        user = s.get(User, caller.user_id)
        if user is None:  # deleted under a live token: as if the token were unknown
            raise Unauthenticated(_INVALID, [Detail("unknown user", field="user")])
        return Whoami(
            user=user.id,
            display_name=user.display_name,
            is_admin=user.is_admin,
            scope=caller.scope,
            via="session" if cookie is not None else "token",
            expires_at=caller.expires_at,
            csrf_token=csrf_token(cookie) if cookie is not None else None,
        )


SHOWN = 500
"""Sessions a list shows, newest first: a year of daily sign-ins, and never unbounded."""


def list_sessions(db: Database, *, actor: str | None, everyone: bool = False) -> list[SessionView]:
    """The caller's browser sessions, newest first, live and ended (an administrator's
    ``everyone``: all users'): where one is signed in, to end what is not theirs."""
    with db.read() as s:
        me = require_user(s, actor)
        q = select(BrowserSession).order_by(
            BrowserSession.created_at.desc(), BrowserSession.id.desc()
        )
        if not (everyone and me.is_admin):
            q = q.where(BrowserSession.user_id == me.id)
        return [
            SessionView.model_validate(r, from_attributes=True) for r in s.scalars(q.limit(SHOWN))
        ]


def revoke(db: Database, *, actor: str | None, session_id: str) -> SessionView:
    """End a browser session now (the caller's own, or anyone's for an administrator); a
    session the caller may not see does not exist. Ending it again changes nothing."""
    with (
        audited(db, actor=actor, action="session-revoke", subject_kind="browser_session",
                subject_id=session_id[:64]),
        db.transaction() as s,
    ):  # fmt: skip
        me = require_user(s, actor)
        row = s.get(BrowserSession, session_id)
        if row is None or not (me.is_admin or row.user_id == me.id):
            raise not_found("session", "session", session_id, reason=None if row is None else
                            f"{me.id} may not end {row.user_id}'s session")  # fmt: skip
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            s.add(AuditEntry(
                at=row.revoked_at, actor=me.id, action="session-revoke", outcome="done",
                subject_kind="browser_session", subject_id=row.id,
                reason=f"session of {row.user_id}",
            ))  # fmt: skip
        return SessionView.model_validate(row, from_attributes=True)
