"""The change log: one row per state change, with the time spent in the states it links.

Each transition's ``time_in_from_state`` is the stay its event recorded (``stay_seconds``);
its ``time_in_to_state`` is the next transition's, or — for a request's latest change — the
time from then until now (none when the state is final).

Two ways to produce it, with the same values:

- ``rows`` builds the report in memory from the events (for the terminal, JSON, XLSX and the
  API), or only its first rows (a screen's worth);
- ``write_csv`` streams the CSV export — the same text as ``tables.write_csv`` of that table —
  from the lines the ledger keeps for each request (``db/change_logs.py``), never holding a
  million rows: about a second for a million, against 4–6 s to render each row from the
  events, which every program that reads the rows into Python pays (2–4 s for the reading
  alone, on the benchmark machine).

Rendering in the database was tried and measured too: SQLite's string functions cost more per
row than Python does, and PostgreSQL (pairing rows with window functions, then formatting)
took as long as Python, with a second copy of every formatting rule to keep exact.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain, pairwise
from typing import IO, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from steward.db.models import ChangeLog, Event
from steward.db.types import epoch_of
from steward.domain import change_log
from steward.domain import requests as domain
from steward.domain.change_log import CRLF, csv_field, nonneg
from steward.services.reports_format import LocalTimes
from steward.services.reports_scope import MOVES, OF_KIND, Scope
from steward.tables import Column

TERMINAL = domain.WORKFLOW.terminal_states
COLUMNS = [
    Column("request"),
    Column("order", "int"),
    Column("from_state"),
    Column("to_state"),
    Column("at", "time"),
    Column("actor"),
    Column("reason"),
    Column("time_in_from_state", "duration"),
    Column("time_in_to_state", "duration"),
    Column("current", "text"),
]
KEPT_BATCH = 2_000
"""Requests whose kept lines are written at once (about 10 lines each)."""


def exact_time(column: Any, dialect: Dialect) -> tuple[Any, Callable[[Any], datetime]]:
    """The cheapest column giving back a timestamp exactly, and how to read it.

    What ``UTCDateTime`` would return (aware UTC datetimes, to the microsecond), without its
    per-value Python: SQLite stores naive UTC text ('YYYY-MM-DD HH:MM:SS.ffffff'); PostgreSQL's
    epoch seconds are exact (microsecond timestamps, which a double rounds by less than half a
    microsecond until 2106), cheaper to fetch and convert than a timestamptz.
    """
    if dialect.name == "sqlite":
        parse = datetime.fromisoformat
        return column, lambda text: parse(text + "+00:00")
    if dialect.name == "postgresql":
        stamp = datetime.fromtimestamp
        return epoch_of(column), lambda seconds: stamp(seconds, UTC)
    process = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return column, process or (lambda value: value)


def reason_of(dialect: Dialect) -> Any:
    """The reason a transition gives, if any. SQLite parses the JSON only of events whose
    text mentions a reason (a creation's data is large, and most transitions have none)."""
    reason = Event.data["reason"].as_string()
    if dialect.name == "sqlite":
        return case((func.instr(Event.data, '"reason"') > 0, reason), else_=None)
    return reason


def _transitions(sc: Scope, *columns: Any) -> Select[Any]:
    """State changes of the covered requests, request by request, oldest first."""
    return (
        select(*columns).where(OF_KIND, sc.on_events, MOVES).order_by(Event.subject_id, Event.seq)
    )


# ---- in memory ------------------------------------------------------------------------------


def count(s: Session, sc: Scope) -> int:
    """How many rows the change log has (from the kept logs: no event is read)."""
    log = ChangeLog
    q = select(func.coalesce(func.sum(log.moves), 0)).where(
        log.subject_kind == domain.KIND, sc.covers(log.project_id, log.subject_id)
    )
    return int(s.execute(q).scalar_one())


def rows(s: Session, sc: Scope, now: datetime, limit: int | None = None) -> list[Sequence[Any]]:
    """The change log's rows, or its first ``limit`` rows (a screen's worth)."""
    conn = s.connection()
    e = Event
    at, as_time = exact_time(e.at, conn.dialect)
    q = _transitions(
        sc,
        e.subject_id,
        e.from_state,
        e.to_state,
        at,
        e.actor,
        reason_of(conn.dialect),
        e.stay_seconds,
    )
    if limit is not None:
        q = q.limit(limit + 1)  # and the next change of the last row's request, if any
    result = conn.execute(q)
    try:
        fetched: Iterable[Any] = (
            cast(Iterable[Any], result.cursor)
            if conn.dialect.name == "sqlite"  # streamed: a million rows are not held at once
            else result.cursor.fetchall()  # psycopg converts a whole result faster
        )
        out: list[Sequence[Any]] = []
        append = out.append
        prev_id, order = None, 0
        for (sid, src, dst, when, who, why, stay), nxt in pairwise(chain(fetched, (None,))):
            if len(out) == limit:
                break
            order = order + 1 if sid == prev_id else 1
            prev_id = sid
            left = stay if stay is None or stay >= 0 else nonneg(stay, sid)
            when_dt = as_time(when)
            if nxt is not None and nxt[0] == sid:
                stayed = nxt[6]
                if stayed is not None and stayed < 0:
                    stayed = nonneg(stayed, sid)
                current = False
            else:
                stayed = None if dst in TERMINAL else nonneg((now - when_dt).total_seconds(), sid)
                current = True
            append((sid, order, src, dst, when_dt, who, why, left, stayed, current))
        return out
    finally:
        result.close()


# ---- streamed CSV ---------------------------------------------------------------------------

FIELDS = len(COLUMNS)


class _Zone:
    """Kept lines (UTC) rewritten with their times in another zone.

    A text without a double quote has no quoted field, so no field holds a comma: split on
    commas, every line's time is one in ``FIELDS - 1`` pieces, converted as one list and joined
    again, with no per-line parsing. A text with quoted fields (an actor or reason holding a
    comma, quote or line break) is parsed as CSV and written again with the same quoting.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.times = LocalTimes(tz)

    def convert(self, text: str) -> str:
        if '"' in text:
            return self._quoted(text)
        pieces = text.split(",")
        step = FIELDS - 1
        if len(pieces) != step * text.count(CRLF) + 1:  # not the kept lines' shape
            return self._quoted(text)
        pieces[4::step] = self.times.iso_of_utc_texts([at[:-6] for at in pieces[4::step]])
        return ",".join(pieces)

    def _quoted(self, text: str) -> str:
        out = []
        for fields in csv.reader(io.StringIO(text, newline="")):
            fields[4] = self.times.iso_of_utc_text(fields[4].removesuffix("+00:00"))
            out.append(",".join(map(csv_field, fields)) + CRLF)
        return "".join(out)


def write_csv(s: Session, sc: Scope, now: datetime, tz: ZoneInfo, out: IO[str], header: str) -> int:
    """Stream the change log as CSV to ``out``; return the number of rows.

    Each request's change log as the ledger keeps it, its latest line completed with the time
    in the current state; times moved to ``tz`` unless it is UTC.
    """
    log = ChangeLog
    q = (
        select(log.subject_id, log.lines, log.moves, log.state, log.since)
        .where(log.subject_kind == domain.KIND, sc.covers(log.project_id, log.subject_id))
        .order_by(log.subject_id)
    )
    zone = None if tz.key == "UTC" else _Zone(tz)
    out.write(header)
    rows = 0
    batch: list[str] = []

    def flush() -> None:
        text = "".join(batch)
        out.write(text if zone is None else zone.convert(text))
        batch.clear()

    for sid, lines, moves, state, since in s.execute(q):
        rows += moves
        text = lines + change_log.ending(sid, state, since, now, TERMINAL)
        if zone is not None and '"' in text:
            flush()
            out.write(zone.convert(text))
            continue
        batch.append(text)
        if len(batch) >= KEPT_BATCH:
            flush()
    flush()
    return rows
