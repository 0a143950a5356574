"""The change log: one row per state change, with the time spent in the states it links.

Each transition's ``time_in_from_state`` is the stay its event recorded (``stay_seconds``);
its ``time_in_to_state`` is the next transition's, or — for a request's latest change — the
time from then until now (none when the state is final).

Three ways to produce it, with the same values:

- ``rows`` builds the report in memory from the events (for the terminal, JSON, XLSX and the
  API);
- ``write_csv`` streams the CSV export — the same text as ``tables.write_csv`` of that table —
  without holding a million rows. In UTC it writes the lines the ledger keeps for each
  request (``db/change_logs.py``: a million-row export in well under the 2 s that
  rendering each row from the events takes); in another zone each batch of events from the
  cursor is rendered and written.

Rendering in the database was tried and measured: SQLite's string functions cost more per
row than Python does, and PostgreSQL (pairing rows with window functions, then formatting)
took as long as Python, with a second copy of every formatting rule to keep exact.
"""

from __future__ import annotations

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
from steward.domain.change_log import CRLF, csv_field, duration_text, nonneg
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
BATCH = 20_000
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


def _write_kept(s: Session, sc: Scope, now: datetime, out: IO[str]) -> int:
    """In UTC: each request's change log as the ledger keeps it, its latest line completed."""
    log = ChangeLog
    q = (
        select(log.subject_id, log.lines, log.moves, log.state, log.since)
        .where(log.subject_kind == domain.KIND, sc.covers(log.project_id, log.subject_id))
        .order_by(log.subject_id)
    )
    rows = 0
    text: list[str] = []
    for sid, lines, moves, state, since in s.execute(q):
        text += (lines, change_log.ending(sid, state, since, now, TERMINAL))
        rows += moves
        if len(text) >= 2 * KEPT_BATCH:
            out.write("".join(text))
            text.clear()
    out.write("".join(text))
    return rows


class _Rows:
    """Renders transitions (request by request, oldest first) as the change log's CSV lines,
    with times in a zone other than UTC.

    A row is ``(request, from, to, at, actor, reason, stay)`` with ``at`` the stored UTC
    text 'YYYY-MM-DD HH:MM:SS.ffffff'. Every value goes through the same conversions as the
    in-memory table and ``tables.write_csv``.
    """

    def __init__(self, now: datetime, tz: ZoneInfo) -> None:
        self.now = now
        self.local = LocalTimes(tz).iso_of_utc_text
        self.actors: dict[str, str] = {}
        self.reasons: dict[str | None, str] = {None: ""}
        self.rows = 0
        self._request: str | None = None
        self._order = 0
        self._last: tuple[str, str] = ("", "")  # to-state and time of the latest row

    def _end(self, sid: str, dst: str, at: str) -> str:
        when = datetime.fromisoformat(at).replace(tzinfo=UTC)
        return change_log.ending(sid, dst, when, self.now, TERMINAL)

    def render(self, rows: Sequence[Sequence[Any]]) -> str:
        """The lines of ``rows``; the latest one stays open until the next row or ``finish``."""
        if not rows:
            return ""
        out: list[str] = []
        put = out.append
        actors, reasons, local = self.actors, self.reasons, self.local
        request, order = self._request, self._order
        dst_before, at_before = self._last
        for sid, src, dst, at, who, why, stay in rows:
            left = duration_text(nonneg(stay, sid))
            if sid != request:
                if request is not None:
                    put(self._end(request, dst_before, at_before))
                request, order = sid, 1
            else:
                order += 1
                put(f"{left},False{CRLF}")
            a = actors.get(who)
            if a is None:
                a = actors[who] = csv_field(who)
            r = reasons.get(why)
            if r is None:
                r = reasons[why] = csv_field(why)
            put(f"{sid},{order},{src or ''},{dst},{local(at)},{a},{r},{left},")
            dst_before, at_before = dst, at
        self._request, self._order, self._last = request, order, (dst_before, at_before)
        self.rows += len(rows)
        return "".join(out)

    def finish(self) -> str:
        if self._request is None:
            return ""
        return self._end(self._request, *self._last)


def _raw_rows(sc: Scope, dialect: Dialect) -> Select[Any]:
    e = Event
    at = (
        e.at
        if dialect.name == "sqlite"
        else func.to_char(func.timezone("UTC", e.at), "YYYY-MM-DD HH24:MI:SS.US")
    )
    return _transitions(
        sc, e.subject_id, e.from_state, e.to_state, at, e.actor, reason_of(dialect), e.stay_seconds
    )


def _write_local(s: Session, sc: Scope, now: datetime, tz: ZoneInfo, out: IO[str]) -> int:
    """In another zone: batches straight from the driver's cursor. (A PostgreSQL
    server-side cursor keeps less in memory but, measured, took twice as long: psycopg
    converts rows faster from a whole result.)"""
    rows = _Rows(now, tz)
    conn = s.connection()
    result = conn.execute(_raw_rows(sc, conn.dialect))
    try:
        cursor = result.cursor
        while batch := cursor.fetchmany(BATCH):
            out.write(rows.render(batch))
    finally:
        result.close()
    out.write(rows.finish())
    return rows.rows


def write_csv(s: Session, sc: Scope, now: datetime, tz: ZoneInfo, out: IO[str], header: str) -> int:
    """Stream the change log as CSV to ``out``; return the number of rows."""
    out.write(header)
    if tz.key == "UTC":
        return _write_kept(s, sc, now, out)
    return _write_local(s, sc, now, tz, out)
