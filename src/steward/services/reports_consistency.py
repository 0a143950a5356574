"""Requests whose history cannot give true durations, named by every report.

A history is inconsistent when a state change is dated before the change it follows (the stay
it records is negative), or when the request's latest event is dated after the moment the
report is made for (imports once accepted rows from the future; a clock may have been wrong).
One such request used to make a whole report fail. Now the reports leave out the durations it
would make negative (``domain.change_log.nonneg``) and name it: the tracking table in its
``problem`` column, every report in its caption.

Cheap enough for every report: out-of-order stays are found through the index on
``(subject_kind, project_id, from_state, stay_seconds)`` (one short range per state, usually
empty), requests dated after now by one pass over the covered requests' read model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.db.models import AccessRequest, Event
from steward.domain import requests as domain
from steward.services.reports_scope import OF_KIND, Scope

STATES = domain.WORKFLOW.state_names
ROUNDING = 0.001
"""Seconds below zero that are rounding, not disorder (as ``nonneg`` counts them)."""
NAMED = 5
"""Requests a caption names before it says how many more there are."""


def find(s: Session, sc: Scope, now: datetime) -> dict[str, str]:
    """Request id → what is inconsistent in its history, for the requests ``sc`` covers."""
    e, r = Event, AccessRequest
    out: dict[str, str] = {}
    # No ORDER BY: sorting by request would lead the planner to read every event of the
    # project in request order instead of the stays index's few (usually no) entries.
    backwards = select(e.subject_id, e.seq, e.stay_seconds).where(
        OF_KIND, sc.on_events, e.from_state.in_(STATES), e.stay_seconds < -ROUNDING
    )
    found: list[tuple[str, int, float]] = sorted(
        (rid, seq, stay or 0.0) for rid, seq, stay in s.execute(backwards)
    )
    for rid, seq, stay in found:
        out.setdefault(rid, f"event {seq} is dated {-stay:.0f}s before the state change it follows")
    ahead = sc.visible.with_only_columns(r.id, r.updated_at).where(r.updated_at > now)
    for rid, latest in s.execute(ahead):
        out.setdefault(
            rid,
            f"its latest event is dated {latest.isoformat(timespec='seconds')}, after now "
            f"({now.isoformat(timespec='seconds')})",
        )
    return out


def caption(text: str, problems: Mapping[str, str]) -> str:
    """A report's caption, naming the requests whose durations it had to leave out."""
    if not problems:
        return text
    ids = sorted(problems)
    named = "; ".join(f"{rid} ({problems[rid]})" for rid in ids[:NAMED])
    more = (
        f"; and {len(ids) - NAMED} more (the tracking report's problem column lists them all)"
        if len(ids) > NAMED
        else ""
    )
    return (
        f"{text} INCONSISTENT HISTORY — {len(ids)} request(s) with events out of order or "
        f"dated after now; durations they would make negative are left out: {named}{more}."
    )
