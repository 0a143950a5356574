"""Periodic tasks (expire due requests and packages, scheduled crawls; later monitors,
retention), run from every worker's scheduler but by one worker at a time.

The turn is a row in ``schedules`` claimed with a conditional UPDATE: only the worker whose
UPDATE matched runs the task. It is a lease, not a lock held in memory, so a worker killed
mid-task does not block the task for ever: once the lease ran out (or, on this host, the
holder's process is gone) the next worker takes the turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from steward.db.queue_tables import Schedule
from steward.db.session import Database
from steward.services import leases
from steward.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    every: timedelta
    run: Callable[[], object]


class NotNow(Exception):
    """A task that cannot do its work now (a scheduled crawl whose sources another crawl
    holds): its turn comes again after ``retry_in`` instead of a whole period, and the reason
    is kept as its ``last_error``."""

    def __init__(self, message: str, retry_in: timedelta) -> None:
        super().__init__(message)
        self.retry_in = retry_in


def _ensure(s: Session, name: str, now: datetime) -> None:
    values = {"name": name, "next_run_at": now, "runs": 0}
    if s.get_bind().dialect.name == "postgresql":
        s.execute(postgresql.insert(Schedule).values(**values).on_conflict_do_nothing())
    else:
        s.execute(sqlite.insert(Schedule).values(**values).on_conflict_do_nothing())


def _take_turn(db: Database, name: str, owner: str) -> bool:
    now = utcnow()
    with db.transaction() as s:
        _ensure(s, name, now)
        row = s.get(Schedule, name, with_for_update=s.get_bind().dialect.name == "postgresql")
        if row is None or row.next_run_at > now:
            return False
        if row.owner and not leases.holder_gone(row.owner, row.lease_until, now):
            return False  # another worker runs it right now
        # Conditional on what we read: a racing worker's UPDATE matches nothing.
        taken = s.execute(
            update(Schedule)
            .where(Schedule.name == name, Schedule.runs == row.runs)
            .where(Schedule.owner.is_(None) if row.owner is None else Schedule.owner == row.owner)
            .values(owner=owner, lease_until=leases.lease_until(now), runs=row.runs + 1)
            .execution_options(synchronize_session=False)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def _done(
    db: Database, task: Periodic, owner: str, error: str | None, after: timedelta | None = None
) -> None:
    now = utcnow()
    with db.transaction() as s:
        s.execute(
            update(Schedule)
            .where(Schedule.name == task.name, Schedule.owner == owner)
            .values(
                owner=None,
                lease_until=None,
                last_run_at=now,
                last_error=error,
                next_run_at=now + (task.every if after is None else after),
            )
            .execution_options(synchronize_session=False)
        )


def run_due(db: Database, tasks: Mapping[str, Periodic]) -> list[str]:
    """Run every task whose turn it is and that no other worker runs now; returns their names."""
    owner = leases.me()
    ran = []
    for task in tasks.values():
        if not _take_turn(db, task.name, owner):
            continue
        error, after = None, None
        try:
            task.run()
        except NotNow as exc:
            error, after = str(exc), exc.retry_in
            log.info("periodic task %s skipped: %s", task.name, error)
        except Exception as exc:
            from steward.jobs.runner import reason

            error = reason(exc, task.name)
            log.warning("periodic task %s failed: %s", task.name, error)
        _done(db, task, owner, error, after)
        ran.append(task.name)
    return ran
