"""Run a crawl in this process and kill -9 it at a chosen point, for the interruption tests.

``python -m tests.crawl_kill SOURCES.json ACTOR CHUNK WHEN`` with ``STEWARD_HOME`` and
``STEWARD_DATABASE_URL`` set; ``WHEN`` is ``commit:N`` (after the N-th committed dataset),
``commit:all`` (after the last one, before the listing states are saved) or ``never`` (run to
the end). SIGKILL leaves no chance to clean up: what is committed stays.
"""

from __future__ import annotations

import os
import signal
import sys

from steward.config import load_settings
from steward.crawl.config import load_crawl_config
from steward.db.session import Database
from steward.services.crawl import run_crawl
from steward.services.crawl_summary import Progress


def main(path: str, actor: str, chunk: str, when: str) -> None:
    settings = load_settings()
    db = Database(settings)
    point = when.removeprefix("commit:") if when.startswith("commit:") else None

    def hook(step: Progress) -> None:
        if point is None or step.phase != "committed":
            return
        if step.done >= (step.total or 0 if point == "all" else int(point)):
            os.kill(os.getpid(), signal.SIGKILL)

    run_crawl(
        db, settings, actor=actor, config=load_crawl_config(path), progress=hook, chunk=int(chunk)
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
