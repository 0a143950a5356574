"""Reports derived from the ledger: tracking table, change log, time in state, SLA breaches.

Durations come from event timestamps, to the microsecond, and are checked: a negative
duration means the events are out of order and is an error, never silently turned positive
as the seed's ``abs()`` did.

Built to stay quick over a million events (``benchmarks/ledger.py``, ``docs/performance.md``):

- each event that moves a request out of a state records, as it is written, how long the
  request stayed there (``events.stay_seconds``); the read model keeps when the request
  entered its current state, its first submission and its decision. So no report pairs a
  million transitions: the time-in-state summary reads an index of the stays
  (``reports_stays``), the tracking table reads the requests alone, and the change log reads
  each transition once (``reports_changelog``);
- the CSV exports of the change log and the tracking table are streamed from the cursor
  (``reports_changelog``, ``reports_tracking``), never built as a table first;
- rows come straight from the driver's cursor; on PostgreSQL a report may sort and hash in
  memory (``reports_scope.WORK_MEM``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Text, and_, case, cast, func, literal, or_
from sqlalchemy.sql.elements import ColumnElement

from steward.db.models import AccessRequest
from steward.db.session import Database
from steward.db.types import UTCDateTime
from steward.domain import requests as domain
from steward.domain.change_log import nonneg
from steward.domain.workflow import Workflow
from steward.errors import Detail, ValidationFailed
from steward.services import reports_changelog as changelog
from steward.services import reports_consistency as consistency
from steward.services import reports_tracking as tracking
from steward.services.kinds import Filter
from steward.services.reports_scope import reading, scope
from steward.services.reports_sql import between
from steward.services.reports_stays import summaries
from steward.services.requests import visible_query
from steward.tables import (
    WRITERS,
    Column,
    Table,
    atomic_writer,
    check_format,
    write_csv,
    write_table,
)
from steward.timeutil import utcnow

WF: Workflow = domain.WORKFLOW


def _clock(r: type[AccessRequest]) -> tuple[Any, ColumnElement[Any]]:
    """When a request's clock started and stopped, from what its read model keeps.

    The workflow's clock starts when a request first enters ``submitted`` and stops when it
    first enters a decision. The projector keeps the first submission as ``submitted_at`` and
    an approval or rejection as ``decided_at``; ``cancelled`` is final, so a cancelled
    request's ``state_since`` is when it was cancelled. (Checked against the events
    themselves by the tests, for random histories.)
    """
    if WF.clock_start != "submitted" or WF.clock_stop != {"approved", "rejected", "cancelled"}:
        raise RuntimeError("the tracking clock no longer matches the access-request workflow")
    stop = case(
        (r.decided_at.is_not(None), r.decided_at),
        (r.state == "cancelled", r.state_since),
        else_=None,
    )
    return r.submitted_at, stop


TRACKING_COLUMNS = [
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
    Column("problem"),
]


def _total_duration(now: datetime) -> ColumnElement[Any]:
    """Seconds from the clock's start to its stop, or to now while it runs (exact)."""
    start, stop = _clock(AccessRequest)
    return between(func.coalesce(stop, literal(now, UTCDateTime())), start)


def tracking_table(
    db: Database,
    *,
    actor: str | None,
    flt: Filter,
    now: datetime | None = None,
    limit: int | None = None,
) -> Table:
    now = now or utcnow()
    with reading(db) as s:
        sc = scope(s, actor, flt)
        problems = consistency.find(s, sc, now)
        r = AccessRequest
        dialect = s.connection().dialect
        created_at, as_time = changelog.exact_time(r.created_at, dialect)
        updated_at, _ = changelog.exact_time(r.updated_at, dialect)
        q = sc.visible.with_only_columns(
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
            _total_duration(now),
        ).order_by(r.created_at, r.id)
        loaded: dict[str, list[str]] = {}
        rows: list[Sequence[Any]] = []
        result = s.connection().execute(q)
        try:
            for row in result.cursor.fetchall():
                text_of_datasets, created, updated, total = row[9:]
                datasets = loaded.get(text_of_datasets)
                if datasets is None:
                    datasets = loaded[text_of_datasets] = json.loads(text_of_datasets)
                if total is not None and total < 0:
                    total = nonneg(total, row[0])
                if isinstance(datasets, list):  # each row gets its own list, as before
                    datasets = list(datasets)
                rows.append(
                    (
                        *row[:9],
                        datasets,
                        as_time(created),
                        as_time(updated),
                        total,
                        problems.get(row[0]),
                    )
                )
        finally:
            result.close()
    return Table(
        title="tracking",
        caption=consistency.caption(
            "One row per request; total duration runs from first submission to the "
            "decision (or to now while undecided).",
            problems,
        ),
        columns=list(TRACKING_COLUMNS),
        rows=rows,
        brief=BRIEF["tracking"],
    ).first(limit)


_CHANGELOG_CAPTION = (
    "One row per transition. time_in_from_state: how long the request stayed in the state it "
    "left; time_in_to_state: how long it stayed in the state it entered (up to now for the "
    "current state)."
)


def change_log(
    db: Database,
    *,
    actor: str | None,
    flt: Filter,
    now: datetime | None = None,
    limit: int | None = None,
) -> Table:
    """The change log, or its first ``limit`` rows (read alone: a screen's worth of a
    million-row log costs no more than that)."""
    now = now or utcnow()
    with reading(db) as s:
        sc = scope(s, actor, flt)
        rows = changelog.rows(s, sc, now, limit)
        total = None if limit is None or len(rows) < limit else changelog.count(s, sc)
        problems = consistency.find(s, sc, now)
    return Table(
        total=total,
        title="changelog",
        caption=consistency.caption(_CHANGELOG_CAPTION, problems),
        columns=list(changelog.COLUMNS),
        rows=rows,
        brief=BRIEF["changelog"],
    )


TIME_IN_STATE_COLUMNS = [
    Column("state"),
    Column("count", "int"),
    Column("ongoing", "int"),
    Column("median", "duration"),
    Column("p90", "duration"),
    Column("max", "duration"),
    Column("sla", "duration"),
    Column("over_sla", "int"),
]


def time_in_state(
    db: Database,
    *,
    actor: str | None,
    flt: Filter,
    now: datetime | None = None,
    limit: int | None = None,
) -> Table:
    now = now or utcnow()
    with reading(db) as s:
        sc = scope(s, actor, flt)
        by_state = summaries(s, sc, now)
        problems = consistency.find(s, sc, now)
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
        caption=consistency.caption(
            "Every stay in each non-final state, including stays still going on "
            "(counted up to now).",
            problems,
        ),
        columns=list(TIME_IN_STATE_COLUMNS),
        rows=rows,
    ).first(limit)


SLA_COLUMNS = [
    Column("request"),
    Column("title"),
    Column("state"),
    Column("since", "time"),
    Column("in_state_for", "duration"),
    Column("sla", "duration"),
    Column("over_by", "duration"),
    Column("requester"),
    Column("reviewer"),
]


def sla_breaches(
    db: Database,
    *,
    actor: str | None,
    flt: Filter,
    now: datetime | None = None,
    limit: int | None = None,
) -> Table:
    """Requests sitting in a state longer than its SLA right now."""
    now = now or utcnow()
    slas = {s.name: s.sla for s in WF.states if s.sla is not None}
    with db.read() as s:
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
        problems = consistency.find(s, scope(s, actor, flt), now)
    return Table(
        title="sla-breaches",
        caption=consistency.caption(
            "Requests in a state for longer than its target right now.", problems
        ),
        columns=list(SLA_COLUMNS),
        rows=rows,
        brief=BRIEF["sla"],
    ).first(limit)


Report = Callable[..., Table]
REPORTS: dict[str, Report] = {
    "tracking": tracking_table,
    "changelog": change_log,
    "time-in-state": time_in_state,
    "sla": sla_breaches,
}
BRIEF: dict[str, tuple[str, ...]] = {
    "tracking": ("request", "title", "state", "requester", "reviewer", "created", "total_duration"),
    "changelog": (
        "request",
        "order",
        "from_state",
        "to_state",
        "at",
        "actor",
        "time_in_from_state",
    ),
    "sla": ("request", "title", "state", "in_state_for", "sla", "over_by", "reviewer"),
}
"""Each report's columns worth a narrow terminal (all of them, when it is not named)."""
COLUMNS: dict[str, list[Column]] = {
    "tracking": TRACKING_COLUMNS,
    "changelog": changelog.COLUMNS,
    "time-in-state": TIME_IN_STATE_COLUMNS,
    "sla": SLA_COLUMNS,
}
"""Each report's columns, known before it is run (for the API's description)."""


def _header(columns: list[Column]) -> str:
    return ",".join(c.machine_name for c in columns) + "\r\n"


def write_report_csv(
    db: Database,
    name: str,
    *,
    actor: str | None,
    flt: Filter,
    out: IO[str],
    tz: ZoneInfo,
    now: datetime | None = None,
) -> int:
    """Write report ``name`` as CSV to ``out``; return its number of rows.

    The same text as ``tables.write_csv`` of the report's table; the change log and the
    tracking table are streamed rather than built in memory first.
    """
    if name == "changelog":
        now = now or utcnow()
        with reading(db) as s:
            return changelog.write_csv(
                s, scope(s, actor, flt), now, tz, out, _header(changelog.COLUMNS)
            )
    if name == "tracking":
        now = now or utcnow()
        with reading(db) as s:
            sc = scope(s, actor, flt)
            return tracking.write_csv(
                s,
                sc,
                _total_duration(now),
                tz,
                out,
                _header(TRACKING_COLUMNS),
                consistency.find(s, sc, now),
            )
    table = REPORTS[name](db, actor=actor, flt=flt, now=now)
    write_csv(table, out, tz)
    return len(table.rows)


def write_report(
    db: Database,
    name: str,
    *,
    actor: str | None,
    flt: Filter,
    fmt: str,
    out: IO[Any],
    tz: ZoneInfo,
    now: datetime | None = None,
) -> int:
    """Write the whole report ``name`` as ``fmt`` (csv, json, xlsx) to an open file (text
    for CSV and JSON, binary for XLSX); return its number of rows. CSV is streamed."""
    check_format(fmt)
    if fmt == "csv":
        return write_report_csv(db, name, actor=actor, flt=flt, out=out, tz=tz, now=now)
    table = REPORTS[name](db, actor=actor, flt=flt, now=now)
    write_table(table, fmt, out, tz)
    return len(table.rows)


def export_report(
    db: Database,
    name: str,
    *,
    actor: str | None,
    flt: Filter,
    fmt: str,
    path: Path,
    tz: ZoneInfo,
    now: datetime | None = None,
) -> int:
    """Write report ``name`` to the file ``path`` (atomically) as ``fmt``; return its rows."""
    if fmt not in WRITERS:
        raise ValidationFailed(
            f"cannot write {fmt!r} to a file",
            [Detail("unknown format", field="format", value=fmt, accepted=", ".join(WRITERS))],
        )
    if fmt == "csv":
        with atomic_writer(path) as fh:
            return write_report_csv(db, name, actor=actor, flt=flt, out=fh, tz=tz, now=now)
    table = REPORTS[name](db, actor=actor, flt=flt, now=now)
    mode, writer = WRITERS[fmt]
    with atomic_writer(path, mode) as fh:
        writer(table, fh, tz)
    return len(table.rows)


def print_report_csv(
    db: Database, name: str, *, actor: str | None, flt: Filter, tz: ZoneInfo
) -> int:
    """The CSV to standard output (``steward report NAME --format csv``)."""
    return write_report_csv(db, name, actor=actor, flt=flt, out=sys.stdout, tz=tz)
