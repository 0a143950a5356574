"""Scale-out: real `steward worker` processes on one queue of 200 jobs and effects; one is
killed with kill -9 in the middle of its work. Every job must end exactly once and every
effect happen exactly once, counted where it arrives (files in the destination folders, calls
to a webhook receiver that applies each Idempotency-Key once).

PostgreSQL + Redis + three workers, and SQLite + its embedded queue + one worker (killed,
then a second one started).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select

from steward.config import Settings
from steward.db.models import Event, ShareObject
from steward.db.queue_tables import Action
from steward.db.session import Database
from steward.jobs import outbox
from steward.services import access, package_build, packages, shares
from steward.services.packages import PackageSpec
from tests import pg
from tests.http_sink import Sink, http_sink
from tests.packaging_data import make_dataset, tree_digests
from tests.redis_server import redis_server

pytestmark = pytest.mark.slow

RUN = [sys.executable, "-c", "from steward.cli.app import run; run()"]
PUSHES = 10
WEBHOOKS = 190
CONCURRENCY = 4
DEADLINE = 600  # seconds: only a guard against a hang, never asserted on


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env["STEWARD_HOME"] = str(settings.home)
    env["STEWARD_DATABASE_URL"] = settings.resolved_database_url
    if settings.queue_url:
        env["STEWARD_QUEUE_URL"] = settings.queue_url
    env["STEWARD_USER"] = "admin"
    return env


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*RUN, "worker", "--concurrency", str(CONCURRENCY)],
            env=_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _held_by(db: Database, pid: int) -> list[str]:
    prefix = f"{socket.gethostname()}:{pid}:"
    with db.read() as s:
        return list(
            s.scalars(
                select(Action.id).where(Action.state == "running", Action.owner.startswith(prefix))
            )
        )


def _open_actions(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).where(Action.state.in_(outbox.OPEN))) or 0)


def _wait(condition: object, what: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


@pytest.fixture(
    params=[
        pytest.param("postgres-redis", marks=pytest.mark.postgres),
        pytest.param("sqlite"),
    ]
)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Settings, int]]:
    """Settings for the flow and how many workers to run side by side."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            settings = Settings(
                home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'steward.db'}"
            )
            yield settings, 1
            return
        base = request.getfixturevalue("pg_base_url")
        url = pg.create_database(base, f"scale{os.getpid()}")
        queue = stack.enter_context(redis_server())
        yield Settings(home=tmp_path / "home", database_url=url, queue_url=queue), 3


def _queue(db: Database, settings: Settings, sink: Sink, tmp_path: Path) -> tuple[str, list[str]]:
    access.bootstrap_admin(db, user_id="admin")
    access.create_project(db, actor="admin", project_id="p1")
    data = make_dataset(tmp_path / "ds")
    spec = PackageSpec(name="cup", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    pkg, _ = packages.create(db, settings, actor="admin", project="p1", spec=spec)
    package_build.build(db, settings, actor="admin", package_id=pkg.id)
    share_ids = []
    for i in range(PUSHES):
        share, action_id = shares.request_push(
            db, settings, actor="admin", package_id=pkg.id, destination=str(tmp_path / f"r{i}")
        )
        assert action_id is not None
        share_ids.append(share.id)
    with db.transaction() as s:
        for i in range(WEBHOOKS):
            outbox.enqueue(
                s, subject_kind="package", subject_id=pkg.id, project_id="p1",
                action="webhook", payload={"url": sink.url, "body": {"n": i}},
                idempotency_key=f"hook-{i}",
            )  # fmt: skip
    return pkg.id, share_ids


def test_workers_killed_mid_job_lose_nothing_and_double_nothing(
    setup: tuple[Settings, int], tmp_path: Path
) -> None:
    settings, n_workers = setup
    db = Database(settings)
    db.migrate()
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    with http_sink(delay=0.2) as sink:
        pkg_id, share_ids = _queue(db, settings, sink, tmp_path)
        try:
            procs = [_worker(settings, logs / f"w{i}.log") for i in range(n_workers)]
            victim = procs[0]
            _wait(lambda: _held_by(db, victim.pid), "the first worker to take a job", procs)
            os.kill(victim.pid, signal.SIGKILL)  # mid-job: it holds at least one action
            victim.wait()
            if n_workers == 1:  # nobody left: start another, as an operator would
                procs.append(_worker(settings, logs / "w-next.log"))
            _wait(lambda: _open_actions(db) == 0, "every action to end", procs)
            for p in procs[1:]:
                p.send_signal(signal.SIGTERM)
            for p in procs[1:]:
                assert p.wait(timeout=120) == 0, (logs / "w1.log").read_text()
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        calls = list(sink.calls)
        applied = dict(sink.applied)

    with db.read() as s:
        rows = s.execute(select(Action.state, func.count()).group_by(Action.state))
        states = {state: int(n) for state, n in rows}
        assert states == {"done": PUSHES + WEBHOOKS}
        # Every job ended exactly once: one `succeeded` event per share, no failure.
        for share_id in share_ids:
            types = list(s.scalars(select(Event.type).where(Event.subject_id == share_id)))
            assert types.count("succeeded") == 1, types
            keys = list(s.scalars(select(ShareObject.key).where(ShareObject.share_id == share_id)))
            assert len(keys) == len(set(keys))
    # Every push arrived whole, once: each destination holds exactly the bag.
    bag = tree_digests(packages.bag_dir(settings, pkg_id))
    for i in range(PUSHES):
        assert tree_digests(tmp_path / f"r{i}" / "cup") == bag
    # Every webhook applied exactly once; only calls in flight at the kill were repeated.
    assert applied == {f"hook-{i}": 1 for i in range(WEBHOOKS)}
    assert WEBHOOKS <= len(calls) <= WEBHOOKS + CONCURRENCY
    db.dispose()
