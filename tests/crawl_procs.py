"""Crawls in real processes, stopped at a chosen point, for the crawl-job tests.

``python -m tests.crawl_procs hold SOURCES ACTOR DIR`` runs a crawl that, once it holds its
sources (at its first step), writes ``DIR/holding`` and waits until ``DIR/release`` exists
(or five minutes pass), then finishes. A crawl refused because another holds its sources
exits 1 after writing ``DIR/refused`` with the message.

``python -m tests.crawl_procs worker-kill N`` runs a real worker (``Worker.drain``: relay,
queue, delivery) whose crawls write one dataset per chunk and SIGKILL the process after the
N-th committed chunk (``all``: after the last, before the listing states are saved).

Both read ``STEWARD_HOME`` and ``STEWARD_DATABASE_URL``.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from pathlib import Path

from steward.config import load_settings
from steward.crawl.config import load_crawl_config
from steward.db.session import Database
from steward.services.crawl_summary import Progress


def hold(path: str, actor: str, folder: str) -> int:
    from steward.services.crawl import run_crawl
    from steward.services.crawl_locks import CrawlBusy

    settings = load_settings()
    db = Database(settings)
    marks = Path(folder)

    def wait_at_first_step(step: Progress) -> None:
        if (marks / "holding").exists():
            return
        (marks / "holding").write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not (marks / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    try:
        run_crawl(
            db, settings, actor=actor, config=load_crawl_config(path), progress=wait_at_first_step
        )
    except CrawlBusy as exc:
        (marks / "refused").write_text(exc.message)
        return 1
    return 0


def worker_kill(when: str) -> int:
    from steward.jobs import worker
    from steward.services import crawl_jobs

    settings = load_settings()
    db = Database(settings)

    def kill_after(step: Progress) -> None:
        if step.phase != "committed":
            return
        if step.done >= ((step.total or 0) if when == "all" else int(when)):
            os.kill(os.getpid(), signal.SIGKILL)

    crawl_jobs.run_queued = functools.partial(crawl_jobs.run_queued, progress=kill_after, chunk=1)
    worker.Worker(db, settings, concurrency=1).drain()
    return 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "hold":
        sys.exit(hold(*args))
    sys.exit(worker_kill(*args))
