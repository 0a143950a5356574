"""What either database would refuse, checked on every imported row before anything is written.

Why here and not left to the database: SQLite stores a 500-character id or a NUL byte without
complaint while PostgreSQL refuses them mid-``COPY``, after every other check passed, with a
driver traceback and no line number. So the import checks the union of both backends' limits,
identically on each, and names the line and field of every value that would not fit. Lengths
are read from the SQLAlchemy models (the columns each import field is written to), never
repeated here as numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.sql.elements import KeyedColumnElement

from steward.db.models import AccessRequest, Event, User
from steward.domain import requests as domain
from steward.errors import Detail

_R, _E, _U = AccessRequest.__table__.c, Event.__table__.c, User.__table__.c

WRITTEN_TO: dict[str, tuple[KeyedColumnElement[Any], ...]] = {
    "request": (_R.external_id,),
    "title": (_R.title,),
    "requester": (_R.requester, _U.id, _E.actor),
    "actor": (_E.actor, _R.decided_by, _U.id),
    "reviewer": (_R.reviewer, _U.id),
    "institution": (_R.institution,),
    "project_lead": (_R.project_lead,),
    "intended_use": (_R.intended_use,),
    "reason": (_R.decision_reason,),
}
"""The columns each import field ends up in (a user named in the file may be created)."""

_DOMAIN_LIMITS = {"title": domain.MAX_TITLE}


def _length(columns: Iterable[KeyedColumnElement[Any]]) -> int | None:
    found = [n for c in columns if (n := getattr(c.type, "length", None))]
    return min(found) if found else None


MAX_LENGTH: dict[str, int] = {
    name: min(n for n in (_length(cols), _DOMAIN_LIMITS.get(name)) if n)
    for name, cols in WRITTEN_TO.items()
    if _length(cols) or name in _DOMAIN_LIMITS
}
"""Characters each field may hold (PostgreSQL counts characters, as ``len`` does)."""

KEY_LENGTH: int = _length([_E.idempotency_key]) or 0
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""Request ids are ULIDs, which count milliseconds from 1970: nothing can be dated before."""


def idempotency_key(project: str, external_id: str, seq: int) -> str:
    """The key of an imported event: re-importing the same history finds it again."""
    return f"import:{project}:{external_id}:{seq}"


def _shown(value: str) -> str:
    return value if len(value) <= 40 else value[:40] + "…"


def check_text(line: int, name: str, value: str) -> list[Detail]:
    """A value's problems as either database would see them (none, nearly always)."""
    out: list[Detail] = []
    if "\x00" in value:
        out.append(
            Detail(
                "contains a NUL character (\\x00), which PostgreSQL cannot store",
                row=line,
                field=name,
                value=_shown(value.replace("\x00", "\\x00")),
                accepted="text without NUL characters",
            )
        )
    limit = MAX_LENGTH.get(name)
    if limit is not None and len(value) > limit:
        out.append(
            Detail(
                f"too long: {len(value)} characters",
                row=line,
                field=name,
                value=_shown(value),
                accepted=f"at most {limit} characters",
            )
        )
    return out


def check_values(line: int, values: dict[str, Any]) -> list[Detail]:
    """Every text of a row (lists item by item) against the databases' limits."""
    out: list[Detail] = []
    for name, value in values.items():
        if isinstance(value, str):
            if value and ("\x00" in value or len(value) > MAX_LENGTH.get(name, len(value))):
                out += check_text(line, name, value)
        else:
            for item in value:
                if "\x00" in item:
                    out += check_text(line, name, item)
    return out


def check_time(
    line: int, at: datetime, text: str, latest: datetime, skew: timedelta
) -> list[Detail]:
    """A row's time must lie between 1970 (ids) and now plus the tolerated clock skew."""
    if at < EARLIEST:
        return [
            Detail(
                "before 1970-01-01, which request ids cannot represent",
                row=line,
                field="at",
                value=text,
                accepted="times from 1970-01-01T00:00:00Z on",
            )
        ]
    if at > latest:
        return [
            Detail(
                f"in the future: {at.isoformat()} is after now plus the tolerated clock skew "
                f"({int(skew.total_seconds())}s, setting import_clock_skew)",
                row=line,
                field="at",
                value=text,
                accepted=f"times up to {latest.isoformat(timespec='seconds')}",
            )
        ]
    return []


def check_key(project: str, external_id: str, events: int, line: int) -> list[Detail]:
    """The longest event key of a request must fit the ledger's idempotency-key column."""
    key = idempotency_key(project, external_id, events)
    if len(key) <= KEY_LENGTH:
        return []
    room = KEY_LENGTH - (len(key) - len(external_id))
    return [
        Detail(
            f"too long for the ledger's keys in project {project}: {len(external_id)} characters",
            row=line,
            field="request",
            value=_shown(external_id),
            accepted=f"at most {room} characters",
        )
    ]
