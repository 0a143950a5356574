"""``ledger.record_each`` writes what ``ledger.record`` writes, command by command, in fewer
round trips — and refuses what it refuses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.db.models import AccessRequest, ChangeLog, Event
from steward.domain.workflow import Context
from steward.errors import Conflict, Forbidden, InvalidTransition
from steward.services import ledger
from steward.services.requests import REQUEST
from tests.conftest import Consortium

ADA = Context("ada", frozenset({"requester"}), {"requester": "ada", "reviewer": None})
START = datetime(2024, 1, 1, 9, tzinfo=UTC)
STEPS = [  # a subject twice in one batch: its second event needs the first's version
    ("req_1", "submit", {}),
    ("req_2", "submit", {}),
    ("req_1", "comment", {"text": "the ethics letter follows"}),
    ("req_3", "comment", {"text": "draft"}),
    ("req_1", "cancel", {"reason": "wrong dataset"}),
]


class _Undo(Exception):
    """Raised to roll a transaction back once its result has been read."""


def _requests(s: Session, project: str) -> dict[str, AccessRequest]:
    rows = {}
    for n in (1, 2, 3):
        row = AccessRequest(id=f"req_{n}", project_id=project, version=1)
        data = {"title": f"Request {n}", "requester": "ada", "datasets": ["raw/wgs"]}
        ledger.record_create(s, kind=REQUEST, row=row, ctx=ADA, data=data, at=START)
        rows[row.id] = row
    return rows


def _one_by_one(s: Session, rows: dict[str, AccessRequest]) -> None:
    for sid, command, data in STEPS:
        ledger.record(s, kind=REQUEST, row=rows[sid], command=command, ctx=ADA, data=data)


def _each(s: Session, rows: dict[str, AccessRequest]) -> None:
    steps = [ledger.Step(rows[sid], command, data) for sid, command, data in STEPS]
    assert ledger.record_each(s, kind=REQUEST, steps=steps, ctx=ADA) == len(STEPS)


def _timeless(rows: Any) -> list[tuple[Any, ...]]:
    """Rows with the times live commands took from the clock (after START) masked."""
    return [tuple("now" if isinstance(v, datetime) and v > START else v for v in r) for r in rows]


def _written(c: Consortium, write: Callable[[Session, dict[str, AccessRequest]], None]) -> Any:
    """What ``write`` leaves, without the times a live command takes from the clock."""
    found: Any = None
    try:
        with c.db.transaction() as s:
            rows = _requests(s, c.project)
            write(s, rows)
            s.flush()
            e = Event.__table__
            rest = [c for c in e.c if c.name not in ("id", "stay_seconds", "subject_id", "seq")]
            events = s.execute(
                select(e.c.subject_id, e.c.seq, *rest).order_by(e.c.subject_id, e.c.seq)
            ).all()
            r = AccessRequest.__table__
            requests = s.execute(select(r).order_by(r.c.id)).all()
            g = ChangeLog.__table__
            logs = s.execute(select(g.c.subject_id, g.c.state).order_by(g.c.subject_id)).all()
            found = _timeless(events), _timeless(requests), _timeless(logs)
            raise _Undo
    except _Undo:
        pass
    return found


def test_record_each_writes_what_record_writes_one_by_one(consortium: Consortium) -> None:
    each = _written(consortium, _each)
    single = _written(consortium, _one_by_one)
    assert each == single
    events = each[0]
    assert len(events) == 3 + len(STEPS)  # creations and every step, none merged
    assert [e[1] for e in events if e[0] == "req_1"] == [1, 2, 3, 4]  # seq, without a gap


@pytest.mark.parametrize(
    ("command", "ctx", "error"),
    [
        ("approve", ADA, InvalidTransition),  # not from draft
        ("submit", Context("vic", frozenset({"viewer"}), ADA.subject), Forbidden),
    ],
)
def test_record_each_refuses_what_record_refuses(
    consortium: Consortium, command: str, ctx: Context, error: type[Exception]
) -> None:
    c = consortium

    def batch() -> None:
        with c.db.transaction() as s:
            row = _requests(s, c.project)["req_1"]
            ledger.record_each(s, kind=REQUEST, steps=[ledger.Step(row, command, {})], ctx=ctx)

    with pytest.raises(error):
        batch()
    with c.db.read() as s:
        assert s.scalars(select(Event)).all() == []  # the whole transaction, creations too


def test_record_each_refuses_a_row_someone_changed_meanwhile(consortium: Consortium) -> None:
    """Another writer appended after the row was read: nothing of the batch is saved."""
    c = consortium
    with c.db.transaction() as s:
        _requests(s, c.project)
    with c.db.read() as s:
        rows = {r.id: r for r in s.scalars(select(AccessRequest))}  # read, then kept
    with c.db.transaction() as other:  # a second writer, committed first
        row = other.get_one(AccessRequest, "req_2")
        ledger.record(other, kind=REQUEST, row=row, command="submit", ctx=ADA, data={})

    def batch() -> None:
        with c.db.transaction() as s:
            for stale in rows.values():
                s.add(stale)
            steps = [ledger.Step(rows[sid], "comment", {"text": "x"}) for sid in sorted(rows)]
            ledger.record_each(s, kind=REQUEST, steps=steps, ctx=ADA)

    with pytest.raises(Conflict):
        batch()
    with c.db.read() as s:
        comments = s.scalars(select(Event).where(Event.type == "commented")).all()
        assert comments == []
        assert s.get_one(AccessRequest, "req_1").version == 1


def test_record_each_after_a_future_dated_event_keeps_the_ledger_in_order(
    consortium: Consortium,
) -> None:
    """As ``record``: a live command after an event dated ahead of the clock is recorded at
    that event's time, with a note saying why."""
    c = consortium
    ahead = datetime.now(UTC) + timedelta(days=2)
    with c.db.transaction() as s:
        row = AccessRequest(id="req_9", project_id=c.project, version=1)
        data = {"title": "Ahead", "requester": "ada", "datasets": ["raw/wgs"]}
        ledger.record_create(s, kind=REQUEST, row=row, ctx=ADA, data=data, at=ahead)
        step = ledger.Step(row, "comment", {"text": "now"})
        ledger.record_each(s, kind=REQUEST, steps=[step], ctx=ADA)
    with c.db.read() as s:
        comment = s.scalars(select(Event).where(Event.type == "commented")).one()
    assert comment.at == ahead
    assert "clock_note" in comment.data
