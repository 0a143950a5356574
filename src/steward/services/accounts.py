"""Local accounts: passwords (argon2id), disabling and enabling users, signing in with a
password under a rate limit.

A password is hashed with argon2id (argon2-cffi's ``PasswordHasher``, RFC 9106's low-memory
profile); a hash made with older parameters is replaced at the next successful sign-in. A
password is never logged, echoed, stored in the audit log or put in an error.

Signing in (:func:`login`) answers every refusal — unknown user, wrong password, disabled
account, no password set — with the same words, after the same work (an unknown user's
password is checked against a dummy hash), so neither the answer nor its timing tells whether
an account exists. Failures are counted per account name and per client address: after
``ACCOUNT_LIMIT`` failures for one name, or ``ADDRESS_LIMIT`` from one address, within
``WINDOW``, further attempts are refused with :class:`TooManyAttempts` (and its
``retry_after``) without checking the password. An attempt counts from the moment it starts
(its row is written before the slow check and removed when it succeeds), so parallel guesses
cannot slip past the limit. Failures and lock-outs are audit entries.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from steward.db.models import AuditEntry, BrowserSession, LoginFailure, User
from steward.db.session import Database
from steward.errors import Detail, Forbidden, TooManyAttempts, Unauthenticated, ValidationFailed
from steward.services.access import (
    UserView,
    audited,
    not_found,
    require_admin,
    require_user,
)
from steward.timeutil import utcnow

MIN_LENGTH = 12
MAX_LENGTH = 1024
PASSWORD_RULE = f"{MIN_LENGTH} to {MAX_LENGTH} characters"

ACCOUNT_LIMIT = 5
"""Failed sign-ins for one account name within ``WINDOW`` after which it is locked."""
ADDRESS_LIMIT = 20
"""Failed sign-ins from one client address within ``WINDOW`` after which it is locked."""
WINDOW = timedelta(minutes=15)

HASHER = PasswordHasher()
"""argon2id with argon2-cffi's defaults (RFC 9106 low-memory: t=3, m=64 MiB, p=4)."""

REFUSED = "sign-in failed: wrong user name or password"
"""The one answer to every failed sign-in, whatever the reason."""


@dataclass(frozen=True)
class SignedIn:
    """Who signed in."""

    user_id: str
    display_name: str
    is_admin: bool


def account_view(user: User) -> UserView:
    return UserView.model_validate(user, from_attributes=True)


def check_password_rule(password: str) -> None:
    """Refuse a password that does not follow the rule, naming the rule (never the value)."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(
            f"the password is too short: it needs at least {MIN_LENGTH} characters",
            [Detail("too short", field="password", accepted=PASSWORD_RULE)],
        )
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(
            f"the password is too long: at most {MAX_LENGTH} characters",
            [Detail("too long", field="password", accepted=PASSWORD_RULE)],
        )
    if not password.strip():
        raise ValidationFailed(
            "the password is only spaces",
            [Detail("blank", field="password", accepted=PASSWORD_RULE)],
        )


def _audit(s: Session, *, actor: str, action: str, outcome: str, subject: str, reason: str) -> None:
    s.add(
        AuditEntry(
            at=utcnow(),
            actor=actor[:64],
            subject_kind="user",
            subject_id=subject[:64],
            action=action,
            outcome=outcome,
            reason=reason,
        )
    )


def _target(s: Session, user_id: str) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise not_found("user", "user", user_id)
    return user


def _end_sessions(s: Session, user_id: str) -> None:
    s.execute(
        update(BrowserSession)
        .where(BrowserSession.user_id == user_id, BrowserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def set_password(db: Database, *, actor: str | None, user_id: str, password: str) -> UserView:
    """Set ``user_id``'s password (the user themself, or an administrator). Every browser
    session of theirs ends; their API tokens keep working."""
    check_password_rule(password)
    hashed = HASHER.hash(password)  # slow on purpose: outside the transaction
    with (
        audited(db, actor=actor, action="password-set", subject_kind="user", subject_id=user_id),
        db.transaction() as s,
    ):
        me = require_user(s, actor)
        if me.id != user_id and not me.is_admin:
            raise Forbidden(
                f"{me.id} may not set {user_id}'s password: only they or an administrator may",
                [Detail("needs the user or an administrator", field="user", value=user_id)],
            )
        target = _target(s, user_id)
        first = target.password_hash is None
        target.password_hash = hashed
        _end_sessions(s, target.id)
        _audit(
            s,
            actor=me.id,
            action="password-set",
            outcome="done",
            subject=target.id,
            reason="password set" if first else "password changed",
        )
        return account_view(target)


def disable(db: Database, *, actor: str | None, user_id: str) -> UserView:
    """Disable an account (administrators only): its tokens and sessions stop working at once,
    nobody may act as it, and it cannot sign in. Disabling it again changes nothing."""
    with (
        audited(db, actor=actor, action="user-disable", subject_kind="user", subject_id=user_id),
        db.transaction() as s,
    ):
        me = require_user(s, actor)
        require_admin(me)
        target = _target(s, user_id)
        if target.id == me.id:
            raise ValidationFailed(
                "you may not disable yourself: another administrator can",
                [Detail("yourself", field="user", value=user_id, accepted="another user")],
            )
        if target.disabled_at is None:
            target.disabled_at, target.disabled_by = utcnow(), me.id
            _end_sessions(s, target.id)
            _audit(
                s,
                actor=me.id,
                action="user-disable",
                outcome="done",
                subject=target.id,
                reason="tokens suspended, sessions ended",
            )
        return account_view(target)


def enable(db: Database, *, actor: str | None, user_id: str) -> UserView:
    """Enable a disabled account again (administrators only): its unexpired, unrevoked tokens
    work again; its old browser sessions stay ended."""
    with (
        audited(db, actor=actor, action="user-enable", subject_kind="user", subject_id=user_id),
        db.transaction() as s,
    ):
        me = require_user(s, actor)
        require_admin(me)
        target = _target(s, user_id)
        if target.disabled_at is not None:
            target.disabled_at, target.disabled_by = None, None
            _audit(
                s,
                actor=me.id,
                action="user-enable",
                outcome="done",
                subject=target.id,
                reason="enabled",
            )
        return account_view(target)


# ---- signing in --------------------------------------------------------------------------
_dummy: str | None = None


def _dummy_hash() -> str:
    """A hash nobody knows the password of, for checking unknown users' passwords against."""
    global _dummy
    if _dummy is None or HASHER.check_needs_rehash(_dummy):
        _dummy = HASHER.hash(secrets.token_urlsafe(24))
    return _dummy


def _verify(stored: str | None, password: str) -> bool:
    try:
        return HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _wait(
    s: Session, column: InstrumentedAttribute[str], value: str, limit: int, now: datetime
) -> int | None:
    """Seconds until one more attempt is allowed for ``value``, or None when it is now."""
    recent: ColumnElement[bool] = LoginFailure.at > now - WINDOW
    times = s.scalars(
        select(LoginFailure.at)
        .where(column == value, recent)
        .order_by(LoginFailure.at.desc())
        .limit(limit)
    ).all()
    if len(times) < limit:
        return None
    return max(1, math.ceil((times[-1] + WINDOW - now).total_seconds()))


def _admit(db: Database, account: str, address: str) -> int:
    """Reserve an attempt (its failure row, written now) or refuse with ``TooManyAttempts``."""
    now = utcnow()
    with db.transaction() as s:
        # One attempt at a time per account and per address decides whether it may go on.
        db.serialize(s, f"login-account:{account}")
        db.serialize(s, f"login-address:{address}")
        s.execute(delete(LoginFailure).where(LoginFailure.at <= now - WINDOW))
        waits = [
            _wait(s, LoginFailure.account, account, ACCOUNT_LIMIT, now),
            _wait(s, LoginFailure.address, address, ADDRESS_LIMIT, now),
        ]
        if waits == [None, None]:
            row = LoginFailure(at=now, account=account, address=address)
            s.add(row)
            s.flush()
            return row.id
        wait = max(w for w in waits if w is not None)
        which = "the account" if waits[0] is not None else "the address"
        _audit(
            s,
            actor=account,
            action="login",
            outcome="locked-out",
            subject=account,
            reason=f"too many failed sign-ins for {which}; from {address}; retry in {wait}s",
        )
    raise TooManyAttempts(
        f"too many failed sign-ins: try again in {_in_words(wait)}",
        [Detail("locked out for now", field="user", accepted=f"a new attempt in {wait} s")],
        retry_after=wait,
    )


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def login(db: Database, *, user: str, password: str, address: str) -> SignedIn:
    """Check ``user``'s ``password`` (from client ``address``), under the rate limit.

    Every refusal but a lock-out is the same ``Unauthenticated``; a lock-out is
    ``TooManyAttempts`` whether or not the account exists.
    """
    account, where = user[:64], (address or "unknown")[:64]
    attempt = _admit(db, account, where)
    with db.read() as s:
        row = s.get(User, account)
        stored = row.password_hash if row is not None else None
        disabled = row is not None and row.disabled_at is not None
        is_admin = row is not None and row.is_admin
        display_name = row.display_name if row is not None else ""
    matched = _verify(stored, password)
    if matched and not disabled and stored is not None:
        fresh = HASHER.hash(password) if HASHER.check_needs_rehash(stored) else None
        with db.transaction() as s:
            s.execute(
                delete(LoginFailure).where(
                    LoginFailure.account == account,
                    (LoginFailure.address == where) | (LoginFailure.id == attempt),
                )
            )
            if fresh is not None:  # parameters changed since it was hashed: keep it current
                s.execute(
                    update(User)
                    .where(User.id == account, User.password_hash == stored)
                    .values(password_hash=fresh)
                )
        return SignedIn(user_id=account, display_name=display_name, is_admin=is_admin)
    if row is None:
        reason = "unknown user"
    elif stored is None:
        reason = "no password set"
    elif not matched:
        reason = "wrong password"
    else:
        reason = "account disabled"
    with db.transaction() as s:
        _audit(
            s,
            actor=account,
            action="login",
            outcome="failed",
            subject=account,
            reason=f"{reason}; from {where}",
        )
    raise Unauthenticated(REFUSED, [Detail("wrong user name or password", field="password")])


def check_current(db: Database, user_id: str, current: str | None, *, address: str) -> None:
    """Changing your own password over the API asks for the current one, checked as a
    sign-in is (rate-limited, audited): a stolen token must not become a password that
    outlives it."""
    if not current:
        raise ValidationFailed(
            "to change your own password, give your current one too",
            [Detail("missing", field="current_password")],
        )
    try:
        login(db, user=user_id, password=current, address=address)
    except Unauthenticated:
        raise ValidationFailed(
            "the current password is not right",
            [Detail("wrong password", field="current_password")],
        ) from None
