"""Crawls as jobs on the worker, the lock on their sources, and crawl schedules — with real
parts: folder trees built here, SQLite and PostgreSQL, the worker's SQLite queue, crawls and
workers in real processes (held at a step, or killed with SIGKILL).

The world is :mod:`tests.integration.test_crawl`'s: project p1 fed by five folder sources.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from sqlalchemy import select, update

from steward.config import Settings
from steward.crawl.config import parse_crawl_config
from steward.db.models import Crawl, CrawlLock, CrawlSchedule, DatasetFile
from steward.db.queue_tables import Action, Schedule
from steward.db.session import Database
from steward.errors import Conflict, Forbidden, NotFound, ValidationFailed
from steward.jobs import effects, outbox, service
from steward.jobs.worker import Worker
from steward.services import access, crawl, crawl_jobs, crawl_schedules, crawls, leases
from steward.services.crawl_summary import Progress
from steward.timeutil import utcnow
from tests.conftest import CliResult, Consortium
from tests.crawl_trees import ACCESSION, dataset_files, write_tree
from tests.integration.test_crawl import (
    _second_database,
    _world,
    build,
    config_of,
    events,
    sources,
    states,
)

Cli = Callable[..., CliResult]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "stwsecret-Jq4vN8xL2pRt7yW1mK3d"
T = TypeVar("T")


@pytest.fixture(autouse=True)
def sqlite_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's embedded SQLite queue (in STEWARD_HOME), on either database."""
    monkeypatch.delenv("STEWARD_QUEUE_URL", raising=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    build(root)
    return root


@pytest.fixture
def sources_file(tree: Path, tmp_path: Path) -> Path:
    path = tmp_path / "atlas.yaml"
    path.write_text(yaml.safe_dump(sources(tree)))
    return path


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env.update(STEWARD_HOME=str(settings.home), STEWARD_DATABASE_URL=settings.resolved_database_url)
    env.update(extra)
    return env


def _get(db: Database, model: type[T], key: str) -> T:
    """One row, detached (read after its transaction)."""
    with db.read() as s:
        row = s.get(model, key)
        assert row is not None
        s.expunge(row)
        return row


def _crawl_row(db: Database, crawl_id: str) -> Crawl:
    return _get(db, Crawl, crawl_id)


def _action(db: Database, action_id: str) -> Action:
    return _get(db, Action, action_id)


def _change(tree: Path) -> None:
    """Seven datasets change: moves, a removal, a new one, new metadata (test_crawl's)."""
    shutil.move(tree / "incoming" / "E-MTAB-1", tree / "loading" / "E-MTAB-1")
    shutil.rmtree(tree / "published" / "E-MTAB-3")
    shutil.rmtree(tree / "loading-2" / "E-MTAB-4")
    shutil.rmtree(tree / "incoming" / "E-MTAB-2")
    write_tree(tree / "published", dataset_files("E-MTAB-2", "Brain 2", "Mus musculus"))
    write_tree(tree / "incoming", dataset_files("E-MTAB-8", "Skin", secondary=("GSE5",)))
    write_tree(tree / "external", {"E-GEOD-5/more.txt": "x"})


@pytest.fixture
def twin(consortium: Consortium, tree: Path, tmp_path: Path, backend: str) -> Iterator[Database]:
    """A second database with the same people and project; both crawled once, then seven
    datasets change — for comparing an interrupted crawl with an uninterrupted one."""
    clean = _second_database(consortium, tmp_path, backend)
    config = config_of(tree)
    for db in (consortium.db, clean):
        crawl.run_crawl(db, db.settings, actor="sam", config=config)
    _change(tree)
    yield clean
    clean.dispose()


def _holder_alive_elsewhere() -> str:
    """A lease holder that is alive and not this thread: the parent process of this one."""
    return f"{socket.gethostname()}:{os.getppid()}:1"


# ---- the queued crawl's config ----------------------------------------------------------------
def test_a_queued_crawl_keeps_every_field_of_its_sources_and_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the action (and a schedule) keeps reads back as the same config — every field a
    folder, s3 and endpoint source can have — and holds variable names, never their values."""
    table = {
        "stages": ["external", "incoming", "loading", "published", "analysing", "processed"],
        "accession_mappings": [{"left": "E-GEOD-{n}", "right": "GSE{n}"}],
        "sources": [
            {"name": "f", "project": "p1", "url": "/data/in", "stage": "incoming",
             "pattern": ACCESSION, "found_in": "file", "file": "*.idf.txt",
             "tech": ["rna-seq"], "extractors": ["mage-tab-idf"], "include": ["**"],
             "exclude": ["**/tmp/**"], "fallback_encoding": "latin-1", "timeout": 5,
             "retries": 2},
            {"name": "s", "project": "p1", "url": "s3://bucket/prefix", "stage": "loading",
             "pattern": r"^(?P<accession>E-[A-Z]{4}-\d+)$", "endpoint": "https://s3.example.org",
             "region": "eu-west-1", "access_key_env": "S3_KEY", "secret_key_env": "S3_SECRET"},
            {"name": "e", "project": "p2", "url": "https://example.org/api", "stage": "external",
             "pattern": ACCESSION, "field": "meta.acc", "items_field": "data",
             "token_env": "API_TOKEN",
             "pagination": {"style": "cursor", "cursor_field": "next", "cursor_param": "after"}},
        ],
    }  # fmt: skip
    config = parse_crawl_config(table, origin="sources.toml")
    for name in ("S3_KEY", "S3_SECRET", "API_TOKEN"):
        monkeypatch.setenv(name, TOKEN)
    kept = crawl_jobs.document(config)
    again = crawl_jobs.config_of(json.loads(json.dumps(kept)), "sources.toml")
    assert [replace(s, field="") for s in again.sources] == [
        replace(s, field="") for s in config.sources
    ]
    assert (again.stages, again.mappings) == (config.stages, config.mappings)
    assert TOKEN not in json.dumps(kept)
    assert "API_TOKEN" in json.dumps(kept)


# ---- --no-wait and the worker -----------------------------------------------------------------
def test_no_wait_queues_the_crawl_and_the_worker_runs_it(
    consortium: Consortium, tree: Path, sources_file: Path, cli: Cli, settings: Settings
) -> None:
    c = consortium
    dry = cli("crawl", "--sources", str(sources_file), "--dry-run", "--no-wait", "--as", "sam",
              "--json")  # fmt: skip
    assert dry.code == 0, dry.err
    assert json.loads(dry.out)["status"] == "dry-run"  # a dry run is never queued
    with c.db.read() as s:
        assert s.scalars(select(Action)).all() == []
        assert s.scalars(select(Crawl)).all() == []

    made = cli("crawl", "--sources", str(sources_file), "--no-wait", "--as", "sam", "--json")
    assert made.code == 0, made.err
    queued = json.loads(made.out)
    crawl_id, action_id = queued["crawl_id"], queued["action_id"]
    assert crawl_id.startswith("crl_")
    assert action_id.startswith("act_")
    assert states(c) == {}  # nothing crawled yet: a row and its job
    row = _crawl_row(c.db, crawl_id)
    assert (row.status, row.started_by) == ("queued", "sam")
    action = _action(c.db, action_id)
    assert (action.action, action.subject_id, action.state) == ("crawl", crawl_id, "pending")
    assert action.payload["config"]["sources"][0]["url"] == str(tree / "external")
    listed = json.loads(cli("crawl", "list", "--as", "sam", "--json").out)
    assert [(r["id"], r["status"]) for r in listed] == [(crawl_id, "queued")]
    assert listed[0]["progress"] == "waiting for a worker (`steward worker`)"
    table = cli("crawl", "show", crawl_id, "--as", "sam")
    assert table.code == 0, table.err
    assert "queued" in table.out
    assert f"steward jobs cancel {action_id}" in table.out
    jobs = json.loads(cli("jobs", "list", "--as", "sam", "--json").out)
    assert [(j["id"], j["action"], j["state"]) for j in jobs] == [(action_id, "crawl", "pending")]

    ran = cli("--as", "sam", "--json", "worker", "--drain")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["delivered"] == {"done": 1}
    assert states(c)["E-MTAB-2"] == "loading"
    shown = json.loads(cli("crawl", "show", crawl_id, "--as", "sam", "--json").out)
    assert (shown["id"], shown["status"]) == (crawl_id, "ok")
    assert shown["counts"]["new"]["count"] == 6
    assert "job" not in shown  # ended: the summary only
    job = json.loads(cli("jobs", "show", action_id, "--as", "sam", "--json").out)
    assert job["state"] == "done"
    assert job["outcome"] == {"crawl": crawl_id, "status": "ok", "events": 6}
    assert job["progress"]["finished_at"] is not None
    assert job["progress"]["items_done"] == job["progress"]["items_total"] == 6
    with c.db.read() as s:
        assert [r.id for r in s.scalars(select(Crawl))] == [crawl_id]  # the queued row ran
        assert all(r.holder is None for r in s.scalars(select(CrawlLock)))  # handed back
    again = cli("--as", "sam", "--json", "worker", "--drain")
    assert json.loads(again.out)["delivered"] == {}  # not run twice


def test_the_worker_resolves_credentials_from_its_own_environment(
    consortium: Consortium, tree: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queued crawl names the variable; the worker's value is sent to the endpoint, and
    no value is kept in the action, the crawl's row or anything shown."""
    from tests.crawl_http import json_endpoint

    with json_endpoint() as api:
        api.page("/datasets", {"items": [{"accession": "E-MTAB-9", "title": "Archived"}]})
        endpoint = {
            "name": "archive", "project": "p1", "url": f"{api.url}/datasets",
            "stage": "external", "pattern": ACCESSION, "token_env": "ARCHIVE_TOKEN",
            "items_field": "items",
        }  # fmt: skip
        path = tmp_path / "sources.yaml"
        path.write_text(yaml.safe_dump(sources(tree, endpoint)))
        monkeypatch.setenv("ARCHIVE_TOKEN", "not-the-workers-" + TOKEN)
        made = cli("crawl", "--sources", str(path), "--no-wait", "--as", "sam", "--json")
        assert made.code == 0, made.err
        monkeypatch.setenv("ARCHIVE_TOKEN", TOKEN)  # the worker's environment
        ran = cli("--as", "sam", "--json", "worker", "--drain")
        assert ran.code == 0, ran.err
        sent = [h.get("Authorization", "") for _, h in api.requests]
    assert sent == [f"Bearer {TOKEN}"]
    assert states(consortium)["E-MTAB-9"] == "external"
    crawl_id = json.loads(made.out)["crawl_id"]
    shown = cli("crawl", "show", crawl_id, "--as", "sam", "--json")
    job = cli("jobs", "list", "--as", "sam", "--json")
    with consortium.db.read() as s:
        kept = json.dumps([(a.payload, a.outcome) for a in s.scalars(select(Action))])
        kept += json.dumps([r.summary for r in s.scalars(select(Crawl))])
    assert "ARCHIVE_TOKEN" in kept
    for text in (kept, made.out, ran.out, ran.err, shown.out, job.out):
        assert TOKEN not in text


# ---- cancel -------------------------------------------------------------------------------------
def test_cancelling_a_queued_crawl_marks_it_cancelled(
    consortium: Consortium, sources_file: Path, cli: Cli
) -> None:
    queued = json.loads(
        cli("crawl", "--sources", str(sources_file), "--no-wait", "--as", "sam", "--json").out
    )
    done = cli("jobs", "cancel", queued["action_id"], "--as", "sam", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["state"] == "cancelled"
    shown = json.loads(cli("crawl", "show", queued["crawl_id"], "--as", "sam", "--json").out)
    assert (shown["status"], shown["error"]) == ("cancelled", "cancelled by sam")
    assert json.loads(cli("--as", "sam", "--json", "worker", "--drain").out)["delivered"] == {}
    assert states(consortium) == {}
    listed = cli("crawl", "list", "--as", "sam")
    assert "cancelled" in listed.out


def test_cancelling_a_running_crawl_stops_it_between_chunks_and_retry_finishes_it(
    consortium: Consortium,
    tree: Path,
    twin: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Progress is visible from another reader while the worker's crawl runs; a cancel stops it
    after the chunk it is writing (status ``cancelled``); ``jobs retry`` finishes the work as
    one uninterrupted crawl would."""
    monkeypatch.setattr(leases, "STOP_CHECK_EVERY", 0.0)  # look at every checkpoint
    c = consortium
    clean, config = twin, config_of(tree)
    queued = crawl_jobs.queue(c.db, actor="sam", config=config)
    seen: list[Any] = []

    def cancel_after_two(step: Progress) -> None:
        if step.phase != "committed" or step.done < 2 or seen:
            return
        deadline = time.monotonic() + 60
        while True:  # another reader sees how far it is (the heartbeat wrote it)
            p = service.get(c.db, actor="sam", action_id=queued.action_id).progress
            if p is not None and p.items_done >= 2:
                break
            assert time.monotonic() < deadline, "no progress was written"
            time.sleep(0.05)
        assert (
            p.items_total == 6
        )  # the datasets with something to write (an unchanged one has none)
        detail = crawls.show_crawl(c.db, actor="sam", crawl_id=queued.crawl_id)
        assert detail.summary.status == "running"
        assert detail.job is not None
        assert detail.job.describe() == "writing: 2 of 6 datasets"
        seen.append(service.cancel(c.db, actor="sam", action_id=queued.action_id))

    def handler(d: outbox.Delivery) -> dict[str, Any]:
        s = crawl_jobs.run_queued(c.db, settings, d, progress=cancel_after_two, chunk=1)
        return {"status": s.status}

    assert outbox.deliver(c.db, queued.action_id, {"crawl": handler}) == "cancelled"
    assert seen[0].state == "running"  # asked while it ran
    row = _crawl_row(c.db, queued.crawl_id)
    assert (row.status, row.summary["error"]) == ("cancelled", "cancelled by sam")
    partial = events(c.db)
    crawl.run_crawl(clean, clean.settings, actor="sam", config=config)
    assert set(partial) < set(events(clean))  # stopped part-way

    assert service.retry(c.db, actor="sam", action_id=queued.action_id).state == "pending"
    handlers = effects.handlers(c.db, settings)
    assert outbox.deliver(c.db, queued.action_id, handlers) == "done"
    assert events(c.db) == events(clean)
    assert _world(c.db) == _world(clean)
    assert _crawl_row(c.db, queued.crawl_id).status == "ok"


def test_a_stopping_worker_hands_a_crawl_back_and_the_next_one_finishes_it(
    consortium: Consortium, tree: Path, settings: Settings
) -> None:
    """SIGTERM sets ``RELEASE``: the crawl stops after the chunk it is writing, its job goes
    back to pending without counting a try, and the next delivery finishes the same crawl."""
    from steward.jobs import runner

    c = consortium
    queued = crawl_jobs.queue(c.db, actor="sam", config=config_of(tree))

    def stop_the_worker(step: Progress) -> None:
        if step.phase == "committed" and step.done == 1:
            runner.RELEASE.set()  # what SIGTERM does in `steward worker`

    def handler(d: outbox.Delivery) -> dict[str, Any]:
        s = crawl_jobs.run_queued(c.db, settings, d, progress=stop_the_worker, chunk=1)
        return {"status": s.status}

    try:
        assert outbox.deliver(c.db, queued.action_id, {"crawl": handler}) == "pending"
    finally:
        runner.RELEASE.clear()
    action = _action(c.db, queued.action_id)
    assert action.attempts == 0  # not a failed try
    assert _crawl_row(c.db, queued.crawl_id).status == "interrupted"
    assert 0 < len(states(c)) < 6
    assert outbox.deliver(c.db, queued.action_id, effects.handlers(c.db, settings)) == "done"
    assert _crawl_row(c.db, queued.crawl_id).status == "ok"
    assert len(states(c)) == 6


# ---- kill -9 of a worker mid-crawl ------------------------------------------------------------
@pytest.mark.parametrize("kill_at", ["2", "all"])
def test_a_worker_killed_mid_crawl_is_taken_over_and_the_result_is_one_uninterrupted_crawl(
    consortium: Consortium, tree: Path, twin: Database, kill_at: str, cli: Cli
) -> None:
    c = consortium
    clean, config = twin, config_of(tree)
    queued = crawl_jobs.queue(c.db, actor="sam", config=config)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.crawl_procs", "worker-kill", kill_at],
        env=_env(c.db.settings), cwd=ROOT, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    row = _crawl_row(c.db, queued.crawl_id)
    assert row.status == "running"  # its worker died: nobody recorded an end
    with c.db.read() as s:
        assert {r.crawl_id for r in s.scalars(select(CrawlLock))} == {queued.crawl_id}
    assert _action(c.db, queued.action_id).state == "running"
    partial = events(c.db)

    ran = cli("--as", "sam", "--json", "worker", "--drain")  # the next worker
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["delivered"] == {"done": 1}
    crawl.run_crawl(clean, clean.settings, actor="sam", config=config)
    assert set(partial) <= set(events(c.db))
    assert events(c.db) == events(clean)
    assert _world(c.db) == _world(clean)
    action = _action(c.db, queued.action_id)
    assert (action.state, action.attempts) == ("done", 2)
    with c.db.read() as s:
        assert sorted(r.status for r in s.scalars(select(Crawl))) == ["ok", "ok"]


# ---- the lock ---------------------------------------------------------------------------------
def _hold(settings: Settings, path: Path, marks: Path) -> subprocess.Popen[bytes]:
    """A crawl in another process that holds its sources until ``marks/release`` exists."""
    marks.mkdir(exist_ok=True)
    with (marks / "log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.crawl_procs", "hold", str(path), "sam", str(marks)],
            env=_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        log = (path.parent / "log").read_text()
        assert proc.poll() is None or path.exists(), log
        assert time.monotonic() < deadline, f"{path} never appeared: {log}"
        time.sleep(0.05)


def _steward(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from steward.cli.app import run; run()", *args],
        env=_env(settings), cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_two_crawls_started_at_once_on_the_same_sources_one_runs_one_is_refused(
    consortium: Consortium, tree: Path, tmp_path: Path, sources_file: Path
) -> None:
    settings = consortium.db.settings
    first, second = tmp_path / "a", tmp_path / "b"
    procs = [_hold(settings, sources_file, first), _hold(settings, sources_file, second)]
    try:
        deadline = time.monotonic() + 120
        while not any((m / "holding").exists() for m in (first, second)) or not any(
            (m / "refused").exists() for m in (first, second)
        ):
            assert time.monotonic() < deadline, [p.poll() for p in procs]
            time.sleep(0.05)
        holding = first if (first / "holding").exists() else second
        refused = second if holding is first else first
        assert not (refused / "holding").exists()
        message = (refused / "refused").read_text()
        with consortium.db.read() as s:
            (running,) = s.scalars(select(Crawl).where(Crawl.status == "running")).all()
        assert message.startswith(
            f"crawl {running.id} of sources external, incoming, loading, loading-2, published "
            "is running since "
        )
        assert "started by sam; wait for it or cancel it" in message
        (holding / "release").touch()
        codes = sorted(p.wait(timeout=120) for p in procs)
        assert codes == [0, 1]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    with consortium.db.read() as s:
        assert [r.status for r in s.scalars(select(Crawl))] == ["ok"]  # the refused one: none


def test_the_cli_refuses_overlapping_sources_with_exit_1_and_lets_disjoint_ones_run(
    consortium: Consortium, tree: Path, tmp_path: Path, sources_file: Path
) -> None:
    settings = consortium.db.settings
    marks = tmp_path / "held"
    holder = _hold(settings, sources_file, marks)
    try:
        _wait_for(marks / "holding", holder)
        (tmp_path / "other").mkdir()
        entries = sources(tree)["sources"]
        other = {**entries[0], "name": "other", "url": str(tmp_path / "other")}
        loading = next(e for e in entries if e["name"] == "loading")
        overlapping, disjoint = tmp_path / "overlapping.json", tmp_path / "disjoint.json"
        overlapping.write_text(json.dumps({"sources": [loading, other]}))
        disjoint.write_text(json.dumps({"sources": [other]}))
        refused = _steward(settings, "crawl", "--sources", str(overlapping), "--as", "sam")
        assert refused.returncode == 1, refused.stderr
        assert "of sources loading is running since" in refused.stderr
        assert "started by sam; wait for it or cancel it" in refused.stderr
        assert "Traceback" not in refused.stderr
        as_json = _steward(settings, "crawl", "--sources", str(overlapping), "--as", "sam",
                           "--json")  # fmt: skip
        assert as_json.returncode == 1
        problem = json.loads(as_json.stdout)
        assert problem["code"] == "crawl-busy"
        assert [e["value"] for e in problem["errors"]] == ["loading"]
        ran = _steward(settings, "crawl", "--sources", str(disjoint), "--as", "sam", "--json")
        assert ran.returncode == 0, ran.stderr  # no source in common: both run
        assert json.loads(ran.stdout)["status"] == "ok"
        (marks / "release").touch()
        assert holder.wait(timeout=120) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    again = _steward(settings, "crawl", "--sources", str(sources_file), "--as", "sam")
    assert again.returncode == 0, again.stderr  # handed back at the end


def test_a_crawl_killed_while_holding_its_sources_does_not_block_the_next(
    consortium: Consortium, tree: Path, tmp_path: Path, sources_file: Path
) -> None:
    settings = consortium.db.settings
    marks = tmp_path / "held"
    holder = _hold(settings, sources_file, marks)
    try:
        _wait_for(marks / "holding", holder)
        holder.kill()  # SIGKILL: no chance to hand the sources back
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
    with consortium.db.read() as s:
        assert {r.holder.split(":")[1] for r in s.scalars(select(CrawlLock))} == {  # type: ignore[union-attr]
            str(holder.pid)
        }
    ran = _steward(settings, "crawl", "--sources", str(sources_file), "--as", "sam", "--json")
    assert ran.returncode == 0, ran.stderr
    with consortium.db.read() as s:
        assert sorted(r.status for r in s.scalars(select(Crawl))) == ["interrupted", "ok"]


def test_a_queued_crawl_whose_sources_are_busy_waits_and_runs_later(
    consortium: Consortium, tree: Path, settings: Settings, cli: Cli
) -> None:
    c = consortium
    queued = crawl_jobs.queue(c.db, actor="sam", config=config_of(tree))
    with c.db.transaction() as s:
        s.add(
            CrawlLock(
                source="loading", holder=_holder_alive_elsewhere(),
                lease_until=utcnow() + timedelta(minutes=2), crawl_id="crl_other",
                started_at=utcnow(), started_by="rita",
            )
        )  # fmt: skip
    assert outbox.deliver(c.db, queued.action_id, effects.handlers(c.db, settings)) == "pending"
    action = _action(c.db, queued.action_id)
    assert action.attempts == 1
    assert action.last_error is not None
    assert action.last_error.startswith("crawl crl_other of sources loading is running since")
    assert _crawl_row(c.db, queued.crawl_id).status == "queued"
    shown = json.loads(cli("crawl", "show", queued.crawl_id, "--as", "sam", "--json").out)
    assert shown["job"]["action_state"] == "pending"
    listed = json.loads(cli("crawl", "list", "--as", "sam", "--json").out)
    assert listed[0]["progress"].startswith("waiting: crawl crl_other of sources loading")
    assert states(c) == {}
    with c.db.transaction() as s:
        s.execute(update(CrawlLock).values(holder=None, lease_until=None))
        s.execute(update(Action).values(next_try_at=utcnow()))
    assert outbox.deliver(c.db, queued.action_id, effects.handlers(c.db, settings)) == "done"
    assert _crawl_row(c.db, queued.crawl_id).status == "ok"
    assert states(c)["E-MTAB-2"] == "loading"


# ---- schedules --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("0", "not an interval"),
        ("0m", "out of range"),
        ("-5m", "not an interval"),
        ("4m", "out of range"),
        ("300s", "not an interval"),
        ("eight hours", "not an interval"),
        ("8x", "not an interval"),
        ("", "not an interval"),
        ("400d", "out of range"),
        ("h", "not an interval"),
        ("1.01h", "not whole minutes"),
    ],
)
def test_schedule_intervals_are_refused_naming_what_is_accepted(given: str, why: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        crawl_schedules.parse_every(given)
    (detail,) = err.value.details
    assert (detail.message, detail.field, detail.value) == (why, "every", given)
    assert detail.accepted == "a number and a unit (m, h, d), e.g. 30m, 8h, 1d; from 5m to 365d"


def test_schedule_intervals_accepted() -> None:
    assert crawl_schedules.parse_every("5m") == timedelta(minutes=5)
    assert crawl_schedules.parse_every("30m") == timedelta(minutes=30)
    assert crawl_schedules.parse_every(" 8H ") == timedelta(hours=8)
    assert crawl_schedules.parse_every("1.5h") == timedelta(minutes=90)
    assert crawl_schedules.parse_every("1d") == timedelta(days=1)
    assert crawl_schedules.every_text(8 * 3600) == "8h"
    assert crawl_schedules.every_text(90 * 60) == "90m"


def test_schedule_add_list_and_the_worker_runs_it_then_remove(
    consortium: Consortium, sources_file: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = consortium
    bad = cli("crawl", "schedule", "add", "--every", "2m", "--sources", str(sources_file),
              "--as", "sam", "--json")  # fmt: skip
    assert bad.code == 2
    assert json.loads(bad.out)["errors"][0]["accepted"].startswith("a number and a unit")
    added = cli("crawl", "schedule", "add", "--every", "8h", "--sources", str(sources_file),
                "--as", "sam")  # fmt: skip
    assert added.code == 0, added.err
    assert "crawl schedule atlas: every 8h" in added.out  # named after the file
    twice = cli("crawl", "schedule", "add", "--every", "1d", "--sources", str(sources_file),
                "--as", "sam")  # fmt: skip
    assert twice.code == 1
    assert "--replace" in twice.err
    refused = cli("crawl", "schedule", "add", "nightly", "--every", "1d", "--sources",
                  str(sources_file), "--as", "vic")  # fmt: skip
    assert refused.code == 1
    assert "steward or admin" in refused.err
    views = json.loads(cli("crawl", "schedule", "list", "--as", "sam", "--json").out)
    assert [(v["name"], v["every"], v["last_crawl_id"]) for v in views] == [("atlas", "8h", None)]
    assert views[0]["sources"] == ["external", "incoming", "loading", "loading-2", "published"]
    assert views[0]["next_run_at"] is not None
    with c.db.read() as s:
        stored = s.get(CrawlSchedule, "atlas")
        assert stored is not None
        assert stored.config["sources"][0]["stage"] == "external"

    sources_file.unlink()  # the worker needs no file
    out = json.loads(cli("--json", "worker", "--drain").out)
    assert out["periodic"] == ["crawl:atlas"]  # it runs as sam: the worker needs no --as
    assert out["delivered"] == {"done": 1}
    assert states(c)["E-MTAB-2"] == "loading"
    (row,) = json.loads(cli("crawl", "list", "--as", "sam", "--json").out)
    assert (row["status"], row["schedule"], row["started_by"]) == ("ok", "atlas", "sam")
    (view,) = json.loads(cli("crawl", "schedule", "list", "--as", "sam", "--json").out)
    assert view["last_crawl_id"] == row["id"]
    assert view["last_crawl_status"] == "ok"
    assert view["last_error"] is None
    next_run = view["next_run_at"]
    assert next_run > view["last_run_at"]
    table = cli("crawl", "schedule", "list", "--as", "sam")
    assert "next run" in table.out
    assert "atlas" in table.out
    # not due again for eight hours
    out = json.loads(cli("--json", "worker", "--drain").out)
    assert (out["periodic"], out["delivered"]) == ([], {})

    assert cli("crawl", "schedule", "remove", "atlas", "--as", "vic").code == 1  # not theirs
    gone = cli("crawl", "schedule", "remove", "atlas", "--as", "sam")
    assert gone.code == 0, gone.err
    assert json.loads(cli("crawl", "schedule", "list", "--as", "sam", "--json").out) == []
    with c.db.read() as s:
        assert s.get(Schedule, "crawl:atlas") is None
    assert cli("crawl", "schedule", "remove", "atlas", "--as", "sam").code == 1


def test_a_scheduled_turn_skips_while_its_sources_are_busy_and_comes_again_soon(
    consortium: Consortium, tree: Path, settings: Settings
) -> None:
    c = consortium
    crawl_schedules.add(
        c.db, actor="sam", name="n", every=timedelta(hours=8), config=config_of(tree)
    )
    with c.db.transaction() as s:
        s.add(
            CrawlLock(
                source="incoming", holder=_holder_alive_elsewhere(),
                lease_until=utcnow() + timedelta(minutes=2), crawl_id="crl_manual",
                started_at=utcnow(), started_by="rita",
            )
        )  # fmt: skip
    w = Worker(c.db, settings)
    before = utcnow()
    assert w.run_periodic() == ["crawl:n"]
    (view,) = crawl_schedules.list_(c.db, actor="sam")
    assert view.last_error is not None
    assert view.last_error.startswith(
        "skipped: crawl crl_manual of sources incoming is running since"
    )
    assert view.last_error.endswith("started by rita; tried again in 5m")
    assert view.next_run_at is not None
    assert before + timedelta(minutes=4) < view.next_run_at < utcnow() + timedelta(minutes=6)
    with c.db.read() as s:
        assert s.scalars(select(Crawl)).all() == []  # nothing queued
    with c.db.transaction() as s:
        s.execute(update(CrawlLock).values(holder=None))
        s.execute(update(Schedule).values(next_run_at=utcnow()))
    assert w.run_periodic() == ["crawl:n"]
    (view,) = crawl_schedules.list_(c.db, actor="sam")
    assert (view.last_error, view.last_crawl_status) == (None, "queued")
    # its crawl still queued: the next turn does not pile another on
    with c.db.transaction() as s:
        s.execute(update(Schedule).values(next_run_at=utcnow()))
    assert w.run_periodic() == ["crawl:n"]
    (view,) = crawl_schedules.list_(c.db, actor="sam")
    assert view.last_error == (
        f"skipped: crawl {view.last_crawl_id} of sources external, incoming, loading, "
        "loading-2, published is queued; tried again in 5m"
    )
    # nor on a crawl queued by hand of some of its sources
    with c.db.transaction() as s:
        s.execute(update(Action).values(state="cancelled"))
        s.execute(update(Schedule).values(next_run_at=utcnow()))
    other = parse_crawl_config({"sources": [sources(tree)["sources"][2]]})
    by_hand = crawl_jobs.queue(c.db, actor="sam", config=other)
    assert w.run_periodic() == ["crawl:n"]
    (view,) = crawl_schedules.list_(c.db, actor="sam")
    assert view.last_error == (
        f"skipped: crawl {by_hand.crawl_id} of sources loading is queued; tried again in 5m"
    )
    with c.db.read() as s:
        assert len(s.scalars(select(Crawl)).all()) == 2  # the scheduled one, the one by hand


def test_a_running_worker_picks_up_a_schedule_added_after_it_started(
    consortium: Consortium, sources_file: Path, cli: Cli
) -> None:
    settings = consortium.db.settings
    log = (sources_file.parent / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from steward.cli.app import run; run()", "worker"],
        env=_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        time.sleep(1)  # the worker's first scheduler pass finds no schedule
        added = cli("crawl", "schedule", "add", "soon", "--every", "1h", "--sources",
                    str(sources_file), "--as", "sam")  # fmt: skip
        assert added.code == 0, added.err
        deadline = time.monotonic() + 120
        while True:
            with consortium.db.read() as s:
                done = s.scalars(select(Crawl).where(Crawl.status == "ok")).all()
            if done:
                break
            assert proc.poll() is None, (sources_file.parent / "worker.log").read_text()
            assert time.monotonic() < deadline, (sources_file.parent / "worker.log").read_text()
            time.sleep(0.2)
        assert done[0].summary["schedule"] == "soon"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    assert states(consortium)["E-MTAB-2"] == "loading"


def test_schedules_are_shown_to_the_staff_of_their_projects_only(
    consortium: Consortium, tree: Path
) -> None:
    c = consortium
    crawl_schedules.add(
        c.db, actor="sam", name="n", every=timedelta(days=1), config=config_of(tree)
    )
    assert [v.name for v in crawl_schedules.list_(c.db, actor="admin")] == ["n"]
    assert crawl_schedules.list_(c.db, actor="vic") == []
    with pytest.raises(NotFound):
        crawl_schedules.remove(c.db, actor="vic", name="n")
    with pytest.raises(Forbidden):
        crawl_schedules.add(
            c.db, actor="vic", name="m", every=timedelta(days=1), config=config_of(tree)
        )
    with pytest.raises(Conflict):
        crawl_schedules.add(c.db, actor="sam", name="n", every=timedelta(hours=1),
                            config=config_of(tree))  # fmt: skip
    with pytest.raises(ValidationFailed):
        crawl_schedules.add(c.db, actor="sam", name="no spaces", every=timedelta(hours=1),
                            config=config_of(tree))  # fmt: skip
    changed = crawl_schedules.add(c.db, actor="sam", name="n", every=timedelta(hours=1),
                                  config=config_of(tree), replace=True)  # fmt: skip
    assert changed.every == "1h"
    # a steward of another project hears the name is taken — not whose, nor how often
    access.create_project(c.db, actor="admin", project_id="p2", title="Two")
    access.add_member(c.db, actor="admin", project_id="p2", user_id="olga", role="steward")
    document = sources(tree)
    for src in document["sources"]:
        src["project"] = "p2"
    for again in (False, True):
        with pytest.raises(Conflict, match="is taken") as taken:
            crawl_schedules.add(c.db, actor="olga", name="n", every=timedelta(days=1),
                                config=parse_crawl_config(document), replace=again)  # fmt: skip
        assert "sam" not in str(taken.value)
        assert "1h" not in str(taken.value)


def test_full_crawls_queued_and_scheduled_examine_every_file(
    consortium: Consortium, sources_file: Path, tree: Path, cli: Cli
) -> None:
    """``--full`` travels with a queued crawl and with a schedule's crawls to the worker: a
    data file rewritten in place (its folder's time kept) is seen only by a full crawl."""
    c = consortium
    assert cli("crawl", "--sources", str(sources_file), "--as", "sam").code == 0
    data = tree / "incoming" / "E-MTAB-1" / "raw" / "run1.fq"
    folder = data.parent.stat()
    data.write_text("ACGTACGTACGT\n", encoding="utf-8")
    os.utime(data.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))

    def size() -> int:
        with c.db.read() as s:
            return int(
                s.scalars(
                    select(DatasetFile.size).where(DatasetFile.path == "E-MTAB-1/raw/run1.fq")
                ).one()
            )

    quick = json.loads(
        cli("crawl", "--sources", str(sources_file), "--no-wait", "--as", "sam", "--json").out
    )
    assert json.loads(cli("--json", "worker", "--drain").out)["delivered"] == {"done": 1}
    assert _action(c.db, quick["action_id"]).payload["full"] is False
    assert size() == 5
    added = cli("crawl", "schedule", "add", "weekly", "--every", "7d", "--full",
                "--sources", str(sources_file), "--as", "sam", "--json")  # fmt: skip
    assert added.code == 0, added.err
    assert json.loads(added.out)["full"] is True
    assert json.loads(cli("--json", "worker", "--drain").out)["delivered"] == {"done": 1}
    assert size() == 13
    table = cli("crawl", "schedule", "list", "--as", "sam")
    assert "full" in table.out


def test_a_crawl_feeding_two_projects_is_hidden_from_a_steward_of_only_one(
    consortium: Consortium, tree: Path
) -> None:
    """A crawl's job names every project its sources feed; a steward of one of them may not
    see it, cancel it or retry it (it would run as whoever queued it, into the other)."""
    c = consortium
    access.create_project(c.db, actor="admin", project_id="p2", title="Two")
    document = sources(tree)
    document["sources"][-1]["project"] = "p2"
    queued = crawl_jobs.queue(c.db, actor="admin", config=parse_crawl_config(document))
    for call in (service.get, service.cancel, service.retry):
        with pytest.raises(NotFound, match="no action"):
            call(c.db, actor="sam", action_id=queued.action_id)
    assert queued.action_id not in {a.id for a in service.list_actions(c.db, actor="sam")}
    assert service.get(c.db, actor="admin", action_id=queued.action_id).state == "pending"


def test_a_crawl_whose_sources_were_taken_after_its_lease_ran_out_stops(
    consortium: Consortium, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two crawls never write at once even when one stalled past its lease: the one that lost
    its sources stops at its next step (what it wrote stays; running it again finishes)."""
    from steward.jobs import runner

    monkeypatch.setattr(runner, "HEARTBEAT", 0.02)
    monkeypatch.setattr(leases, "RENEW_EVERY", 0.0)
    c = consortium

    def stall(step: Progress) -> None:
        if step.phase == "committed" and step.done == 1:
            with c.db.transaction() as s:  # another crawl took them after the lease ran out
                s.execute(update(CrawlLock).values(holder="another-host:1:0"))
            time.sleep(0.5)  # a beat or more: the renewal finds them gone

    with pytest.raises(runner.Released, match="lost its sources"):
        crawl.run_crawl(c.db, c.db.settings, actor="sam", config=config_of(tree), progress=stall,
                        chunk=1)  # fmt: skip
    with c.db.read() as s:
        (row,) = s.scalars(select(Crawl))
    assert row.status == "interrupted"


def test_a_crawl_left_running_on_another_host_is_interrupted_once_its_leases_ran_out(
    consortium: Consortium, tree: Path
) -> None:
    """A crawl of other sources, on another machine: shown running while its leases last,
    interrupted when a later crawl finds them run out (its process cannot be asked)."""
    c = consortium
    now = utcnow()
    with c.db.transaction() as s:
        for crawl_id, until in (("crl_alive", now + timedelta(hours=1)),
                                ("crl_dead", now - timedelta(minutes=1))):  # fmt: skip
            s.add(Crawl(id=crawl_id, started_at=now, started_by="sam", status="running",
                        summary={"runner": "elsewhere.example:4242:1"}))  # fmt: skip
            s.add(CrawlLock(source=f"other-{crawl_id}", holder="elsewhere.example:4242:1",
                            lease_until=until, crawl_id=crawl_id, started_at=now))  # fmt: skip
    crawl.run_crawl(c.db, c.db.settings, actor="sam", config=config_of(tree))
    assert _crawl_row(c.db, "crl_alive").status == "running"
    assert _crawl_row(c.db, "crl_dead").status == "interrupted"
