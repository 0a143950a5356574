"""How far a running crawl is, for ``steward crawl show`` and ``steward jobs show`` in other
processes, and the lease on its sources kept alive while it runs.

A heartbeat thread writes the crawl's last step at most once a second — the ``job_progress``
row every long job has (``crawl``, ``crl_…``: items are datasets listed, then written) and
the phase and source on the crawl's own row — and renews the lease on its sources every
``leases.RENEW_EVERY`` seconds (a source that takes minutes to list must not lose it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict
from typing import ClassVar

from sqlalchemy import update

from steward.db.models import Crawl
from steward.db.queue_tables import JobProgress
from steward.db.session import Database
from steward.errors import Detail, StewardError
from steward.jobs import runner
from steward.services import crawl_locks, leases
from steward.services.crawl_summary import Progress, ProgressHook
from steward.timeutil import utcnow

KIND = "crawl"
"""The subject kind of a crawl's progress row and of its outbox action."""


class CrawlCancelled(StewardError):
    """Someone cancelled the crawl (``steward jobs cancel``); what it committed stays."""

    code: ClassVar[str] = "crawl-cancelled"
    title: ClassVar[str] = "Crawl stopped on request"
    http_status: ClassVar[int] = 409


class Beat:
    """The heartbeat of one crawl: :meth:`note` each step, :meth:`stop` at the end."""

    def __init__(
        self, db: Database, crawl_id: str, project: str, names: list[str], holder: str
    ) -> None:
        self.db, self.crawl_id, self.names, self.holder = db, crawl_id, names, holder
        self._step: Progress | None = None
        self._changed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        now = utcnow()
        with db.transaction() as s:
            s.merge(
                JobProgress(
                    subject_kind=KIND,
                    subject_id=crawl_id,
                    project_id=project,
                    owner=holder,
                    started_at=now,
                    updated_at=now,
                    finished_at=None,
                    bytes_done=0,
                    bytes_total=None,
                    items_done=0,
                    items_total=None,
                    cancel_requested_by=None,
                )
            )
        self._thread = threading.Thread(target=self._loop, name="crawl-heartbeat", daemon=True)
        self._thread.start()

    lost = False
    """Another crawl took one of the sources after this one's lease ran out."""

    def note(self, step: Progress) -> None:
        with self._lock:
            self._step, self._changed = step, True

    def _loop(self) -> None:
        last_renew = utcnow()
        while not self._stop.wait(runner.HEARTBEAT):
            with suppress(Exception):  # the next beat tries again
                self._write(final=False)
            if (utcnow() - last_renew).total_seconds() < leases.RENEW_EVERY:
                continue
            with suppress(Exception):  # a failed renewal is tried again at the next beat
                if not crawl_locks.renew(self.db, self.names, self.holder):
                    self.lost = True  # the next step stops the crawl (see observed)
                last_renew = utcnow()

    def _write(self, *, final: bool) -> None:
        with self._lock:
            step, changed, self._changed = self._step, self._changed, False
        if not changed and not final:
            return
        now = utcnow()
        values: dict[str, object] = {"updated_at": now}
        if step is not None:
            values.update(items_done=step.done, items_total=step.total)
        if final:
            values["finished_at"] = now
        with self.db.transaction() as s:
            s.execute(
                update(JobProgress)
                .where(JobProgress.subject_kind == KIND, JobProgress.subject_id == self.crawl_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            row = s.get(Crawl, self.crawl_id)
            if row is not None and step is not None and not final:
                row.summary = {**row.summary, "progress": {**asdict(step), "at": now.isoformat()}}

    def stop(self) -> None:
        """Stop the thread and write the last step, marked finished (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        with suppress(Exception):
            self._write(final=True)


def observed(
    hook: ProgressHook | None, beat: Beat | None, checkpoint: Callable[[], None] | None
) -> ProgressHook | None:
    """``hook`` (a progress bar) and the heartbeat told of each step; after each step but the
    last, ``checkpoint`` may stop the crawl by raising."""
    if beat is None and checkpoint is None:
        return hook

    def observe(step: Progress) -> None:
        if beat is not None:
            beat.note(step)
            if beat.lost and step.phase != "done":
                raise runner.Released(
                    f"{beat.crawl_id} lost its sources to another crawl (its lease ran out); "
                    "what it wrote stays, and running it again finishes it",
                    [Detail("lease lost", field="crawl", value=beat.crawl_id)],
                )
        if hook is not None:
            hook(step)
        if checkpoint is not None and step.phase != "done":
            checkpoint()

    return observe
