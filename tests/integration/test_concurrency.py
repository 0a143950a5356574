"""Separate OS processes racing on the same requests, on SQLite and on PostgreSQL.

Each worker is spawned fresh (no inherited engine or connection), builds its own ``Database``
from the same settings and waits on a barrier so every round starts at the same instant. In
every round on one request exactly one writer may win; the others must get a clear ``Conflict``
or ``InvalidTransition``, never a raw database error, and the ledger must hold exactly one
decision with no gaps in its sequence numbers. Writers on *different* subjects (commands,
imports) must all succeed, up to the documented level of ``WRITERS`` processes at once.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from steward.config import Settings
from steward.db.models import AccessRequest, ChangeLog, Event
from steward.db.session import Database
from steward.domain import change_log
from steward.domain.requests import RequestFields
from steward.errors import Conflict
from steward.services import access, requests
from steward.timeutil import utcnow
from tests.conftest import Consortium

FIELDS = RequestFields(
    title="Race",
    institution="Uni",
    project_lead="Prof X",
    intended_use="Research",
    datasets=("raw/wgs",),
)
CLEAR = {"Conflict", "InvalidTransition"}
WRITERS = 16  # processes writing at once that must all succeed (docs/concepts.md)
MAX_PROCS = WRITERS
FIRST_USE = "first-use"  # not a workflow command: make sure the schema exists
IMPORT = "import"  # not a workflow command: `request import` of the file named by ``text``
ADD_USER = "add-user"  # not a workflow command: `user add` of the user named by ``text``
BOOTSTRAP = "bootstrap"  # not a workflow command: `init --admin` with the name in ``text``


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
    from steward.services import access, importer

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
                    if move.command == BOOTSTRAP:
                        assert move.text is not None
                        made_first = access.bootstrap_admin(db, user_id=move.text)
                        results.put((rid, move.command, "ok", str(made_first)))
                        continue
                    if move.command == ADD_USER:
                        assert move.text is not None
                        made = access.add_user(db, actor=move.actor, user_id=move.text)
                        results.put((rid, move.command, "ok", made.id))
                        continue
                    if move.command == IMPORT:
                        assert move.text is not None
                        done = importer.import_requests(
                            db,
                            actor=move.actor,
                            project=rid,
                            path=Path(move.text),
                            create_users=True,
                        )
                        results.put((rid, move.command, "ok", f"{done.requests}/{done.events}"))
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
    pool: Pool,
    c: Consortium | Settings,
    request_ids: list[str] | list[list[str]],
    moves: list[Move],
    while_running: Callable[[], None] | None = None,
) -> list[tuple[str, ...]]:
    """One process per move; for each request in turn all of them act at the same instant.

    ``request_ids`` is either one list that every process works through, or one list per
    process (of the same length), so that the processes act on different requests at once.
    ``while_running`` is called once the processes have their work, before their results are
    awaited.
    """
    assert len(moves) <= MAX_PROCS
    barrier = pool.manager.Barrier(len(moves))
    settings = c if isinstance(c, Settings) else c.db.settings
    if request_ids and isinstance(request_ids[0], list):
        own = [list(ids) for ids in request_ids]
    else:
        own = [list(request_ids)] * len(moves)  # type: ignore[arg-type]
    assert len(own) == len(moves)
    assert len({len(ids) for ids in own}) == 1
    for q, m, ids in zip(pool.tasks, moves, own, strict=False):
        q.put((str(settings.home), settings.resolved_database_url, ids, m, barrier))
    if while_running is not None:
        while_running()
    out = [pool.results.get(timeout=300) for _ in range(sum(len(ids) for ids in own))]
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


def test_sixteen_writers_on_different_requests_all_succeed(
    consortium: Consortium, pool: Pool
) -> None:
    """Issue 8 item 6: 8 processes commenting at once on 8 different requests got "database
    is locked" (as a conflict!) on SQLite. Writers on different subjects never conflict:
    every one of ``WRITERS`` processes must succeed, round after round, and every event
    must be there at the end."""
    c = consortium
    rounds = 4
    rids = submitted_requests(c, WRITERS)
    people = [c.reviewer, c.reviewer2, c.steward, c.requester]
    moves = [Move(people[i % len(people)], "comment", text=f"note {i}") for i in range(WRITERS)]
    results = race(pool, c, [[rid] * rounds for rid in rids], moves)
    assert [r for r in results if r[2] != "ok"] == []
    assert len(results) == WRITERS * rounds
    for rid in rids:
        row, evs = ledger_of(c, rid)
        assert_no_gaps(row, evs)
        assert [e.type for e in evs] == ["created", "submitted"] + ["commented"] * rounds
    with c.db.transaction() as s:
        written = s.scalar(
            select(func.count()).select_from(Event).where(Event.subject_id.in_(rids))
        )
    assert written == WRITERS * (2 + rounds)


def _history(path: Path, prefix: str, requesters: list[str]) -> Path:
    lines = ["request,state,at,title,requester,actor"]
    for i, who in enumerate(requesters):
        ext = f"{prefix}-{i}"
        lines += [
            f"{ext},draft,2024-0{1 + i % 9}-01T09:00:00Z,Study {ext},{who},{who}",
            f"{ext},submitted,2024-0{1 + i % 9}-02T09:00:00Z,,,{who}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_concurrent_imports_of_different_files_into_one_project(
    consortium: Consortium, pool: Pool, tmp_path: Path
) -> None:
    """Several `request import` runs at once, different files, one project; the files share
    requesters, some of whom do not exist yet (--create-users), so the imports also race to
    create the same users and memberships. All of them must succeed, and every request and
    event of every file must be there exactly once."""
    c = consortium
    n, per_file = 8, 5
    files = [
        _history(tmp_path / f"h{k}.csv", f"F{k}", ["ada", "zed", "yan", f"own{k}", "bea"])
        for k in range(n)
    ]
    moves = [Move(c.steward, IMPORT, text=str(f)) for f in files]
    results = race(pool, c, [[c.project]] * n, moves)
    assert sorted(r[2:] for r in results) == [("ok", f"{per_file}/{2 * per_file}")] * n
    with c.db.transaction() as s:
        imported = s.scalars(
            select(AccessRequest.external_id).where(AccessRequest.project_id == c.project)
        ).all()
        events = s.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.idempotency_key.like(f"import:{c.project}:%"))
        )
    assert sorted(x for x in imported if x) == sorted(
        f"F{k}-{i}" for k in range(n) for i in range(per_file)
    )
    assert events == n * per_file * 2


def released_when_waiting(dsn: str, table: str, waiters: int) -> Callable[[], None]:
    """Lock ``table`` against writes from another connection; the returned function releases
    it once ``waiters`` backends are waiting for a lock (so the racers surely overlap)."""
    import psycopg

    blocker = psycopg.connect(dsn)
    watcher = psycopg.connect(dsn, autocommit=True)
    blocker.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")

    def release() -> None:
        try:
            for _ in range(1200):
                row = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()
                if row and row[0] >= waiters:
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"{waiters} writers never waited at the same time")
        finally:
            blocker.rollback()
            blocker.close()
            watcher.close()

    return release


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_imports_racing_to_create_the_same_users(
    consortium: Consortium, pool: Pool, tmp_path: Path
) -> None:
    """Two imports into one project both find users zed and yan missing and both create them.
    On PostgreSQL the second one failed with a unique violation (a traceback) because nothing
    made imports into one project take turns. Another connection's lock on the events table
    keeps the first import inside its transaction until the second is waiting too, so the two
    overlap every time."""
    c = consortium
    files = [_history(tmp_path / f"g{k}.csv", f"G{k}", ["zed", "yan", f"own{k}"]) for k in range(2)]
    dsn = c.db.settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")
    results = race(
        pool,
        c,
        [[c.project]] * 2,
        [Move(c.steward, IMPORT, text=str(f)) for f in files],
        while_running=released_when_waiting(dsn, "events", 2),
    )
    assert sorted(r[2:] for r in results) == [("ok", "3/6")] * 2
    with c.db.transaction() as s:
        imported = s.scalars(
            select(AccessRequest.external_id).where(AccessRequest.project_id == c.project)
        ).all()
    assert sorted(x for x in imported if x) == ["G0-0", "G0-1", "G0-2", "G1-0", "G1-1", "G1-2"]


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_processes_adding_the_same_user(consortium: Consortium, pool: Pool) -> None:
    """Both find no user "nia" and both insert her: the second used to crash with the
    driver's unique violation (a traceback). Now it is a clear Conflict, nothing of it is
    saved, and running it again succeeds."""
    c = consortium
    dsn = c.db.settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")
    release = released_when_waiting(dsn, "users", 2)
    results = race(
        pool,
        c,
        [["-"]] * 2,
        [Move(c.admin, ADD_USER, text="nia")] * 2,
        while_running=release,
    )
    assert sorted(r[2] for r in results) == ["Conflict", "ok"]
    (lost,) = [r for r in results if r[2] == "Conflict"]
    assert lost[3].startswith("another process created the same thing at the same moment")
    assert access.add_user(c.db, actor=c.admin, user_id="nia").id == "nia"


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_first_administrators_at_once(settings: Settings, pool: Pool) -> None:
    """`steward init --admin root` twice at once on an empty database: one creates root,
    the other finds it made (a duplicate insert is a conflict it expects, not a failure)."""
    db = Database(settings)
    try:
        db.migrate()
    finally:
        db.dispose()
    dsn = settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")
    release = released_when_waiting(dsn, "users", 2)
    results = race(
        pool,
        settings,
        [["-"]] * 2,
        [Move("nobody", BOOTSTRAP, text="root")] * 2,
        while_running=release,
    )
    assert sorted(r[2:] for r in results) == [("ok", "False"), ("ok", "True")]


def _decide_on_what_was_loaded(c: Consortium, rid: str, at: datetime) -> None:
    """Load a request, let another process comment on it meanwhile, then approve it as
    loaded, dated ``at``."""
    from steward.domain.workflow import Context
    from steward.services import ledger

    with c.db.transaction() as s:
        row = s.get_one(AccessRequest, rid)
        requests.act(c.db, actor=c.steward, request_id=rid, command="comment", text="meanwhile")
        ctx = Context(actor=c.reviewer, roles=frozenset({"reviewer"}))
        ledger.record(s, kind=requests.KIND, row=row, command="approve", ctx=ctx, at=at)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_deciding_on_a_request_changed_meanwhile_is_a_conflict(consortium: Consortium) -> None:
    """The race ten approvers at once hit on PostgreSQL: one took its time, another's event
    (stamped later) committed before the first looked at the history, and the first was
    refused with "an event at … would come before the previous one", as if its input were
    wrong. It acted on a request that changed meanwhile: a conflict, nothing saved."""
    c = consortium
    (rid,) = submitted_requests(c, 1)
    with pytest.raises(Conflict):
        _decide_on_what_was_loaded(c, rid, utcnow())
    row, evs = ledger_of(c, rid)
    assert_no_gaps(row, evs)
    assert [e.type for e in evs] == ["created", "submitted", "commented"]
