"""kill -9 in the middle of the demo, run it again: it finishes with no duplicates or gaps."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from steward.config import Settings
from steward.db.models import AccessRequest, Event
from steward.db.session import Database
from steward.packaging.journal import load_journal

RUN = [sys.executable, "-c", "from steward.cli.app import run; run()"]


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["STEWARD_HOME"] = str(settings.home)
    env["STEWARD_DATABASE_URL"] = settings.resolved_database_url
    env.pop("STEWARD_USER", None)
    return env


def _counts(db: Database) -> tuple[int, int]:
    with db.read() as s:
        reqs = s.scalar(select(func.count()).select_from(AccessRequest)) or 0
        events = s.scalar(select(func.count()).select_from(Event)) or 0
    return int(reqs), int(events)


def test_demo_survives_kill_9(settings: Settings, tmp_path: Path) -> None:
    env = _env(settings)
    proc = subprocess.Popen(
        [*RUN, "demo"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    db = Database(settings)
    try:
        # The demo is frozen (SIGSTOP) while its progress is read, so a busy machine cannot
        # let it run past the point of interruption between a look and the kill.
        deadline = time.monotonic() + 120
        caught = False
        while time.monotonic() < deadline and proc.poll() is None:
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                caught = 0 < _counts(db)[0] < 60
            except Exception:  # the database is not there yet
                caught = False
            if caught:
                break
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.01)
        assert caught, "the demo was never caught half-way through its requests"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        interrupted = _counts(db)
        assert 0 < interrupted[0] < 60

        done = subprocess.run([*RUN, "demo"], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        after = _counts(db)
        assert after[0] == 60

        # Same figures as an uninterrupted run elsewhere: nothing lost, nothing twice.
        clean = Settings(home=tmp_path / "clean")
        subprocess.run([*RUN, "demo"], env=_env(clean), capture_output=True, check=True)
        clean_db = Database(clean)
        assert _counts(clean_db) == after
        clean_db.dispose()

        with db.transaction() as s:
            per_subject = s.execute(
                select(Event.subject_id, func.count(), func.max(Event.seq), func.min(Event.seq))
                .where(Event.subject_kind == "access_request")
                .group_by(Event.subject_id)
            ).all()
            versions = dict(s.execute(select(AccessRequest.id, AccessRequest.version)).all())
        for subject_id, count, high, low in per_subject:
            assert (low, high) == (1, count), f"gap or duplicate in {subject_id}"
            assert versions[subject_id] == count
    finally:
        if proc.poll() is None:
            proc.kill()
        db.dispose()


def test_ctrl_c_during_a_build_says_what_happened_and_retry_continues(
    settings: Settings, consortium: object, tmp_path: Path
) -> None:
    """A real SIGINT to a real ``steward package create``; then the commands the message names."""
    from tests.packaging_data import make_dataset

    data = make_dataset(tmp_path / "ds", samples=60, fastq_size=200_000)
    env = _env(settings) | {"STEWARD_USER": "sam", "STEWARD_WORKERS": "1", "COLUMNS": "200"}
    create = [
        *RUN,
        "package",
        "create",
        "cup",
        "-p",
        "p1",
        "-m",
        str(data.manifest),
        "--workflow-manifest",
        str(data.workflow_manifest),
    ]
    proc = subprocess.Popen(
        create, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    packages_dir = settings.home / "packages"
    journal: Path | None = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = list(packages_dir.glob("pkg_*/.steward/build-journal.jsonl"))
            if found and len(load_journal(found[0])) >= 5:
                journal = found[0]
                break
            time.sleep(0.01)
        assert journal is not None, "no file was finished in two minutes"
        assert proc.poll() is None, "the build ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    pkg = journal.parent.parent.name
    assert proc.returncode == 130, out + err
    message = " ".join(err.split())
    assert message.startswith("interrupted (Ctrl-C) during the build: "), err
    done_re = r"(\d+) of 240 file\(s\) were copied and verified, and they are kept"
    assert re.search(done_re, message), err
    assert "Nothing is corrupt" in message, err
    retry = f"{pkg} is now failed; `steward package retry {pkg}` continues where it stopped"
    assert retry in message, err
    assert "Traceback" not in err

    # what was done before Ctrl-C, and what those files are on disk now
    bag = packages_dir / pkg
    done = sorted(load_journal(journal))
    before = {rel: (bag / "data" / rel).stat().st_ino for rel in done}
    assert len(before) >= 5

    # the same create again does not build it: it says why and what continues it
    again = subprocess.run(create, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 1
    assert f"`steward package retry {pkg}`" in " ".join(again.stderr.split())
    db = Database(settings)
    try:
        with db.transaction() as s:
            events = list(s.scalars(select(Event.type).where(Event.subject_id == pkg)))
        assert events == ["created", "build_started", "build_failed"]

        retried = subprocess.run(
            [*RUN, "package", "retry", pkg], env=env, capture_output=True, text=True, check=False
        )
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert "now built" in retried.stdout
        # continued, not restarted: the files finished before Ctrl-C were not written again
        assert {rel: (bag / "data" / rel).stat().st_ino for rel in done} == before
        check = subprocess.run(
            [*RUN, "package", "validate", pkg, "--full"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        db.dispose()
