"""A subject's history as people read it: every event, and the time spent in each state.

Shared by every tracked kind (requests, packages, shares) so "time in state" means the same
thing everywhere: the clock for a state starts when the subject enters it and stops when it
leaves; events that do not change state (comments, edits) do not restart it; the current
state counts up to now unless it is terminal.

A history already in the database may be out of order (an event dated before the one it
follows, or after now — imports once let such rows in): then the entry is flagged
``out_of_order`` and the durations it would make negative are left out (``None``), never
shown as zero and never allowed to break the page that shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from steward.db.models import Event
from steward.domain.workflow import Workflow
from steward.errors import Detail, ValidationFailed
from steward.services.ledger import Tracked
from steward.timeutil import naive_times


class TimelineEntry(BaseModel):
    seq: int
    at: datetime
    actor: str
    type: str
    from_state: str | None
    to_state: str
    reason: str | None
    data: dict[str, Any]
    time_in_previous_state: float | None
    out_of_order: bool = False
    """Dated before the event it follows: its history is inconsistent, durations unknown."""


def build_timeline(events: Sequence[Event]) -> tuple[list[TimelineEntry], dict[str, float]]:
    """Entries in order, and total seconds per state left so far."""
    out: list[TimelineEntry] = []
    totals: dict[str, float] = {}
    entered: datetime | None = None
    previous: datetime | None = None
    for e in events:
        spent = None
        backwards = previous is not None and e.at < previous
        previous = e.at if previous is None else max(previous, e.at)
        if e.from_state != e.to_state:
            if entered is not None and e.from_state is not None:
                spent = (e.at - entered).total_seconds()
                if spent < 0:
                    spent = None  # unknown: the events are out of order
                else:
                    totals[e.from_state] = totals.get(e.from_state, 0.0) + spent
            entered = e.at
        out.append(
            TimelineEntry(
                seq=e.seq,
                at=e.at,
                actor=e.actor,
                type=e.type,
                from_state=e.from_state,
                to_state=e.to_state,
                reason=e.data.get("reason") or e.data.get("text"),
                data=e.data,
                time_in_previous_state=spent,
                out_of_order=backwards,
            )
        )
    return out, totals


def current_stay(
    totals: dict[str, float], *, state: str, since: datetime, terminal: bool, now: datetime
) -> float | None:
    """Add the ongoing stay in ``state`` to ``totals``; None when the state is terminal, or
    unknown because the subject entered it after ``now`` (an event dated in the future)."""
    if terminal:
        return None
    spent = (now - since).total_seconds()
    if spent < 0:
        return None
    totals[state] = totals.get(state, 0.0) + spent
    return spent


class History(BaseModel):
    timeline: list[TimelineEntry]
    time_in_state: dict[str, float]
    current_state_for: float | None


_EVENTS = (
    select(Event)
    .where(Event.subject_kind == bindparam("kind"), Event.subject_id == bindparam("subject_id"))
    .order_by(Event.seq)
)
"""A subject's events in order, built once (every detail and timeline asks it)."""


def history(session: Session, *, workflow: Workflow, row: Tracked, now: datetime) -> History:
    """A subject's events in order, time per state, and how long it has been in its state."""
    events = session.scalars(_EVENTS, {"kind": workflow.kind, "subject_id": row.id})
    timeline, totals = build_timeline(list(events))
    current_for = current_stay(
        totals,
        state=row.state,
        since=row.state_since,
        terminal=workflow.state(row.state).terminal,
        now=now,
    )
    return History(timeline=timeline, time_in_state=totals, current_state_for=current_for)


def check_filter(
    workflow: Workflow,
    states: Sequence[str],
    ranges: Mapping[str, tuple[datetime | None, datetime | None]],
) -> None:
    """The checks every list filter needs: known states, ranges that end after they start,
    and times that say their zone. Every problem is listed."""
    problems = [
        Detail("unknown state", field="state", value=s, accepted=", ".join(workflow.state_names))
        for s in states
        if s not in workflow.state_names
    ]
    for name, (lo, hi) in ranges.items():
        if lo and hi and lo > hi:
            problems.append(Detail("the range ends before it starts", field=name))
    problems += naive_times(
        **{
            f"{name}_{end}": value
            for name, pair in ranges.items()
            for end, value in zip(("from", "to"), pair, strict=True)
        }
    )
    if problems:
        raise ValidationFailed("the filters are not valid", problems)


def within(
    column: ColumnElement[datetime] | InstrumentedAttribute[Any],
    lo: datetime | None,
    hi: datetime | None,
) -> list[ColumnElement[bool]]:
    """Conditions for a [lo, hi) time range; an open end adds none."""
    out: list[ColumnElement[bool]] = []
    if lo:
        out.append(column >= lo)
    if hi:
        out.append(column < hi)
    return out
