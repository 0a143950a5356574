"""Jobs, the outbox and the worker, on SQLite (with the SQLite queue) and on PostgreSQL (with
a real Redis queue): --no-wait, the worker, idempotent delivery, backoff, cancel, retry,
periodic tasks under a lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from steward.config import Settings
from steward.db.models import Event, Package, Share
from steward.db.queue_tables import Action, Schedule
from steward.db.session import Database
from steward.errors import Conflict, InvalidTransition, NotFound
from steward.jobs import effects, outbox, schedule, service
from steward.services import leases, package_build, packages, shares
from steward.services.packages import PackageSpec
from steward.timeutil import utcnow
from tests.conftest import CliResult, Consortium
from tests.http_sink import http_sink
from tests.packaging_data import Dataset, make_dataset, tree_digests
from tests.redis_server import redis_server

Cli = Callable[..., CliResult]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def queue(
    backend: str,
    settings: Settings,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """SQLite: the embedded SQLite queue; PostgreSQL: a real Redis queue, emptied first."""
    if backend != "postgres":
        monkeypatch.delenv("STEWARD_QUEUE_URL", raising=False)
        return settings
    import redis

    url = request.getfixturevalue("redis_url")
    redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv("STEWARD_QUEUE_URL", url)
    return settings.model_copy(update={"queue_url": url})


@pytest.fixture
def data(tmp_path: Path) -> Dataset:
    return make_dataset(tmp_path / "ds")


def _built(c: Consortium, settings: Settings, data: Dataset) -> packages.PackageView:
    spec = PackageSpec(name="cup", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    view, _ = packages.create(c.db, settings, actor=c.steward, project=c.project, spec=spec)
    return package_build.build(c.db, settings, actor=c.steward, package_id=view.id)


def _events(db: Database, subject_id: str) -> list[str]:
    with db.read() as s:
        return list(
            s.scalars(select(Event.type).where(Event.subject_id == subject_id).order_by(Event.seq))
        )


def test_share_push_no_wait_returns_at_once_and_a_worker_sends_it(
    consortium: Consortium, queue: Settings, data: Dataset, tmp_path: Path, cli: Cli
) -> None:
    pkg = _built(consortium, queue, data)
    dest = tmp_path / "recipient"
    first = cli("--as", "sam", "--json", "share", "push", pkg.id, "--to", str(dest), "--no-wait")
    assert first.code == 0, first.err
    queued = json.loads(first.out)
    assert queued["share"]["state"] == "pending"
    assert queued["action_id"].startswith("act_")
    assert [p for p in dest.rglob("*") if p.is_file()] == []  # the push is an outbox row
    again = cli("--as", "sam", "--json", "share", "push", pkg.id, "--to", str(dest), "--no-wait")
    assert json.loads(again.out)["action_id"] == queued["action_id"]  # asked twice: one action

    ran = cli("--as", "sam", "--json", "worker", "--drain")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["delivered"] == {"done": 1}
    share_id = queued["share"]["id"]
    assert tree_digests(dest / "cup") == tree_digests(packages.bag_dir(queue, pkg.id))
    assert _events(consortium.db, share_id).count("succeeded") == 1
    shown = json.loads(cli("--as", "sam", "--json", "jobs", "show", queued["action_id"]).out)
    assert shown["state"] == "done"
    assert shown["progress"]["items_done"] == shown["progress"]["items_total"] > 0
    # A second worker run finds nothing to do: the push is not sent twice.
    assert json.loads(cli("--as", "sam", "--json", "worker", "--drain").out)["delivered"] == {}


def test_package_create_no_wait_then_the_worker_builds_it(
    consortium: Consortium, queue: Settings, data: Dataset, cli: Cli
) -> None:
    args = ["package", "create", "cup", "-p", "p1", "-m", str(data.manifest)]
    args += ["--workflow-manifest", str(data.workflow_manifest), "--no-wait"]
    made = cli("--as", "sam", "--json", *args)
    assert made.code == 0, made.err
    out = json.loads(made.out)
    assert out["package"]["state"] == "pending"
    pkg_id, action_id = out["package"]["id"], out["action_id"]
    listed = json.loads(cli("--as", "sam", "--json", "jobs", "list", "--state", "pending").out)
    assert [a["id"] for a in listed] == [action_id]

    assert cli("--as", "sam", "worker", "--drain", "--concurrency", "2").code == 0
    with consortium.db.read() as s:
        assert s.get(Package, pkg_id).state == "built"  # type: ignore[union-attr]
    assert _events(consortium.db, pkg_id).count("built") == 1
    assert (
        packages.validate(consortium.db, queue, actor="sam", package_id=pkg_id, full=True).problems
        == []
    )


def test_the_same_key_is_one_effect_and_reusing_it_for_another_is_refused(db: Database) -> None:
    def put(subject: str, key: str) -> str:
        with db.transaction() as s:
            return outbox.enqueue(
                s, subject_kind="share", subject_id=subject, project_id="p1",
                action="webhook", payload={"url": "http://127.0.0.1:9/"}, idempotency_key=key,
            )  # fmt: skip

    a = put("shr_a", "k1")
    assert put("shr_a", "k1") == a
    with pytest.raises(Conflict):
        put("shr_b", "k1")
    with db.read() as s:
        assert len(list(s.scalars(select(Action)))) == 1


def _webhook(db: Database, url: str, key: str = "hook-1", **kw: Any) -> str:
    with db.transaction() as s:
        return outbox.enqueue(
            s, subject_kind="share", subject_id="shr_x", project_id="p1", action="webhook",
            payload={"url": url, "body": {"n": 1}}, idempotency_key=key, **kw,
        )  # fmt: skip


def test_delivering_one_action_from_many_threads_calls_the_receiver_once(
    db: Database, settings: Settings
) -> None:
    with http_sink(delay=0.2) as sink:
        action_id = _webhook(db, sink.url)
        handlers = effects.handlers(db, settings)
        results: list[str | None] = []
        threads = [
            threading.Thread(target=lambda: results.append(outbox.deliver(db, action_id, handlers)))
            for _ in range(5)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results, key=str) == sorted(["done", None, None, None, None], key=str)
        assert len(sink.calls) == 1
        assert outbox.deliver(db, action_id, handlers) is None  # done: never again
    assert len(sink.calls) == 1


def test_a_failing_effect_is_retried_after_a_backoff_and_then_succeeds(
    db: Database, settings: Settings
) -> None:
    handlers = effects.handlers(db, settings)
    with http_sink() as sink:
        sink.statuses = [503]
        action_id = _webhook(db, sink.url)
        assert outbox.deliver(db, action_id, handlers) == "pending"
        with db.read() as s:
            row = s.get(Action, action_id)
            assert row is not None
            assert row.attempts == 1
            assert "503" in (row.last_error or "")
            assert row.next_try_at > utcnow()
        assert outbox.deliver(db, action_id, handlers) is None  # not due yet
        with db.transaction() as s:  # the backoff has passed
            s.execute(update(Action).values(next_try_at=utcnow() - timedelta(seconds=1)))
        assert outbox.deliver(db, action_id, handlers) == "done"
    keys = [k for k, _ in sink.calls]
    assert keys == ["hook-1", "hook-1"]  # the same key both times
    assert sink.applied == {"hook-1": 1}


def test_a_refusal_fails_at_once_and_retry_sends_it_again(
    consortium: Consortium, settings: Settings
) -> None:
    db = consortium.db
    handlers = effects.handlers(db, settings)
    with http_sink() as sink:
        sink.statuses = [404]
        action_id = _webhook(db, sink.url)
        assert outbox.deliver(db, action_id, handlers) == "failed"
        with pytest.raises(InvalidTransition):
            service.cancel(db, actor="sam", action_id=action_id)
        assert service.retry(db, actor="sam", action_id=action_id).state == "pending"
        assert outbox.deliver(db, action_id, handlers) == "done"
    assert len(sink.calls) == 2


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    first = [outbox.backoff(1).total_seconds() for _ in range(50)]
    assert all(2 <= w <= 4 for w in first)
    assert len(set(first)) > 1  # jitter: workers that failed together do not retry together
    assert 32 <= outbox.backoff(5).total_seconds() <= 34
    assert outbox.backoff(30).total_seconds() <= 900


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_an_action_held_by_a_killed_worker_is_taken_over_at_once(
    db: Database, settings: Settings
) -> None:
    handlers = effects.handlers(db, settings)
    host = socket.gethostname()
    with http_sink() as sink:
        alive = _webhook(db, sink.url, key="alive")
        dead = _webhook(db, sink.url, key="dead")
        with db.transaction() as s:
            lease = utcnow() + timedelta(minutes=2)
            for action_id, pid in ((alive, os.getppid()), (dead, _dead_pid())):
                s.execute(
                    update(Action)
                    .where(Action.id == action_id)
                    .values(state="running", owner=f"{host}:{pid}", lease_until=lease, attempts=1)
                )
        sent: list[str] = []
        assert outbox.relay(db, sent.append) == 1
        assert sent == [dead]
        assert outbox.deliver(db, alive, handlers) is None  # its holder is alive: left alone
        assert outbox.deliver(db, dead, handlers) == "done"
    assert [k for k, _ in sink.calls] == ["dead"]


def test_only_staff_see_and_steer_the_queue(consortium: Consortium) -> None:
    action_id = _webhook(consortium.db, "http://127.0.0.1:9/")
    assert [a.id for a in service.list_actions(consortium.db, actor="sam")] == [action_id]
    assert service.list_actions(consortium.db, actor="vic") == []
    with pytest.raises(NotFound):
        service.get(consortium.db, actor="vic", action_id=action_id)
    with pytest.raises(NotFound):
        service.cancel(consortium.db, actor="ada", action_id=action_id)
    assert service.cancel(consortium.db, actor="sam", action_id=action_id).state == "cancelled"


def test_cancelling_a_running_build_stops_it_and_retry_continues_it(
    consortium: Consortium, settings: Settings, data: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leases, "STOP_CHECK_EVERY", 0.0)  # look at every poll, not every 2 s
    db = consortium.db
    spec = PackageSpec(name="cup", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    pkg, _ = packages.create(db, settings, actor="sam", project="p1", spec=spec)
    _, action_id = package_build.request_build(db, actor="sam", package_id=pkg.id)
    seen: list[Any] = []

    def cancel_once(_nbytes: int, nfiles: int) -> None:
        if nfiles and not seen:
            # Another reader sees how far the build is while it runs (the heartbeat wrote it).
            deadline = utcnow() + timedelta(minutes=2)
            while (p := service.get(db, actor="sam", action_id=action_id).progress) is None or (
                not p.items_done
            ):
                assert utcnow() < deadline, "no progress was written"
            assert p.items_total is not None
            assert p.finished_at is None
            seen.append(service.cancel(db, actor="sam", action_id=action_id))

    def build(d: outbox.Delivery) -> dict[str, Any]:
        view = package_build.build(
            db, settings, actor=d.created_by, package_id=d.subject_id,
            progress=package_build.BuildProgress(advance=cancel_once),
        )  # fmt: skip
        return {"state": view.state}

    settings = settings.model_copy(update={"workers": 1})
    assert outbox.deliver(db, action_id, {effects.PACKAGE_BUILD: build}) == "cancelled"
    assert seen[0].state == "running"  # asked while it ran
    with db.read() as s:
        row = s.get(Package, pkg.id)
        assert row is not None
        assert (row.state, row.failure_reason) == ("failed", "cancelled by sam")
    view = service.get(db, actor="sam", action_id=action_id)
    assert view.progress is not None
    assert view.progress.finished_at is not None
    assert view.progress.items_total is not None
    assert view.progress.items_done < view.progress.items_total

    assert service.retry(db, actor="sam", action_id=action_id).state == "pending"
    assert outbox.deliver(db, action_id, effects.handlers(db, settings)) == "done"
    with db.read() as s:
        assert s.get(Package, pkg.id).state == "built"  # type: ignore[union-attr]


def test_a_periodic_task_runs_in_one_worker_at_a_time(db: Database) -> None:
    calls = 0
    skipped = threading.Event()

    def task() -> None:
        nonlocal calls
        calls += 1
        assert skipped.wait(30), "the other worker never came back"

    tasks = {"t": schedule.Periodic("t", timedelta(hours=1), task)}
    results: list[list[str]] = []

    def attempt() -> None:
        ran = schedule.run_due(db, tasks)
        if not ran:
            skipped.set()
        results.append(ran)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == 1
    assert sorted(results) == [[], ["t"]]
    assert schedule.run_due(db, tasks) == []  # not due again for an hour
    with db.read() as s:
        row = s.get(Schedule, "t")
        assert row is not None
        assert (row.owner, row.last_error) == (None, None)


def test_a_periodic_task_whose_worker_was_killed_runs_again(db: Database) -> None:
    ran: list[int] = []
    tasks = {"t": schedule.Periodic("t", timedelta(hours=1), lambda: ran.append(1))}
    host = socket.gethostname()
    with db.transaction() as s:
        s.add(
            Schedule(
                name="t", next_run_at=utcnow(), owner=f"{host}:{_dead_pid()}",
                lease_until=utcnow() + timedelta(minutes=2), runs=1,
            )
        )  # fmt: skip
    assert schedule.run_due(db, tasks) == ["t"]
    assert ran == [1]


def test_the_worker_expires_due_packages_on_its_schedule(
    consortium: Consortium, queue: Settings, data: Dataset, cli: Cli
) -> None:
    pkg = _built(consortium, queue, data)
    with consortium.db.transaction() as s:
        s.execute(
            update(Package)
            .where(Package.id == pkg.id)
            .values(keep_until=utcnow() - timedelta(days=1))
            .execution_options(synchronize_session=False)
        )
    out = json.loads(cli("--as", "sam", "--json", "worker", "--drain").out)
    assert sorted(out["periodic"]) == ["expire-packages", "expire-requests"]
    with consortium.db.read() as s:
        assert s.get(Package, pkg.id).state == "expired"  # type: ignore[union-attr]
        assert s.scalars(select(Share)).first() is None


def test_sigterm_lets_the_running_effect_finish_then_the_worker_exits(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update(STEWARD_HOME=str(settings.home), STEWARD_DATABASE_URL=settings.resolved_database_url)
    with http_sink(delay=2.0) as sink:
        action_id = _webhook(db, sink.url)
        log = (tmp_path / "worker.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-c", "from steward.cli.app import run; run()", "worker"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            prefix = f"{socket.gethostname()}:{proc.pid}:"
            deadline = utcnow() + timedelta(minutes=5)
            while True:  # wait until the worker is in the middle of the call
                with db.read() as s:
                    row = s.get(Action, action_id)
                    assert row is not None
                    if row.state == "running" and (row.owner or "").startswith(prefix):
                        break
                assert utcnow() < deadline, (tmp_path / "worker.log").read_text()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 0, (tmp_path / "worker.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    with db.read() as s:
        row = s.get(Action, action_id)
        assert row is not None
        assert (row.state, row.owner) == ("done", None)
    assert len(sink.calls) == 1
    assert "other effects finish" in (tmp_path / "worker.log").read_text()


def test_eta_is_the_rest_at_the_rate_so_far() -> None:
    from steward.db.queue_tables import JobProgress
    from steward.jobs import runner

    start = utcnow()
    row = JobProgress(
        started_at=start, updated_at=start + timedelta(seconds=10), finished_at=None,
        bytes_done=250, bytes_total=1000, items_done=1, items_total=2,
    )  # fmt: skip
    assert runner.eta(row) == 30.0  # a quarter of the bytes in 10 s: 30 s for the rest
    row.bytes_total = None
    assert runner.eta(row) == 10.0  # no byte total: by items
    row.items_done = 0
    assert runner.eta(row) is None  # nothing done yet: no rate to go by
    row.finished_at = start
    assert runner.eta(row) == 0.0


def test_jobs_commands_show_steer_and_refuse_clearly(consortium: Consortium, cli: Cli) -> None:
    action_id = _webhook(consortium.db, "http://127.0.0.1:9/")
    listed = cli("--as", "sam", "jobs", "list")
    assert listed.code == 0, listed.err
    assert action_id in listed.out
    assert "webhook" in listed.out
    shown = cli("--as", "sam", "jobs", "show", action_id)
    assert shown.code == 0
    assert "hook-1" in shown.out  # the idempotency key
    cancelled = cli("--as", "sam", "jobs", "cancel", action_id)
    assert cancelled.code == 0
    assert f"{action_id} cancelled: now cancelled" in cancelled.out
    again = cli("--as", "sam", "--json", "jobs", "retry", action_id)
    assert json.loads(again.out)["state"] == "pending"

    bad = cli("--as", "sam", "jobs", "list", "--state", "stuck")
    assert bad.code == 2
    assert "stuck" in bad.err
    assert "pending, running, done, failed, cancelled" in bad.err
    unknown = cli("--as", "vic", "jobs", "show", action_id)  # not staff: as if it did not exist
    assert unknown.code == 1
    assert f"no action {action_id!r}" in unknown.err


def test_cancelling_a_queued_push_fails_its_share_and_a_new_push_queues_again(
    consortium: Consortium, settings: Settings, data: Dataset, tmp_path: Path
) -> None:
    db = consortium.db
    pkg = _built(consortium, settings, data)
    dest = str(tmp_path / "recipient")
    push = {"actor": "sam", "package_id": pkg.id, "destination": dest}
    share, first = shares.request_push(db, settings, **push)
    assert first is not None
    assert service.cancel(db, actor="sam", action_id=first).state == "cancelled"
    with db.read() as s:
        row = s.get(Share, share.id)
        assert row is not None
        assert (row.state, row.failure_reason) == ("failed", "cancelled by sam")
    again, second = shares.request_push(db, settings, **push)
    assert again.id == share.id  # the same share continues
    assert again.state == "pending"
    assert second not in (None, first)
    assert outbox.deliver(db, second, effects.handlers(db, settings)) == "done"  # type: ignore[arg-type]
    assert _events(db, share.id).count("succeeded") == 1


def test_asking_again_after_a_build_action_ended_queues_a_new_one(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    db = consortium.db
    spec = PackageSpec(name="cup", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    pkg, _ = packages.create(db, settings, actor="sam", project="p1", spec=spec)
    _, first = package_build.request_build(db, actor="sam", package_id=pkg.id)
    assert package_build.request_build(db, actor="sam", package_id=pkg.id)[1] == first

    def refused(_d: outbox.Delivery) -> dict[str, Any]:
        raise outbox.PermanentFailure("the builder is switched off for maintenance")

    assert outbox.deliver(db, first, {effects.PACKAGE_BUILD: refused}) == "failed"
    _, second = package_build.request_build(db, actor="sam", package_id=pkg.id)
    assert second != first  # not the failed one again: the package would never be built
    assert outbox.deliver(db, second, effects.handlers(db, settings)) == "done"
    with db.read() as s:
        assert s.get(Package, pkg.id).state == "built"  # type: ignore[union-attr]


def test_a_worker_whose_redis_is_unreachable_says_which_setting_and_exits_1(
    db: Database, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.pg import free_port

    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("STEWARD_QUEUE_URL", url)
    result = cli("--as", "admin", "worker", "--drain")
    assert result.code == 1
    assert "STEWARD_QUEUE_URL" in result.err
    assert "cannot be reached" in result.err
    assert "s3cret" not in result.err + result.out
    assert "Traceback" not in result.err


def test_a_stopping_worker_hands_a_running_build_back_and_the_next_one_resumes_it(
    consortium: Consortium, settings: Settings, data: Dataset
) -> None:
    from steward.jobs import runner

    db = consortium.db
    spec = PackageSpec(name="cup", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    pkg, _ = packages.create(db, settings, actor="sam", project="p1", spec=spec)
    _, action_id = package_build.request_build(db, actor="sam", package_id=pkg.id)

    def stop_the_worker(_nbytes: int, nfiles: int) -> None:
        if nfiles:
            runner.RELEASE.set()  # what SIGTERM does in `steward worker`

    def build(d: outbox.Delivery) -> dict[str, Any]:
        view = package_build.build(
            db, settings, actor=d.created_by, package_id=d.subject_id,
            progress=package_build.BuildProgress(advance=stop_the_worker),
        )  # fmt: skip
        return {"state": view.state}

    try:
        assert outbox.deliver(db, action_id, {effects.PACKAGE_BUILD: build}) == "pending"
    finally:
        runner.RELEASE.clear()
    with db.read() as s:
        row = s.get(Package, pkg.id)
        assert row is not None
        assert row.state == "building"  # not failed: handed back
        assert row.lease_until is not None
        assert row.lease_until < utcnow()
        action = s.get(Action, action_id)
        assert action is not None
        assert (action.state, action.attempts, action.owner) == ("pending", 0, None)
    assert outbox.deliver(db, action_id, effects.handlers(db, settings)) == "done"
    assert _events(db, pkg.id) == ["created", "build_started", "build_resumed", "built"]


def test_an_effects_outcome_is_an_event_on_the_subject_that_caused_it(
    consortium: Consortium, settings: Settings
) -> None:
    """Done, refused and cancelled effects each leave one event on their subject, which its
    readers see in its history; delivering again adds none."""
    from steward.domain.requests import RequestFields
    from steward.services import requests, subjects

    db = consortium.db
    view = requests.create(
        db, actor=consortium.requester, project=consortium.project,
        fields=RequestFields("Study", "Uni", "Prof", "Research", datasets=("raw/wgs",)),
    )  # fmt: skip

    def hook(url: str, key: str) -> str:
        with db.transaction() as s:
            return outbox.enqueue(
                s, subject_kind="access_request", subject_id=view.id,
                project_id=consortium.project, action="webhook",
                payload={"url": url, "body": {}}, idempotency_key=key,
                actor=consortium.requester,
            )  # fmt: skip

    handlers = effects.handlers(db, settings)
    with http_sink() as sink:
        sink.statuses = [200, 404]
        delivered, refused = hook(sink.url, "ok"), hook(sink.url, "no")
        assert outbox.deliver(db, delivered, handlers) == "done"
        assert outbox.deliver(db, refused, handlers) == "failed"
        assert outbox.deliver(db, delivered, handlers) is None
    cancelled = hook("http://127.0.0.1:9/", "never")
    service.cancel(db, actor=consortium.steward, action_id=cancelled)

    timeline = subjects.history_of(
        db, requests.REQUEST, actor=consortium.requester, subject_id=view.id
    ).timeline
    effects_seen = [
        (e.actor, e.data["action_id"], e.data["outcome"], e.data.get("detail"))
        for e in timeline
        if e.type == "effect_recorded"
    ]
    assert effects_seen == [
        (consortium.requester, delivered, "done", {"status": 200}),
        (consortium.requester, refused, "failed", None),
        (consortium.requester, cancelled, "cancelled", None),
    ]
    refusal = next(e for e in timeline if e.data.get("action_id") == refused)
    assert "404" in refusal.data["error"]
    assert timeline[-1].to_state == "draft"  # an annotation: the state stays


def test_nobody_can_issue_the_effect_command_by_hand(consortium: Consortium) -> None:
    from steward.domain.requests import RequestFields
    from steward.errors import Forbidden
    from steward.services import requests, subjects

    view = requests.create(
        consortium.db, actor=consortium.requester, project=consortium.project,
        fields=RequestFields("Study", "Uni", "Prof", "Research", datasets=("raw/wgs",)),
    )  # fmt: skip
    for actor in (consortium.admin, consortium.steward, consortium.requester):
        with pytest.raises(Forbidden):
            subjects.act(
                consortium.db, requests.REQUEST, actor=actor, subject_id=view.id,
                command="record_effect",
                payload={"action": "webhook", "action_id": "act_x", "outcome": "done",
                         "attempts": 1},
            )  # fmt: skip
