"""Personal API tokens: created by their owner, shown once, scoped, expiring, revocable.

A token reads ``stw_<id>_<secret>``: the id finds the row, the secret is checked against its
SHA-256 in constant time. Only the hash is stored, so a copy of the database gives nobody a
working token. A token never grants more than its owner has: its scope only narrows (``read``:
look; ``write``: also act; ``admin``: also administer, for administrators only).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from steward.db.models import ApiToken, AuditEntry, User
from steward.db.session import Database
from steward.errors import Detail, Unauthenticated, ValidationFailed
from steward.ids import new_id
from steward.services.access import audited, hold_caller, not_found, require_user, touch
from steward.timeutil import utcnow

SCOPES = ("read", "write", "admin")
PREFIX = "stw"
LONGEST = timedelta(days=366)
"""Tokens expire within a year: a forgotten one stops working by itself."""
TOUCH_EVERY = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per token, so reads stay reads."""


class TokenView(BaseModel):
    """What anyone may see of a token: never its secret."""

    id: str
    user_id: str
    name: str
    scope: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class NewToken(BaseModel):
    token: TokenView
    secret: str
    """The whole token to pass as ``Authorization: Bearer …``; shown once, kept nowhere."""


@dataclass(frozen=True)
class Caller:
    """Who an API call comes from, and what their token lets them do."""

    user_id: str
    scope: str
    token_id: str
    """The token's id (``tok_…``), or the browser session's (``ses_…``)."""
    expires_at: datetime | None = None
    """When the token or session stops working."""
    is_admin: bool = False
    """Whether the user is an administrator (whatever the token's scope lets them do)."""

    def may_write(self) -> bool:
        return self.scope in ("write", "admin")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _same(digest: str, secret: str) -> bool:
    return hmac.compare_digest(digest, _digest(secret))


def _view(row: ApiToken) -> TokenView:
    return TokenView.model_validate(row, from_attributes=True)


def _audit(s: Session, actor: str, action: str, token: ApiToken) -> None:
    s.add(
        AuditEntry(
            at=utcnow(),
            actor=actor,
            subject_kind="api_token",
            subject_id=token.id,
            action=action,
            outcome="done",
            reason=f"{token.scope} token {token.name!r} of {token.user_id}",
        )
    )


def create(
    db: Database,
    *,
    actor: str | None,
    scope: str,
    expires_in: timedelta,
    name: str = "",
    user: str | None = None,
) -> NewToken:
    """A new token for ``actor`` (or, by an administrator, for ``user``)."""
    problems = []
    if scope not in SCOPES:
        problems.append(
            Detail("unknown scope", field="scope", value=scope, accepted=", ".join(SCOPES))
        )
    if not timedelta(minutes=1) <= expires_in <= LONGEST:
        problems.append(
            Detail("out of range", field="expires", value=str(expires_in), accepted="1m to 366d")
        )
    if len(name) > 200:
        problems.append(
            Detail("too long", field="name", value=name[:40], accepted="200 characters")
        )
    if problems:
        raise ValidationFailed("the token cannot be made", problems)
    with audited(db, actor=actor, action="token-create"), db.transaction() as s:
        me = require_user(s, actor)
        owner = me if user in (None, me.id) else _other_user(s, me, user)
        if scope == "admin" and not owner.is_admin:
            raise ValidationFailed(
                f"{owner.id} is not an administrator: an admin-scoped token would grant nothing "
                "more than a write token",
                [
                    Detail(
                        "needs an administrator", field="scope", value=scope, accepted="read, write"
                    )
                ],
            )
        raw = secrets.token_urlsafe(32)
        now = utcnow()
        row = ApiToken(
            id=new_id("api_token"),
            user_id=owner.id,
            name=name,
            scope=scope,
            secret_sha256=_digest(raw),
            created_at=now,
            expires_at=now + expires_in,
            last_used_at=None,
            revoked_at=None,
            revoked_by=None,
        )
        s.add(row)
        _audit(s, me.id, "token-create", row)
        s.flush()
        return NewToken(token=_view(row), secret=f"{PREFIX}_{row.id.removeprefix('tok_')}_{raw}")


def _other_user(s: Session, me: User, user_id: str | None) -> User:
    from steward.errors import Forbidden

    if not me.is_admin:
        raise Forbidden(
            f"{me.id} may not make tokens for {user_id}: only administrators may",
            [Detail("needs admin", field="user", value=user_id)],
        )
    other = s.get(User, user_id)
    if other is None:
        raise not_found("user", "user", str(user_id))
    return other


def list_tokens(db: Database, *, actor: str | None, everyone: bool = False) -> list[TokenView]:
    """The caller's tokens (an administrator's ``everyone``: all), newest first."""
    with db.read() as s:
        me = require_user(s, actor)
        q = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        if not (everyone and me.is_admin):
            q = q.where(ApiToken.user_id == me.id)
        return [_view(r) for r in s.scalars(q)]


def revoke(db: Database, *, actor: str | None, token_id: str) -> TokenView:
    """Stop a token at once (its owner's or, for an administrator, anyone's). Revoking it
    again changes nothing."""
    with audited(db, actor=actor, action="token-revoke", subject_kind="api_token",
                 subject_id=token_id), db.transaction() as s:  # fmt: skip
        me = require_user(s, actor)
        row = s.get(ApiToken, token_id)
        if row is None or not (me.is_admin or row.user_id == me.id):
            raise not_found("token", "token", token_id, reason=None if row is None else
                            f"{me.id} may not revoke {row.user_id}'s token")  # fmt: skip
        if row.revoked_at is None:
            row.revoked_at, row.revoked_by = utcnow(), me.id
            _audit(s, me.id, "token-revoke", row)
        return _view(row)


_INVALID = "the token is not valid: make one with `steward token create`"
_TOKEN_AND_OWNER = (
    select(ApiToken, User)
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.id == bindparam("token_id"))
)
"""Built once: every API call runs it, and building a statement costs more than running it."""


def authenticate(db: Database, presented: str) -> Caller:
    """The caller a bearer token stands for, or ``Unauthenticated`` (the same words for an
    unknown id and a wrong secret, so ids cannot be probed)."""
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise Unauthenticated(
            _INVALID, [Detail("malformed", field="Authorization", accepted="Bearer stw_…")]
        )
    token_id, secret = f"tok_{parts[1]}", parts[2]
    now = utcnow()
    with db.read() as s:
        # The owner comes with the token: in the read the API answers from, the services'
        # own look-up of the caller finds it there instead of asking the database again.
        found = s.execute(_TOKEN_AND_OWNER, {"token_id": token_id}).first()
        row, owner = (found[0], found[1]) if found is not None else (None, None)
        if owner is not None:
            hold_caller(s, owner)
        if row is None or owner is None or not _same(row.secret_sha256, secret):
            raise Unauthenticated(_INVALID, [Detail("unknown token", field="Authorization")])
        if row.revoked_at is not None:
            raise Unauthenticated(
                f"this token was revoked on {row.revoked_at:%Y-%m-%d %H:%M} UTC",
                [Detail("revoked", field="Authorization")],
            )
        if row.expires_at <= now:
            raise Unauthenticated(
                f"this token expired on {row.expires_at:%Y-%m-%d %H:%M} UTC; make a new one",
                [Detail("expired", field="Authorization")],
            )
        if owner.disabled_at is not None:
            raise Unauthenticated(
                f"the account {row.user_id!r} is disabled: its tokens do not work until an "
                "administrator enables it",
                [Detail("disabled user", field="Authorization")],
            )
        caller = Caller(
            user_id=row.user_id,
            scope=row.scope,
            token_id=row.id,
            expires_at=row.expires_at,
            is_admin=owner.is_admin,
        )
        stale = row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY
    if stale:
        touch(db, ApiToken, token_id, "last_used_at", now)
    return caller
