"""Reports derived from the ledger: tracking table, change log, time in state, SLA breaches.

Durations are derived from the events when a report is built, never kept by hand, and
checked: a negative duration means the events are out of order and is an error, never
silently turned positive as the seed's ``abs()`` did.

Built to stay quick over a million events (``benchmarks/ledger.py``, ``docs/performance.md``):

- the database filters, groups and turns timestamps into epoch seconds; the durations of the
  change log and the time-in-state summary come from one pass over the transitions in index
  order (request by request), pairing each with the next. Window functions would pair them
  too, but SQLite's cost two to three times the scan itself, and ranking a million stays in
  PostgreSQL cost more than fetching them; the rows are walked once anyway to be returned;
- when the caller sees every request of the project(s) asked for, events are picked by their
  own ``project_id`` (an index covers it) rather than ``subject_id IN (visible requests)``;
- rows come straight from the driver's cursor, and timestamps are read back in the cheapest
  exact way for each backend;
- on PostgreSQL a report may sort and hash in memory (``WORK_MEM``) instead of on disk.
"""

from __future__ import annotations

import json
import statistics
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain, pairwise
from typing import Any
from typing import cast as cast_type

from sqlalchemy import (
    Float,
    Select,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import ColumnElement

from steward.db.models import AccessRequest, Event, Membership
from steward.db.session import Database
from steward.db.types import epoch_of
from steward.domain import requests as domain
from steward.domain.roles import Role
from steward.domain.workflow import Workflow
from steward.services.access import require_user
from steward.services.requests import RequestFilter, visible_query
from steward.tables import Column, Table
from steward.timeutil import utcnow

WF: Workflow = domain.WORKFLOW
_TERMINAL = WF.terminal_states
_OF_KIND = Event.subject_kind == domain.KIND
_MOVES = or_(Event.from_state.is_(None), Event.from_state != Event.to_state)


def _nonneg(seconds: float | None, where: str) -> float | None:
    if seconds is None:
        return None
    if seconds < -0.001:  # julianday arithmetic carries sub-millisecond noise
        raise ValueError(f"negative duration ({seconds:.0f}s) for {where}: events out of order")
    return max(seconds, 0.0)


def _narrowed(flt: RequestFilter) -> bool:
    return bool(
        flt.states
        or flt.requester
        or flt.reviewer
        or flt.created_from
        or flt.created_to
        or flt.decided_from
        or flt.decided_to
    )


def _by_project(s: Session, actor: str | None, flt: RequestFilter) -> ColumnElement[bool] | None:
    """The visible requests as a condition on their events' project, when that is exact.

    Mirrors ``visible_query``: admins see every project; other members see the whole of a
    project where they hold any role but requester, and only their own requests elsewhere.
    """
    if _narrowed(flt):
        return None
    user = require_user(s, actor)
    if user.is_admin:
        return true() if flt.project is None else Event.project_id == flt.project
    memberships = s.execute(
        select(Membership.project_id, Membership.role).where(Membership.user_id == user.id)
    ).all()
    see_all = {p for p, r in memberships if r != Role.REQUESTER.value}
    own_only = {p for p, _ in memberships} - see_all
    if flt.project is not None:
        if flt.project in see_all:
            return Event.project_id == flt.project
        return None if flt.project in own_only else false()
    if own_only:
        return None
    return Event.project_id.in_(sorted(see_all))


def _scope(
    s: Session, actor: str | None, flt: RequestFilter
) -> tuple[Select[Any], ColumnElement[bool]]:
    """Visible requests matching ``flt``, and the same set as a condition on events."""
    visible: Select[Any] = visible_query(s, actor, flt)
    on_events = _by_project(s, actor, flt)
    if on_events is None:
        on_events = Event.subject_id.in_(visible.with_only_columns(AccessRequest.id))
    return visible, on_events


WORK_MEM = "64MB"
"""PostgreSQL memory for one report's sorts and hashes: a project's events grouped by request
(the 4 MB default spills a million events to disk)."""


@contextmanager
def _reading(db: Database) -> Iterator[Session]:
    """A report's transaction, with room to sort in memory on PostgreSQL."""
    with db.transaction() as s:
        if db.dialect == "postgresql":
            s.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        yield s


def _reader(column: Any, dialect: Dialect) -> Callable[[Any], Any]:
    """The conversion SQLAlchemy would apply to a raw driver value of ``column``."""
    process = column.type.dialect_impl(dialect).result_processor(dialect, None)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value


def _exact_time(column: Any, dialect: Dialect) -> tuple[Any, Callable[[Any], datetime]]:
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
    return column, _reader(column, dialect)


def _driver_rows(s: Session, q: Executable) -> Sequence[Any]:
    """Every row as the driver's plain tuple (for columns that need no type conversion)."""
    result = s.connection().execute(q)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


@contextmanager
def _driver_pairs(s: Session, q: Executable) -> Iterator[Iterator[tuple[Any, Any]]]:
    """Each row (a driver tuple) with the one after it (``None`` after the last).

    SQLite's rows are streamed, each dropped once used rather than a million held at once;
    psycopg converts a whole result faster in one ``fetchall`` than row by row.
    """
    conn = s.connection()
    result = conn.execute(q)
    try:
        if conn.dialect.name == "sqlite":
            rows = cast_type(Iterable[Any], result.cursor)
        else:
            rows = result.cursor.fetchall()
        yield pairwise(chain(rows, (None,)))
    finally:
        result.close()


def _ordered_transitions(on_events: ColumnElement[bool], *columns: Any) -> Select[Any]:
    """State-changing events of the visible requests, request by request, oldest first."""
    return (
        select(Event.subject_id, *columns)
        .where(_OF_KIND, on_events, _MOVES)
        .order_by(Event.subject_id, Event.seq)
    )


def tracking_table(
    db: Database, *, actor: str | None, flt: RequestFilter, now: datetime | None = None
) -> Table:
    now = now or utcnow()
    now_s = now.timestamp()
    with _reading(db) as s:
        visible, on_events = _scope(s, actor, flt)
        # The earliest start and stop times; converted to seconds once per request.
        clock = (
            select(
                Event.subject_id,
                func.min(case((Event.to_state == WF.clock_start, Event.at))).label("start"),
                func.min(case((Event.to_state.in_(sorted(WF.clock_stop)), Event.at))).label("stop"),
            )
            .where(_OF_KIND, on_events, Event.from_state.is_distinct_from(Event.to_state))
            .group_by(Event.subject_id)
            .subquery()
        )
        r = AccessRequest
        dialect = s.connection().dialect
        created_at, as_time = _exact_time(r.created_at, dialect)
        updated_at, _ = _exact_time(r.updated_at, dialect)
        q = (
            visible.with_only_columns(
                r.id,
                r.project_id,
                r.title,
                r.state,
                r.requester,
                r.institution,
                r.project_lead,
                r.intended_use,
                r.reviewer,
                cast(r.datasets, Text),  # JSON text: decoded once per distinct value
                created_at,
                updated_at,
                cast(
                    func.coalesce(epoch_of(clock.c.stop), literal(now_s, Float))
                    - epoch_of(clock.c.start),
                    Float,
                ),
            )
            .outerjoin(clock, clock.c.subject_id == r.id)
            .order_by(r.created_at, r.id)
        )
        loaded: dict[str, list[str]] = {}
        rows: list[Sequence[Any]] = []
        for *row, text_of_datasets, created, updated, total in _driver_rows(s, q):
            datasets = loaded.get(text_of_datasets)
            if datasets is None:
                datasets = loaded[text_of_datasets] = json.loads(text_of_datasets)
            if total is not None and total < 0:
                total = _nonneg(total, row[0])
            if isinstance(datasets, list):  # each row gets its own list, as before
                datasets = list(datasets)
            rows.append((*row, datasets, as_time(created), as_time(updated), total))
    return Table(
        title="tracking",
        caption="One row per request; total duration runs from first submission to the "
        "decision (or to now while undecided).",
        columns=[
            Column("request"),
            Column("project"),
            Column("title"),
            Column("state"),
            Column("requester"),
            Column("institution"),
            Column("project_lead"),
            Column("intended_use"),
            Column("reviewer"),
            Column("datasets", "list"),
            Column("created", "time"),
            Column("last_change", "time"),
            Column("total_duration", "duration"),
        ],
        rows=rows,
        brief=("request", "title", "state", "requester", "reviewer", "created", "total_duration"),
    )


def _change_rows(
    pairs: Iterator[tuple[Any, Any]], now_s: float, as_time: Callable[[Any], datetime]
) -> list[Sequence[Any]]:
    """Pair each transition with the one before and after it (rows come request by request)."""
    terminal = _TERMINAL
    rows: list[Sequence[Any]] = []
    append = rows.append
    prev_id, prev_s, order = None, 0.0, 0
    for (sid, src, dst, at, at_s, who, reason), nxt in pairs:
        if sid != prev_id:
            prev_id, order, left = sid, 1, None
        else:
            order += 1
            left = None if src is None else at_s - prev_s
            if left is not None and left < 0:
                left = _nonneg(left, sid)
        if nxt is not None and nxt[0] == sid:
            stayed: float | None = nxt[4] - at_s
            current = False
        else:
            stayed = None if dst in terminal else now_s - at_s
            current = True
        if stayed is not None and stayed < 0:
            stayed = _nonneg(stayed, sid)
        append((sid, order, src, dst, as_time(at), who, reason, left, stayed, current))
        prev_s = at_s
    return rows


def change_log(
    db: Database, *, actor: str | None, flt: RequestFilter, now: datetime | None = None
) -> Table:
    now = now or utcnow()
    with _reading(db) as s:
        _, on_events = _scope(s, actor, flt)
        at, as_time = _exact_time(Event.at, s.connection().dialect)
        q = _ordered_transitions(
            on_events,
            Event.from_state,
            Event.to_state,
            at,
            epoch_of(Event.at),
            Event.actor,
            Event.data["reason"].as_string(),
        )
        with _driver_pairs(s, q) as pairs:
            rows = _change_rows(pairs, now.timestamp(), as_time)
    return Table(
        title="changelog",
        caption="One row per transition. time_in_from_state: how long the request stayed in "
        "the state it left; time_in_to_state: how long it stayed in the state it "
        "entered (up to now for the current state).",
        columns=[
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
        ],
        rows=rows,
        brief=("request", "order", "from_state", "to_state", "at", "actor", "time_in_from_state"),
    )


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (the same as numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


_P = 0.9
_SLA = {st.name: st.sla.total_seconds() for st in WF.states if st.sla is not None}
Summary = tuple[int, int, float, float, float, int]
"""count, ongoing, median, p90, max, over SLA (0 when the state has no SLA)."""


def _summaries(s: Session, on_events: ColumnElement[bool], now_s: float) -> dict[str, Summary]:
    """Every stay from one ordered pass, then sorted per state.

    Cheaper than ranking the stays in SQL on both backends (measured: the database's sort of
    a million stays by state and length costs more than fetching them).
    """
    q = _ordered_transitions(on_events, Event.to_state, epoch_of(Event.at))
    stays: dict[str, list[float]] = {st.name: [] for st in WF.states if not st.terminal}
    ongoing = dict.fromkeys(stays, 0)
    with _driver_pairs(s, q) as pairs:
        for (sid, state, at_s), nxt in pairs:
            values = stays.get(state)
            if values is None:  # a final state: no stay to measure
                continue
            if nxt is not None and nxt[0] == sid:
                seconds = nxt[2] - at_s
            else:
                seconds = now_s - at_s
                ongoing[state] += 1
            values.append(seconds if seconds >= 0.0 else 0.0)
    out: dict[str, Summary] = {}
    for state, values in stays.items():
        if not values:
            continue
        values.sort()
        sla = _SLA.get(state)
        out[state] = (
            len(values),
            ongoing[state],
            statistics.median(values),
            _quantile(values, _P),
            values[-1],
            0 if sla is None else len(values) - bisect_right(values, sla),
        )
    return out


def time_in_state(
    db: Database, *, actor: str | None, flt: RequestFilter, now: datetime | None = None
) -> Table:
    now = now or utcnow()
    with _reading(db) as s:
        _, on_events = _scope(s, actor, flt)
        by_state = _summaries(s, on_events, now.timestamp())
    rows: list[Sequence[Any]] = []
    for st in WF.states:
        if st.terminal:
            continue
        sla = st.sla.total_seconds() if st.sla else None
        found = by_state.get(st.name)
        if found is None:
            rows.append((st.name, 0, 0, None, None, None, sla, None if sla is None else 0))
            continue
        count, ongoing, median, p90, top, over = found
        rows.append((st.name, count, ongoing, median, p90, top, sla, None if sla is None else over))
    return Table(
        title="time-in-state",
        caption="Every stay in each non-final state, including stays still going on "
        "(counted up to now).",
        columns=[
            Column("state"),
            Column("count", "int"),
            Column("ongoing", "int"),
            Column("median", "duration"),
            Column("p90", "duration"),
            Column("max", "duration"),
            Column("sla", "duration"),
            Column("over_sla", "int"),
        ],
        rows=rows,
    )


def sla_breaches(
    db: Database, *, actor: str | None, flt: RequestFilter, now: datetime | None = None
) -> Table:
    """Requests sitting in a state longer than its SLA right now."""
    now = now or utcnow()
    slas = {s.name: s.sla for s in WF.states if s.sla is not None}
    with db.transaction() as s:
        r = AccessRequest
        q = (
            visible_query(s, actor, flt)
            .with_only_columns(r.id, r.title, r.state, r.state_since, r.requester, r.reviewer)
            .where(
                or_(
                    *[
                        and_(r.state == name, r.state_since < now - sla)
                        for name, sla in slas.items()
                    ]
                )
            )
            .order_by(r.state_since)
        )
        rows: list[Sequence[Any]] = []
        for rid, title, state, since, requester, reviewer in s.execute(q):
            sla = slas[state].total_seconds()
            stayed = (now - since).total_seconds()
            rows.append((rid, title, state, since, stayed, sla, stayed - sla, requester, reviewer))
    return Table(
        title="sla-breaches",
        caption="Requests in a state for longer than its target right now.",
        columns=[
            Column("request"),
            Column("title"),
            Column("state"),
            Column("since", "time"),
            Column("in_state_for", "duration"),
            Column("sla", "duration"),
            Column("over_by", "duration"),
            Column("requester"),
            Column("reviewer"),
        ],
        rows=rows,
        brief=("request", "title", "state", "in_state_for", "sla", "over_by", "reviewer"),
    )


REPORTS = {
    "tracking": tracking_table,
    "changelog": change_log,
    "time-in-state": time_in_state,
    "sla": sla_breaches,
}
