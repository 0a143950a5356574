"""Reports derived from the ledger: tracking table, change log, time in state, SLA breaches.

Durations are computed by the database from the events (window functions), never kept by
hand, and checked: a negative duration means the events are out of order and is an error,
never silently turned positive as the seed's ``abs()`` did.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Subquery

from steward.db.models import AccessRequest, Event
from steward.db.session import Database
from steward.db.types import epoch_of
from steward.domain import requests as domain
from steward.domain.workflow import Workflow
from steward.services.requests import RequestFilter, visible_query
from steward.tables import Column, Table
from steward.timeutil import utcnow

WF: Workflow = domain.WORKFLOW


def _ts(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _nonneg(seconds: float | None, where: str) -> float | None:
    if seconds is None:
        return None
    if seconds < -0.001:  # julianday arithmetic carries sub-millisecond noise
        raise ValueError(f"negative duration ({seconds:.0f}s) for {where}: events out of order")
    return max(seconds, 0.0)


def _visible_ids(s: Session, actor: str | None, flt: RequestFilter) -> Subquery:
    return visible_query(s, actor, flt).with_only_columns(AccessRequest.id).subquery()


def _transitions(s: Session, actor: str | None, flt: RequestFilter) -> Subquery:
    """State-changing events of visible requests with the time of the next one."""
    ids = _visible_ids(s, actor, flt)
    t = epoch_of(Event.at)
    return (
        select(
            Event.subject_id,
            Event.seq,
            Event.from_state,
            Event.to_state,
            Event.actor,
            Event.data["reason"].as_string().label("reason"),
            t.label("at_s"),
            func.lag(t).over(partition_by=Event.subject_id, order_by=Event.seq).label("prev_s"),
            func.lead(t).over(partition_by=Event.subject_id, order_by=Event.seq).label("next_s"),
            func.row_number().over(partition_by=Event.subject_id, order_by=Event.seq).label("ord"),
        )
        .where(
            Event.subject_kind == domain.KIND,
            Event.subject_id.in_(select(ids.c.id)),
            or_(Event.from_state.is_(None), Event.from_state != Event.to_state),
        )
        .subquery()
    )


def tracking_table(
    db: Database, *, actor: str | None, flt: RequestFilter, now: datetime | None = None
) -> Table:
    now = now or utcnow()
    with db.transaction() as s:
        ids = _visible_ids(s, actor, flt)
        t = epoch_of(Event.at)
        clock = (
            select(
                Event.subject_id,
                func.min(case((Event.to_state == WF.clock_start, t))).label("start"),
                func.min(case((Event.to_state.in_(sorted(WF.clock_stop)), t))).label("stop"),
            )
            .where(
                Event.subject_kind == domain.KIND,
                Event.subject_id.in_(select(ids.c.id)),
                Event.from_state.is_distinct_from(Event.to_state),
            )
            .group_by(Event.subject_id)
            .subquery()
        )
        r = AccessRequest
        q = (
            select(
                r.id,
                r.project_id,
                r.title,
                r.state,
                r.requester,
                r.institution,
                r.project_lead,
                r.intended_use,
                r.reviewer,
                r.datasets,
                r.created_at,
                r.updated_at,
                clock.c.start,
                clock.c.stop,
            )
            .join(clock, clock.c.subject_id == r.id, isouter=True)
            .where(r.id.in_(select(ids.c.id)))
            .order_by(r.created_at, r.id)
        )
        rows: list[Sequence[Any]] = []
        now_s = now.timestamp()
        for row in s.execute(q):
            start, stop = row.start, row.stop
            total = None if start is None else _nonneg((stop or now_s) - start, row.id)
            rows.append(
                (
                    row.id,
                    row.project_id,
                    row.title,
                    row.state,
                    row.requester,
                    row.institution,
                    row.project_lead,
                    row.intended_use,
                    row.reviewer,
                    row.datasets,
                    row.created_at,
                    row.updated_at,
                    total,
                )
            )
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


def change_log(
    db: Database, *, actor: str | None, flt: RequestFilter, now: datetime | None = None
) -> Table:
    now = now or utcnow()
    terminal = WF.terminal_states
    with db.transaction() as s:
        tr = _transitions(s, actor, flt)
        q = select(tr).order_by(tr.c.subject_id, tr.c.seq)
        now_s = now.timestamp()
        rows: list[Sequence[Any]] = []
        for e in s.execute(q):
            left = None if e.from_state is None else _nonneg(e.at_s - e.prev_s, e.subject_id)
            if e.next_s is not None:
                stayed = _nonneg(e.next_s - e.at_s, e.subject_id)
            elif e.to_state in terminal:
                stayed = None
            else:
                stayed = _nonneg(now_s - e.at_s, e.subject_id)
            rows.append(
                (
                    e.subject_id,
                    e.ord,
                    e.from_state,
                    e.to_state,
                    _ts(e.at_s),
                    e.actor,
                    e.reason,
                    left,
                    stayed,
                    e.next_s is None,
                )
            )
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


def _durations(
    s: Session, actor: str | None, flt: RequestFilter, now: datetime
) -> dict[str, list[tuple[float, bool]]]:
    tr = _transitions(s, actor, flt)
    now_s = literal(now.timestamp(), Float)
    q = select(
        tr.c.to_state,
        cast(func.coalesce(tr.c.next_s, now_s) - tr.c.at_s, Float),
        tr.c.next_s.is_(None),
    ).where(tr.c.to_state.not_in(sorted(WF.terminal_states)))
    out: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for state, seconds, ongoing in s.execute(q):
        out[state].append((max(seconds, 0.0), bool(ongoing)))
    return out


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (the same as numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def time_in_state(
    db: Database, *, actor: str | None, flt: RequestFilter, now: datetime | None = None
) -> Table:
    now = now or utcnow()
    with db.transaction() as s:
        by_state = _durations(s, actor, flt, now)
    rows: list[Sequence[Any]] = []
    for st in WF.states:
        if st.terminal:
            continue
        values = by_state.get(st.name, [])
        secs = sorted(v for v, _ in values)
        sla = st.sla.total_seconds() if st.sla else None
        rows.append(
            (
                st.name,
                len(secs),
                sum(1 for _, ongoing in values if ongoing),
                statistics.median(secs) if secs else None,
                _quantile(secs, 0.9) if secs else None,
                secs[-1] if secs else None,
                sla,
                None if sla is None else sum(1 for v in secs if v > sla),
            )
        )
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
        for row in s.scalars(q):
            sla = slas[row.state]
            stayed = (now - row.state_since).total_seconds()
            rows.append(
                (
                    row.id,
                    row.title,
                    row.state,
                    row.state_since,
                    stayed,
                    sla.total_seconds(),
                    stayed - sla.total_seconds(),
                    row.requester,
                    row.reviewer,
                )
            )
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
