"""Separate OS processes racing on the same requests, on SQLite and on PostgreSQL.

Each worker is spawned fresh (no inherited engine or connection), builds its own ``Database``
from the same settings and waits on a barrier so every round starts at the same instant. In
every round exactly one writer may win; the others must get a clear ``Conflict`` or
``InvalidTransition``, never a raw database error, and the ledger must hold exactly one
decision with no gaps in its sequence numbers.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from steward.config import Settings
from steward.db.models import AccessRequest, ChangeLog, Event
from steward.db.session import Database
from steward.domain import change_log
from steward.domain.requests import RequestFields
from steward.services import requests
from tests.conftest import Consortium

FIELDS = RequestFields(
    title="Race",
    institution="Uni",
    project_lead="Prof X",
    intended_use="Research",
    datasets=("raw/wgs",),
)
CLEAR = {"Conflict", "InvalidTransition"}
MAX_PROCS = 10
FIRST_USE = "first-use"  # not a workflow command: make sure the schema exists


@dataclass(frozen=True)
class Move:
    actor: str
    command: str
    reason: str | None = None
    text: str | None = None
    idempotency_key: str | None = None


def _worker(tasks: Any, results: Any) -> None:
    """One long-lived process: run races until told to stop.

    A task names the database (home, URL), the requests and this process's move; the process
    builds its own ``Database`` for each URL it is given (never one inherited from the parent)
    and, for each request, waits at the shared barrier and then acts at once.
    """
    from steward.config import Settings
    from steward.db.session import Database
    from steward.errors import StewardError

    db: Database | None = None
    try:
        while (task := tasks.get()) is not None:
            home, url, request_ids, move, barrier = task
            if db is None or db.settings.database_url != url:
                if db is not None:
                    db.dispose()
                db = Database(Settings(home=Path(home), database_url=url))
            for rid in request_ids:
                barrier.wait(timeout=120)
                try:
                    if move.command == FIRST_USE:
                        db.ensure_schema()
                        results.put((rid, move.command, "ok", db.current_revision() or ""))
                        continue
                    key = move.idempotency_key and f"{move.idempotency_key}:{rid}"
                    v = requests.act(
                        db,
                        actor=move.actor,
                        request_id=rid,
                        command=move.command,
                        reason=move.reason,
                        text=move.text,
                        idempotency_key=key,
                    )
                    results.put((rid, move.command, "ok", f"{v.state}@{v.version}"))
                except StewardError as exc:
                    results.put((rid, move.command, type(exc).__name__, exc.message))
                except Exception:
                    results.put((rid, move.command, "CRASH", traceback.format_exc()))
    finally:
        if db is not None:
            db.dispose()


@dataclass
class Pool:
    """Spawned worker processes shared by the tests here (starting Python is the slow part)."""

    ctx: Any
    manager: Any
    procs: list[Any]
    tasks: list[Any]
    results: Any


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    tasks = [ctx.Queue() for _ in range(MAX_PROCS)]
    procs = [ctx.Process(target=_worker, args=(q, results), daemon=True) for q in tasks]
    for p in procs:
        p.start()
    with ctx.Manager() as manager:
        yield Pool(ctx, manager, procs, tasks, results)
        for q in tasks:
            q.put(None)
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
    assert [p.exitcode for p in procs] == [0] * len(procs)


def race(
    pool: Pool, c: Consortium | Settings, request_ids: list[str], moves: list[Move]
) -> list[tuple[str, ...]]:
    """One process per move; for each request in turn all of them act at the same instant."""
    assert len(moves) <= MAX_PROCS
    barrier = pool.manager.Barrier(len(moves))
    settings = c if isinstance(c, Settings) else c.db.settings
    for q, m in zip(pool.tasks, moves, strict=False):
        q.put((str(settings.home), settings.resolved_database_url, request_ids, m, barrier))
    out = [pool.results.get(timeout=300) for _ in range(len(moves) * len(request_ids))]
    assert all(p.is_alive() for p in pool.procs)
    crashes = [r for r in out if r[2] not in CLEAR | {"ok"}]
    assert crashes == [], "\n".join(r[3] for r in crashes)
    return out


def submitted_requests(c: Consortium, n: int) -> list[str]:
    out = []
    for _ in range(n):
        v = requests.create(c.db, actor=c.requester, project=c.project, fields=FIELDS)
        requests.act(c.db, actor=c.requester, request_id=v.id, command="submit")
        out.append(v.id)
    return out


def ledger_of(c: Consortium, rid: str) -> tuple[AccessRequest, list[Event]]:
    """A request's read model and events, after checking that its kept change log is the one
    its events give (the losers of a race left no line behind)."""
    with c.db.transaction() as s:
        row = s.get(AccessRequest, rid)
        assert row is not None
        evs = list(
            s.scalars(
                select(Event)
                .where(Event.subject_kind == "access_request", Event.subject_id == rid)
                .order_by(Event.seq)
            )
        )
        kept = s.get(ChangeLog, ("access_request", rid))
        assert kept is not None
        want = change_log.Builder(rid)
        for e in evs:
            if e.from_state != e.to_state:
                want.add(
                    e.from_state,
                    e.to_state,
                    e.at,
                    e.actor,
                    change_log.reason_of(e.data),
                    e.stay_seconds,
                )
        assert (kept.lines, kept.moves, kept.state) == (want.text, want.moves, row.state)
        assert kept.since == row.state_since
        return row, evs


def assert_no_gaps(row: AccessRequest, evs: list[Event]) -> None:
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    assert row.version == len(evs)
    assert row.state == evs[-1].to_state


def by_request(results: list[tuple[str, ...]]) -> dict[str, list[tuple[str, ...]]]:
    out: dict[str, list[tuple[str, ...]]] = {}
    for r in results:
        out.setdefault(r[0], []).append(r)
    return out


def test_approve_against_reject(consortium: Consortium, pool: Pool) -> None:
    c = consortium
    rids = submitted_requests(c, 25)
    moves = [
        Move(c.reviewer, "approve"),
        Move(c.reviewer2, "reject", reason="not this time"),
    ]
    results = race(pool, c, rids, moves)
    winners: Counter[str] = Counter()
    for rid, outcomes in by_request(results).items():
        ok = [r for r in outcomes if r[2] == "ok"]
        assert len(ok) == 1, outcomes
        assert len(outcomes) == 2
        row, evs = ledger_of(c, rid)
        assert_no_gaps(row, evs)
        decisions = [e for e in evs if e.type in ("approved", "rejected")]
        assert len(decisions) == 1
        assert decisions[0].type == {"approve": "approved", "reject": "rejected"}[ok[0][1]]
        assert row.state == decisions[0].to_state
        assert row.decided_by == decisions[0].actor
        assert row.version == 3
        winners[ok[0][1]] += 1
    assert sum(winners.values()) == 25


def test_ten_processes_approving(consortium: Consortium, pool: Pool) -> None:
    c = consortium
    rids = submitted_requests(c, 8)
    deciders = [c.reviewer, c.reviewer2, c.steward, c.admin]
    moves = [Move(deciders[i % len(deciders)], "approve") for i in range(10)]
    results = race(pool, c, rids, moves)
    for rid, outcomes in by_request(results).items():
        assert len(outcomes) == 10
        kinds = Counter(r[2] for r in outcomes)
        assert kinds["ok"] == 1, outcomes
        assert set(kinds) <= {"ok"} | CLEAR
        row, evs = ledger_of(c, rid)
        assert_no_gaps(row, evs)
        assert [e.type for e in evs] == ["created", "submitted", "approved"]
        assert row.state == "approved"


def test_same_idempotency_key_from_many_processes(consortium: Consortium, pool: Pool) -> None:
    """Six senders of one logical command (same key): one event; the rest replay or conflict."""
    c = consortium
    rids = submitted_requests(c, 6)
    moves = [Move(c.reviewer, "approve", idempotency_key="retry") for _ in range(6)]
    results = race(pool, c, rids, moves)
    for rid, outcomes in by_request(results).items():
        ok = [r for r in outcomes if r[2] == "ok"]
        assert ok, outcomes
        assert all(r[3] == "approved@3" for r in ok)
        assert {r[2] for r in outcomes} <= {"ok", "Conflict"}
        row, evs = ledger_of(c, rid)
        assert_no_gaps(row, evs)
        assert [e.type for e in evs] == ["created", "submitted", "approved"]
        assert evs[-1].idempotency_key == f"retry:{rid}"


def test_concurrent_annotations_never_leave_gaps(consortium: Consortium, pool: Pool) -> None:
    """Comments do not change the state, so every loser is a Conflict; winners are all kept."""
    c = consortium
    rids = submitted_requests(c, 10)
    moves = [Move(who, "comment", text=f"note from {who}") for who in (c.reviewer, c.steward)]
    moves += [Move(c.requester, "comment", text="me too"), Move(c.viewer, "comment", text="hm")]
    results = race(pool, c, rids, moves)
    for rid, outcomes in by_request(results).items():
        ok = [r for r in outcomes if r[2] == "ok"]
        assert ok, outcomes
        assert {r[2] for r in outcomes} <= {"ok", "Conflict"}
        row, evs = ledger_of(c, rid)
        assert_no_gaps(row, evs)
        assert len(evs) == 2 + len(ok)
        assert sorted(r[3] for r in ok) == [f"submitted@{v}" for v in range(3, 3 + len(ok))]


def test_first_use_of_a_new_database_from_many_processes(settings: Settings, pool: Pool) -> None:
    """Ten processes touch a database nobody has set up yet: one creates the schema, the
    others wait for it; none fails with 'database is locked' or a duplicate-table error."""
    results = race(pool, settings, ["fresh"], [Move("nobody", FIRST_USE)] * MAX_PROCS)
    db = Database(settings)
    try:
        head = db.head_revision()
        assert results == [("fresh", FIRST_USE, "ok", head)] * MAX_PROCS
        assert db.current_revision() == head
    finally:
        db.dispose()
