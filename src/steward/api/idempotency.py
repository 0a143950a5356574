"""The API's half of idempotency: the ledger replays a repeated key's first result; this
refuses a key sent again with a *different* request (422), as the IETF Idempotency-Key draft
asks, instead of answering the first result for something else.

The key's fingerprint is claimed *before* the command runs (a unique row), so two concurrent
sends of one key with different bodies cannot both get through; a command that then fails
leaves the claim, and sending the same request again goes ahead.
"""

from __future__ import annotations

import hashlib
import json

from steward.db.models import ApiIdempotency
from steward.db.session import Database
from steward.errors import Conflict, Detail, ValidationFailed
from steward.timeutil import utcnow


def ledger_key(user: str, key: str) -> str:
    """The key as the ledger stores it: the caller's own (two people's "1" are two keys), of
    a fixed length whatever was sent (the ledger's column holds 200 characters)."""
    return "api:" + hashlib.sha256(f"{user}\n{key}".encode()).hexdigest()


def claim(db: Database, key: str, fingerprint: str, shown: str) -> None:
    """Remember the first request sent with ``key``; refuse another request with it."""
    try:
        with db.transaction() as s:
            if s.get(ApiIdempotency, key) is None:
                s.add(ApiIdempotency(key=key, fingerprint=fingerprint, created_at=utcnow()))
                return
    except Conflict:
        pass  # a concurrent send claimed it first: compare with what it claimed
    with db.read() as s:
        seen = s.get(ApiIdempotency, key)
    if seen is not None and seen.fingerprint != fingerprint:
        raise ValidationFailed(
            "this Idempotency-Key was already used for a different request",
            [
                Detail(
                    "reused with another body or target",
                    field="Idempotency-Key",
                    value=shown[:80],
                    accepted="a new key for a new request",
                )
            ],
        )


def _fingerprint(request: object) -> str:
    text = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sent_before(db: Database, user: str, key: str | None, request: object) -> bool:
    """Whether the caller already sent this very ``request`` with ``key``: for a command that
    is not idempotent by itself, to answer the first result again instead of refusing."""
    if not key:
        return False
    with db.read() as s:
        seen = s.get(ApiIdempotency, ledger_key(user, key))
        return seen is not None and seen.fingerprint == _fingerprint(request)


def claimed(db: Database, user: str, key: str | None, request: object) -> str | None:
    """The ledger's key for a caller's ``Idempotency-Key`` (None without one), claimed for
    ``request`` — what is asked, as JSON-able data: the same key sent again with anything
    else is refused."""
    if not key:
        return None
    stored = ledger_key(user, key)
    claim(db, stored, _fingerprint(request), key)
    return stored
