"""``ledger.append_many`` writes exactly what ``ledger.record`` would, event by event.

Random histories of access requests (every command a request can take, comments, edits,
reviewer changes, several events at one instant) are appended once in bulk and once replayed
one command at a time through ``record_create``/``record`` with contexts built from the row,
as a live command builds them; the events (stays included), read-model rows and change logs
must be identical — on SQLite and on PostgreSQL (``COPY``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.db.models import AccessRequest, ChangeLog, Event
from steward.domain import requests as domain
from steward.domain.workflow import Context
from steward.errors import Forbidden, InvalidTransition, ValidationFailed
from steward.services import ledger, subjects
from steward.services.requests import REQUEST
from tests.conftest import Consortium

ROLES = {
    "sam": frozenset({"steward"}),
    "rita": frozenset({"reviewer"}),
    "rob": frozenset({"reviewer"}),
    "ada": frozenset({"requester"}),
    "bea": frozenset({"requester"}),
    "vic": frozenset({"viewer"}),
}
START = datetime(2024, 1, 1, 9, tzinfo=UTC)
WF = domain.WORKFLOW


class _Undo(Exception):
    """Raised to roll a transaction back once its result has been read."""


@dataclass(frozen=True)
class Step:
    command: str
    actor: str
    at: datetime
    data: dict[str, Any]


def _data(command: str, draw: Callable[[Any], Any], at: datetime) -> dict[str, Any]:
    reason = draw(st.sampled_from(["", "needs ethics", 'with "quotes", commas\nand lines']))
    if command == "comment":
        return {"text": draw(st.sampled_from(["ok", "a, b"]))}
    if command == "assign-reviewer":
        return {"reviewer": draw(st.sampled_from(["rita", "rob"]))}
    if command == "edit":
        return {"title": draw(st.sampled_from(["New title", "Другое"]))}
    if command == "approve" and draw(st.booleans()):
        return {"expires_at": (at + timedelta(days=365)).isoformat()}
    if command in domain.REASON_REQUIRED:
        return {"reason": reason or "because"}
    return {"reason": reason} if reason else {}


@st.composite
def histories(draw: Callable[[Any], Any]) -> list[tuple[str, list[Step]]]:
    """A few requests, each a walk through the workflow by people allowed to take each step."""
    out = []
    for n in range(draw(st.integers(1, 4))):
        requester = draw(st.sampled_from(["ada", "bea"]))
        facts: dict[str, Any] = {"requester": requester, "reviewer": None}
        at = START + timedelta(days=n, microseconds=draw(st.integers(0, 999_999)))
        create = {"title": f"Request {n}", "requester": requester, "datasets": ["raw/wgs"]}
        if draw(st.booleans()):
            create.update(institution="Uni, A", project_lead="Prof", intended_use="Study")
        steps = [Step("create", draw(st.sampled_from([requester, "sam"])), at, create)]
        state = WF.initial
        for _ in range(draw(st.integers(0, 9))):
            actor = draw(st.sampled_from(sorted(ROLES)))
            ctx = Context(actor=actor, roles=ROLES[actor], subject=dict(facts))
            allowed = WF.available(state, ctx)
            if not allowed:
                continue
            command = draw(st.sampled_from(allowed))
            gap = draw(st.sampled_from([0, 1, 3600, 86_400 * 3]))
            at = at + timedelta(seconds=gap, microseconds=draw(st.integers(0, 999)))
            data = _data(command, draw, at)
            steps.append(Step(command, actor, at, data))
            if command == "assign-reviewer":
                facts["reviewer"] = data["reviewer"]
            state = WF.decide(command, state, ctx).to_state
        out.append((f"req_{n:026d}", steps))
    return out


def _bulk(s: Session, project: str, history: list[tuple[str, list[Step]]]) -> None:
    items = []
    for sid, steps in history:
        facts: dict[str, Any] = {"requester": steps[0].data["requester"], "reviewer": None}
        changes = []
        for i, step in enumerate(steps):
            ctx = Context(actor=step.actor, roles=ROLES[step.actor], subject=dict(facts))
            changes.append(ledger.Change(step.command, ctx, step.at, step.data, f"k:{sid}:{i}"))
            if step.command == "assign-reviewer":
                facts["reviewer"] = step.data["reviewer"]
        items.append(ledger.NewSubject(sid, project, changes))
    done = ledger.append_many(s, REQUEST, items)
    assert (done.subjects, done.events) == (len(history), sum(len(h) for _, h in history))


def _one_by_one(s: Session, project: str, history: list[tuple[str, list[Step]]]) -> None:
    for sid, steps in history:
        first = steps[0]
        row = AccessRequest(id=sid, project_id=project, version=1)
        ctx = Context(actor=first.actor, roles=ROLES[first.actor])
        ledger.record_create(
            s,
            kind=REQUEST,
            row=row,
            ctx=ctx,
            data=first.data,
            at=first.at,
            idempotency_key=f"k:{sid}:0",
        )
        for i, step in enumerate(steps[1:], start=1):
            ctx = subjects.context(REQUEST, step.actor, ROLES[step.actor], row)
            ledger.record(
                s,
                kind=REQUEST,
                row=row,
                command=step.command,
                ctx=ctx,
                data=step.data,
                at=step.at,
                idempotency_key=f"k:{sid}:{i}",
            )


def _snapshot(s: Session) -> tuple[list[Any], list[Any], list[Any]]:
    e = Event.__table__
    events = s.execute(
        select(*[c for c in e.c if c.name != "id"]).order_by(e.c.subject_id, e.c.seq)
    ).all()
    requests = s.execute(
        select(AccessRequest.__table__).order_by(AccessRequest.__table__.c.id)
    ).all()
    logs = s.execute(select(ChangeLog.__table__).order_by(ChangeLog.__table__.c.subject_id)).all()
    return [tuple(r) for r in events], [tuple(r) for r in requests], [tuple(r) for r in logs]


def _written(c: Consortium, write: Callable[[Session], None]) -> Any:
    """What ``write`` leaves in the database, read in its transaction, then rolled back."""
    found: Any = None
    try:
        with c.db.transaction() as s:
            write(s)
            s.flush()
            found = _snapshot(s)
            raise _Undo
    except _Undo:
        pass
    return found


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_append_many_writes_what_record_writes_event_by_event(
    consortium: Consortium, history: list[tuple[str, list[Step]]]
) -> None:
    c = consortium
    bulk = _written(c, lambda s: _bulk(s, c.project, history))
    single = _written(c, lambda s: _one_by_one(s, c.project, history))
    assert bulk[0] == single[0]  # events: types, states, times, data, keys, stays
    assert bulk[1] == single[1]  # read-model rows, every column
    assert bulk[2] == single[2]  # change logs
    assert len(bulk[0]) == sum(len(steps) for _, steps in history)


def _change(actor: str, command: str, at: datetime, **facts: Any) -> ledger.Change:
    data: dict[str, Any] = {"title": "t", "requester": "ada"} if command == "create" else {}
    subject = {"requester": "ada", "reviewer": None, **facts}
    return ledger.Change(command, Context(actor, ROLES[actor], subject), at, data)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        # a requester approving: the workflow's roles refuse it, as they would refuse record
        ([_change("ada", "create", START), _change("ada", "approve", START)], InvalidTransition),
        (
            [
                _change("ada", "create", START),
                _change("ada", "submit", START),
                _change("ada", "approve", START),
            ],
            Forbidden,
        ),
        # a time going backwards
        (
            [_change("ada", "create", START), _change("ada", "cancel", START - timedelta(1))],
            ValidationFailed,
        ),
    ],
)
def test_append_many_refuses_what_record_refuses_and_writes_nothing(
    consortium: Consortium, changes: list[ledger.Change], error: type[Exception]
) -> None:
    c = consortium
    with pytest.raises(error), c.db.transaction() as s:
        ledger.append_many(s, REQUEST, [ledger.NewSubject("req_x", c.project, changes)])
    with c.db.read() as s:
        assert s.scalars(select(Event).where(Event.subject_id == "req_x")).all() == []


def test_append_many_queues_the_outbox_effects_of_its_events(consortium: Consortium) -> None:
    """The outbox hook: effects are rows written in the events' transaction, one per key."""
    from steward.db.queue_tables import Action

    c = consortium

    def effects(
        sid: str, project: str, decision: Any, data: Any
    ) -> list[tuple[str, dict[str, Any], str]]:
        if decision.event != "submitted":
            return []
        return [("webhook", {"url": "http://127.0.0.1:9/", "body": {"id": sid}}, f"hook:{sid}")]

    changes = [
        _change("ada", "create", START),
        _change("ada", "submit", START + timedelta(hours=1)),
        _change("ada", "comment", START + timedelta(hours=2)),
    ]
    with c.db.transaction() as s:
        ledger.append_many(
            s, REQUEST, [ledger.NewSubject("req_y", c.project, changes)], effects=effects
        )
    with c.db.read() as s:
        queued = s.scalars(select(Action).where(Action.subject_id == "req_y")).all()
        assert [
            (a.action, a.idempotency_key, a.state, a.project_id, a.payload) for a in queued
        ] == [
            (
                "webhook",
                "hook:req_y",
                "pending",
                c.project,
                {"url": "http://127.0.0.1:9/", "body": {"id": "req_y"}},
            )
        ]


def test_a_creation_starts_where_it_names_in_bulk_and_one_by_one(consortium: Consortium) -> None:
    """``NewSubject.entry`` and ``record_create(state=…)``: the same entry state, the same rows;
    a state the workflow does not let a creation start in is refused by both."""
    from steward.db.models import Dataset
    from steward.domain import datasets as ds
    from steward.domain.roles import SYSTEM
    from steward.services.datasets import DATASET

    c = consortium
    ctx = Context("admin", frozenset({SYSTEM}))
    data = {
        "accession": "E-MTAB-1",
        "stage": "loading",
        "locations": [],
        "fields": {},
        "technologies": [],
        "problems": [],
    }
    change = ledger.Change(ds.DISCOVER, ctx, START, data)

    def bulk(entry: str) -> None:
        with c.db.transaction() as s:
            ledger.append_many(s, DATASET, [ledger.NewSubject("ds_a", c.project, [change], entry)])

    def single(entry: str) -> None:
        with c.db.transaction() as s:
            row = Dataset(id="ds_b", project_id=c.project)
            other = {**data, "accession": "E-MTAB-2"}
            ledger.record_create(s, kind=DATASET, row=row, ctx=ctx, data=other, state=entry)

    for refused in ("missing", "withdrawn"):
        with pytest.raises(InvalidTransition):
            bulk(refused)
        with pytest.raises(InvalidTransition):
            single(refused)
    bulk("loading")
    single("loading")
    with c.db.read() as s:
        rows = list(s.scalars(select(Dataset)))
        events = list(s.scalars(select(Event).where(Event.subject_kind == "dataset")))
    assert sorted(r.id for r in rows) == ["ds_a", "ds_b"]
    assert {r.state for r in rows} == {"loading"}
    assert {(e.from_state, e.to_state, e.type) for e in events} == {(None, "loading", "discovered")}
