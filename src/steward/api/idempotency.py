"""The API's half of idempotency: the ledger replays a repeated key's first result; this
refuses a key sent again with a *different* request (422), as the IETF Idempotency-Key
draft asks, instead of answering the first result for something else."""

from __future__ import annotations

from steward.db.models import ApiIdempotency
from steward.db.session import Database
from steward.errors import Conflict, Detail, ValidationFailed
from steward.timeutil import utcnow


def replay_check(db: Database, key: str, fingerprint: str) -> None:
    with db.read() as s:
        seen = s.get(ApiIdempotency, key)
    if seen is not None and seen.fingerprint != fingerprint:
        raise ValidationFailed(
            "this Idempotency-Key was already used for a different request",
            [
                Detail(
                    "reused with another body or target",
                    field="Idempotency-Key",
                    value=key.split(":", 2)[-1],
                    accepted="a new key for a new request",
                )
            ],
        )


def remember(db: Database, key: str, fingerprint: str) -> None:
    """Keep the first request's fingerprint (a repeat finds it there already)."""
    try:
        with db.transaction() as s:
            if s.get(ApiIdempotency, key) is None:
                s.add(ApiIdempotency(key=key, fingerprint=fingerprint, created_at=utcnow()))
    except Conflict:
        pass  # the same first request, remembered by a concurrent repeat
