"""A subject's history as people read it: every event, and the time spent in each state.

Shared by every tracked kind (requests, packages, shares) so "time in state" means the same
thing everywhere: the clock for a state starts when the subject enters it and stops when it
leaves; events that do not change state (comments, edits) do not restart it; the current
state counts up to now unless it is terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from steward.db.models import Event


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


def build_timeline(events: Sequence[Event]) -> tuple[list[TimelineEntry], dict[str, float]]:
    """Entries in order, and total seconds per state left so far."""
    out: list[TimelineEntry] = []
    totals: dict[str, float] = {}
    entered: datetime | None = None
    for e in events:
        spent = None
        if e.from_state != e.to_state:
            if entered is not None and e.from_state is not None:
                spent = (e.at - entered).total_seconds()
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
            )
        )
    return out, totals


def current_stay(
    totals: dict[str, float], *, state: str, since: datetime, terminal: bool, now: datetime
) -> float | None:
    """Add the ongoing stay in ``state`` to ``totals``; None when the state is terminal."""
    if terminal:
        return None
    spent = max(0.0, (now - since).total_seconds())
    totals[state] = totals.get(state, 0.0) + spent
    return spent
