"""kill -9 in the middle of the demo, run it again: it finishes with no duplicates or gaps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from steward.config import Settings
from steward.db.models import AccessRequest, Event
from steward.db.session import Database

RUN = [sys.executable, "-c", "from steward.cli.app import run; run()"]


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["STEWARD_HOME"] = str(settings.home)
    env["STEWARD_DATABASE_URL"] = settings.resolved_database_url
    env.pop("STEWARD_USER", None)
    return env


def _counts(db: Database) -> tuple[int, int]:
    with db.transaction() as s:
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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if _counts(db)[0] >= 15:
                    break
            except Exception:
                pass
            time.sleep(0.05)
        assert proc.poll() is None, "the demo finished before it could be interrupted"
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
