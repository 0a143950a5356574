"""``steward worker``: drains the outbox and runs jobs until stopped, on a Huey queue.

Pieces, all in one process:

- a relay hands due outbox rows to the queue (Huey: a SQLite file in STEWARD_HOME by default,
  Redis when ``STEWARD_QUEUE_URL`` names one, so workers on several machines share it);
- ``concurrency`` threads take messages off the queue and deliver them (claim the row, run
  its handler, record the outcome — see :mod:`steward.jobs.outbox`);
- a scheduler runs the periodic tasks whose turn it is (:mod:`steward.jobs.schedule`): the
  built-in ones, and the crawl schedules, read from the database on every pass so that one
  added after the worker started is picked up (:mod:`steward.services.crawl_schedules`).

The queue only carries action ids: the outbox rows stay the truth. A message lost with a
killed worker is handed over again; a message delivered twice finds the row already taken.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from steward.config import Settings
from steward.db.session import Database
from steward.errors import ConfigurationError, Detail
from steward.jobs import effects, outbox, runner, schedule
from steward.redact import redact
from steward.services import crawl_schedules

log = logging.getLogger(__name__)

POLL = 0.5  # seconds between relay passes, and between looks at an empty SQLite queue
SCHEDULE_EVERY = 5.0  # seconds between looks at the periodic tasks
EXPIRE_EVERY = timedelta(minutes=10)


def make_huey(settings: Settings) -> Any:
    """The queue: Redis when configured, else a SQLite file next to the database."""
    from huey import RedisHuey, SqliteHuey

    if settings.queue_url:
        return RedisHuey("steward", url=settings.queue_url, results=False)
    settings.home.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        "steward",
        filename=str(settings.home / "queue.db"),
        results=False,
        timeout=settings.lock_timeout,
    )


def check_queue(settings: Settings, huey: Any) -> None:
    """Refuse to start on a queue that cannot be reached, saying which setting names it."""
    if not settings.queue_url:
        return
    import redis

    try:
        huey.storage.conn.ping()
    except redis.RedisError as exc:
        raise ConfigurationError(
            redact(f"the queue named by STEWARD_QUEUE_URL cannot be reached: {exc}"),
            [
                Detail(
                    "unreachable",
                    field="STEWARD_QUEUE_URL",
                    value=redact(settings.queue_url),
                    accepted="the URL of a running Redis server, e.g. redis://host:6379/0",
                )
            ],
        ) from None


def periodic_tasks(
    db: Database, settings: Settings, actor: str | None
) -> dict[str, schedule.Periodic]:
    """Expire due requests and packages, as ``actor`` (none without one: nobody to act as)."""
    if not actor:
        return {}
    from steward.services import packages, requests

    def expire_requests() -> object:
        return requests.expire_due(db, actor=actor)

    def expire_packages() -> object:
        return packages.expire_due(db, settings, actor=actor)

    return {
        "expire-requests": schedule.Periodic("expire-requests", EXPIRE_EVERY, expire_requests),
        "expire-packages": schedule.Periodic("expire-packages", EXPIRE_EVERY, expire_packages),
    }


def _warn(what: str, exc: Exception) -> None:
    # One line, no traceback (the worker tries again on its next pass).
    log.warning("%s: %s", what, redact(f"{type(exc).__name__}: {exc}"))


@dataclass
class Stats:
    delivered: dict[str, int] = field(default_factory=dict)
    periodic: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, state: str | None) -> None:
        if state is None:
            return
        with self.lock:
            self.delivered[state] = self.delivered.get(state, 0) + 1


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        concurrency: int = 2,
        actor: str | None = None,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.concurrency = max(1, concurrency)
        self.huey = make_huey(settings)
        check_queue(settings, self.huey)
        self.handlers = effects.handlers(db, settings)
        self.periodic = periodic_tasks(db, settings, actor)
        self.stop = threading.Event()
        self.stats = Stats()
        self.on_event = on_event or (lambda _line: None)
        self._deliver = self.huey.task(name="steward.deliver")(self._run)

    def _run(self, action_id: str) -> None:
        state = outbox.deliver(self.db, action_id, self.handlers)
        self.stats.count(state)
        if state is not None:
            self.on_event(f"{action_id} {state}")

    def relay(self) -> int:
        return outbox.relay(self.db, self._deliver)

    def _take(self) -> bool:
        task = self.huey.dequeue()
        if task is None:
            return False
        self.huey.execute(task)
        return True

    def _consume(self, until_empty: bool) -> None:
        while not self.stop.is_set():
            try:
                took = self._take()
            except Exception as exc:
                _warn("the queue could not be read", exc)
                took = False
            if not took:
                if until_empty:
                    return
                self.stop.wait(POLL)

    def _relay_loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.relay()
            except Exception as exc:
                _warn("the outbox could not be relayed", exc)
            self.stop.wait(POLL)

    def tasks(self) -> dict[str, schedule.Periodic]:
        """The periodic tasks now: the built-in ones and every crawl schedule (which run as
        whoever added them, so they need no ``actor``)."""
        return {**self.periodic, **crawl_schedules.periodic(self.db)}

    def run_periodic(self) -> list[str]:
        ran = schedule.run_due(self.db, self.tasks())
        self.stats.periodic.extend(ran)
        for name in ran:
            self.on_event(f"periodic {name} ran")
        return ran

    def _schedule_loop(self) -> None:
        while not self.stop.is_set():
            try:
                self.run_periodic()
            except Exception as exc:
                _warn("periodic tasks could not run", exc)
            self.stop.wait(SCHEDULE_EVERY)

    def _threads(self, target: Callable[[], None], n: int, name: str) -> list[threading.Thread]:
        threads = [threading.Thread(target=target, name=f"{name}-{i}") for i in range(n)]
        for t in threads:
            t.start()
        return threads

    def shut_down(self) -> None:
        """Stop taking work; long jobs running now let go of their subjects (the next worker
        resumes them), short effects (a webhook call) finish."""
        self.stop.set()
        runner.RELEASE.set()

    def run(self) -> None:
        """Until :meth:`shut_down` (SIGTERM, Ctrl-C)."""
        runner.RELEASE.clear()
        threads = self._threads(lambda: self._consume(until_empty=False), self.concurrency, "job")
        threads += self._threads(self._relay_loop, 1, "relay")
        threads += self._threads(self._schedule_loop, 1, "scheduler")
        try:
            while not self.stop.wait(0.2):
                pass
        finally:
            self.stop.set()
            for t in threads:
                t.join()
            # Every job this worker ran has let go: a build or push run later in this process
            # (a server's embedded worker stopped, the process goes on) must not stop at once.
            runner.RELEASE.clear()

    def drain(self) -> None:
        """Run what is due now, then return (for tests and cron): the periodic tasks whose
        turn it is, and every action until none is due (retries waiting out a backoff and
        actions another live worker holds are left)."""
        runner.RELEASE.clear()
        self.run_periodic()
        while not self.stop.is_set():
            sent = self.relay()
            threads = self._threads(
                lambda: self._consume(until_empty=True), self.concurrency, "job"
            )
            for t in threads:
                t.join()
            if not sent and not outbox.anything_due(self.db):
                return
            if not sent:
                self.stop.wait(POLL)  # due but handed over recently: give it a moment
