"""Time in state: every stay of the covered requests in each non-final state.

A stay either ended — then the event that ended it carries its length (``stay_seconds``,
written with the event) — or is still going on, and runs from the request's ``state_since``
(its read model) up to now. So nothing pairs a million transitions any more:

- when the report covers one whole project, the finished stays are read from the index on
  ``(subject_kind, project_id, from_state, stay_seconds)``: one grouped count, and for each
  percentile a short window of that state's stays, in index order, at the rank it needs;
- otherwise (a requester's own requests, a filter on the requests) the stays of the covered
  requests are fetched and sorted in Python.

Percentiles are those of all stays together (finished and ongoing), with the definitions the
report has always used: the median as ``statistics.median``, p90 by linear interpolation
between closest ranks (numpy's default). Negative stays (a report asked for a time before a
request entered its state) count as zero, as before.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from steward.db.models import AccessRequest, Event
from steward.domain import requests as domain
from steward.services.reports_scope import OF_KIND, Scope
from steward.services.reports_sql import elapsed, micros_of

WF = domain.WORKFLOW
P90 = 0.9
OPEN_STATES = tuple(st.name for st in WF.states if not st.terminal)
SLA = {st.name: st.sla.total_seconds() for st in WF.states if st.sla is not None}

Summary = tuple[int, int, float, float, float, int]
"""count, ongoing, median, p90, max, over SLA (0 when the state has no SLA)."""

Window = Callable[[int, int], list[float]]
"""(offset, count) → that many finished stays, in order, from the ``offset``-th smallest."""


def _quantile_ranks(n: int, q: float) -> tuple[int, int, float]:
    """The two ranks a quantile interpolates between, and the weight of the second."""
    if n == 1:
        return 0, 0, 0.0
    pos = (n - 1) * q
    lo = int(pos)
    return lo, min(lo + 1, n - 1), pos - lo


def _kth(
    rank: int, first: int, window: Sequence[float], n_done: int, ongoing: Sequence[float]
) -> float:
    """The ``rank``-th smallest (from 0) of the finished stays and the ongoing ones together.

    ``window`` holds the finished stays of ranks ``first`` … ``first + len(window) - 1``, with
    ``first <= max(0, rank - len(ongoing))`` and the window reaching ``rank`` (or the last
    finished stay): every finished stay before the window is no greater than its first value,
    so for any value ``v`` from the window's first value on, the number of finished stays up
    to ``v`` is ``first`` plus those up to ``v`` in the window. The answer is the smallest
    candidate with at least ``rank + 1`` stays up to it; candidates below the window cannot
    be (at most ``first + len(ongoing) <= rank`` stays lie below them).
    """
    if not window:
        return ongoing[rank]
    need = rank + 1
    whole_tail = first + len(window) == n_done
    low, high = window[0], window[-1]

    def enough(v: float) -> bool:
        return first + bisect_right(window, v) + bisect_right(ongoing, v) >= need

    best: float | None = None
    lo, hi = 0, len(window)  # smallest window index that is enough
    while lo < hi:
        mid = (lo + hi) // 2
        if enough(window[mid]):
            hi = mid
        else:
            lo = mid + 1
    if lo < len(window):
        best = window[lo]
    start = 0 if first == 0 else bisect_left(ongoing, low)
    stop = len(ongoing) if whole_tail else bisect_right(ongoing, high)
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) // 2
        if enough(ongoing[mid]):
            hi = mid
        else:
            lo = mid + 1
    if lo < stop and (best is None or ongoing[lo] < best):
        best = ongoing[lo]
    assert best is not None, "a rank within the stays always has a value"
    return best


def _order_stats(
    ranks: Sequence[int], window_of: Window, n_done: int, ongoing: Sequence[float]
) -> dict[int, float]:
    """The stays at ``ranks`` (close together) from one window of finished stays."""
    if n_done == 0:
        return {r: ongoing[r] for r in ranks}
    first = max(0, min(ranks) - len(ongoing))
    last = min(max(ranks), n_done - 1)
    window = window_of(first, last - first + 1)
    return {r: _kth(r, first, window, n_done, ongoing) for r in ranks}


def _summary(
    state: str,
    n_done: int,
    done_max: float | None,
    done_over: int,
    window_of: Window,
    ongoing: list[float],
) -> Summary | None:
    n = n_done + len(ongoing)
    if n == 0:
        return None
    m_lo, m_hi = (n // 2, n // 2) if n % 2 else (n // 2 - 1, n // 2)
    q_lo, q_hi, _ = _quantile_ranks(n, P90)
    at = _order_stats((m_lo, m_hi), window_of, n_done, ongoing)
    at.update(_order_stats((q_lo, q_hi), window_of, n_done, ongoing))
    at[n - 1] = max(v for v in (done_max, ongoing[-1] if ongoing else None) if v is not None)
    sla = SLA.get(state)
    over = 0 if sla is None else done_over + len(ongoing) - bisect_right(ongoing, sla)
    return _stats(state, n, len(ongoing), at, over)


def _ongoing(s: Session, sc: Scope, now: datetime) -> dict[str, list[float]]:
    """Stays still going on, per state, sorted: from each request's ``state_since`` to now."""
    r = AccessRequest
    q = sc.visible.with_only_columns(r.state, elapsed(micros_of(now), r.state_since)).where(
        r.state.in_(OPEN_STATES)
    )
    out: dict[str, list[float]] = {st: [] for st in OPEN_STATES}
    for state, stayed in _driver_rows(s, q):
        out[state].append(stayed)
    for values in out.values():
        values.sort()
    return out


def _driver_rows(s: Session, q: Any) -> Sequence[Any]:
    result = s.connection().execute(q)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _finished_by_index(s: Session, project: str) -> tuple[dict[str, tuple[int, Any, int]], Any]:
    """One project's finished stays per state: counts from the index, windows on demand."""
    e = Event
    where = and_(
        OF_KIND,
        e.project_id == project,
        e.from_state.in_(OPEN_STATES),
        e.stay_seconds.is_not(None),
    )
    over = case(
        *[(and_(e.from_state == st, e.stay_seconds > sla), 1) for st, sla in SLA.items()],
        else_=None,
    )
    counts = {
        state: (int(n), top, int(n_over))
        for state, n, top, n_over in _driver_rows(
            s,
            select(
                e.from_state, func.count(e.stay_seconds), func.max(e.stay_seconds), func.count(over)
            )
            .where(where)
            .group_by(e.from_state),
        )
    }

    def window_for(state: str) -> Window:
        def window(offset: int, count: int) -> list[float]:
            q = (
                select(e.stay_seconds)
                .where(OF_KIND, e.project_id == project, e.from_state == state)
                .where(e.stay_seconds.is_not(None))
                .order_by(e.stay_seconds)
                .limit(count)
                .offset(offset)
            )
            return [v for (v,) in _driver_rows(s, q)]

        return window

    return counts, window_for


def _finished_fetched(s: Session, sc: Scope) -> dict[str, list[float]]:
    """The covered requests' finished stays per state, sorted in Python."""
    e = Event
    q = select(e.from_state, e.stay_seconds).where(
        OF_KIND, sc.on_events, e.from_state.in_(OPEN_STATES), e.stay_seconds.is_not(None)
    )
    out: dict[str, list[float]] = {st: [] for st in OPEN_STATES}
    for state, stayed in _driver_rows(s, q):
        out[state].append(stayed)
    for values in out.values():
        values.sort()
    return out


def _sorted_window(values: list[float]) -> Window:
    return lambda offset, count: values[offset : offset + count]


def _stats(state: str, n: int, ongoing: int, at: dict[int, float], over: int) -> Summary:
    """The summary of a state from its stays at the ranks it needs (clamped at zero)."""
    at = {r: max(v, 0.0) for r, v in at.items()}
    m_lo, m_hi = (n // 2, n // 2) if n % 2 else (n // 2 - 1, n // 2)
    q_lo, q_hi, q_w = _quantile_ranks(n, P90)
    median = at[m_lo] if m_lo == m_hi else (at[m_lo] + at[m_hi]) / 2
    p90 = at[q_lo] + (at[q_hi] - at[q_lo]) * q_w if n > 1 else at[q_lo]
    return n, ongoing, median, p90, at[n - 1], over if state in SLA else 0


def summaries(s: Session, sc: Scope, now: datetime) -> dict[str, Summary]:
    ongoing = _ongoing(s, sc, now)
    out: dict[str, Summary] = {}
    if sc.project is not None:
        counts, window_for = _finished_by_index(s, sc.project)
        for state in OPEN_STATES:
            n_done, top, n_over = counts.get(state, (0, None, 0))
            found = _summary(state, n_done, top, n_over, window_for(state), ongoing[state])
            if found is not None:
                out[state] = found
        return out
    finished = _finished_fetched(s, sc)
    for state in OPEN_STATES:
        done = finished[state]
        sla = SLA.get(state)
        n_over = 0 if sla is None else len(done) - bisect_right(done, sla)
        found = _summary(
            state,
            len(done),
            done[-1] if done else None,
            n_over,
            _sorted_window(done),
            ongoing[state],
        )
        if found is not None:
            out[state] = found
    return out
