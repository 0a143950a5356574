"""A change log's text: one CSV line per state change, exactly as its export writes it.

Why here, in the pure core: the lines are kept with the events (``db/change_logs.py``) by the
ledger, the bulk importer and the migration that derives them for older events, and are
streamed to CSV by the change-log report; all four must produce the same bytes, and the db
layer cannot import the services. Times are written in UTC, durations as seconds to the
millisecond (``repr(round(seconds, 3))``, as ``tables.write_csv`` writes them), text fields
quoted as the csv module quotes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

CRLF = "\r\n"
_QUOTED = re.compile(r'[,"\r\n]')


def csv_field(value: str | None) -> str:
    """A text field as the csv module writes it (``QUOTE_MINIMAL``)."""
    if value is None:
        return ""
    if _QUOTED.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def nonneg(seconds: float | None, where: str) -> float | None:
    """A duration, which is never negative: one that is means the events of ``where`` are out
    of order, and is unknown (``None``) — never shown as a wrong figure, never a reason for a
    whole report to fail; the reports name such a request instead
    (``services/reports_consistency.py``). Less than a millisecond below zero is rounding,
    and counts as zero."""
    if seconds is None or seconds < -0.001:
        return None
    return max(seconds, 0.0)


def duration_text(seconds: float | None) -> str:
    """A duration as ``tables.write_csv`` writes it: seconds to the millisecond, or empty."""
    return "" if seconds is None else repr(round(float(seconds), 3))


def reason_of(data: Mapping[str, Any]) -> str | None:
    """The reason an event gives, as the database's JSON text operators return it."""
    reason = data.get("reason")
    if reason is None or isinstance(reason, str):
        return reason
    return json.dumps(reason)


def line(
    subject_id: str,
    order: int,
    from_state: str | None,
    to_state: str,
    at: datetime,
    actor: str,
    reason: str | None,
    stay: float | None,
) -> str:
    """A change's line, up to and including the time spent in the state it left."""
    return (
        f"{subject_id},{order},{from_state or ''},{to_state},{at.astimezone(UTC).isoformat()},"
        f"{csv_field(actor)},{csv_field(reason)},{duration_text(nonneg(stay, subject_id))},"
    )


def closing(subject_id: str, stay: float | None) -> str:
    """The end of a line once the next change is known: the time in the state it entered."""
    return f"{duration_text(nonneg(stay, subject_id))},False{CRLF}"


def ending(
    subject_id: str, state: str, since: datetime, now: datetime, terminal: frozenset[str]
) -> str:
    """The end of the latest line: the time in the current state up to now, unless final."""
    if state in terminal:
        return f",True{CRLF}"
    stayed = nonneg((now - since).total_seconds(), subject_id)
    return f"{duration_text(stayed)},True{CRLF}"


class Builder:
    """One subject's change log, change by change."""

    def __init__(self, subject_id: str) -> None:
        self.subject_id = subject_id
        self.parts: list[str] = []
        self.moves = 0
        self.state = ""
        self.since: datetime | None = None

    def add(
        self,
        from_state: str | None,
        to_state: str,
        at: datetime,
        actor: str,
        reason: str | None,
        stay: float | None,
    ) -> None:
        if self.moves:
            self.parts.append(closing(self.subject_id, stay))
        self.moves += 1
        self.parts.append(
            line(self.subject_id, self.moves, from_state, to_state, at, actor, reason, stay)
        )
        self.state, self.since = to_state, at

    @property
    def text(self) -> str:
        return "".join(self.parts)
