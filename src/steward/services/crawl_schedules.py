"""Periodic crawls (``steward crawl schedule add|list|remove``), queued by the worker.

A schedule keeps its sources as a crawl table without secrets (:func:`.crawl_jobs.document`:
credentials only as names of environment variables, resolved by the worker), so the worker
needs no file; changing the file later does not change the schedule (``add --replace`` does).
Every worker's scheduler loads the schedules from the database on each pass — one added after
the worker started is picked up within seconds — and each is a periodic task ``crawl:NAME``
(:mod:`steward.jobs.schedule`: one worker at a time, a lease). Its turn queues a crawl, as its
creator, which a worker then runs like ``steward crawl --no-wait``. While a crawl of any of its
sources is queued or running the turn is skipped and comes again in ``RETRY_BUSY`` (two crawls
of the same sources never overlap, nor pile up).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from steward.crawl.config import CrawlConfig
from steward.db.models import Crawl, CrawlSchedule, User
from steward.db.queue_tables import Schedule
from steward.db.session import Database
from steward.domain.roles import STAFF
from steward.errors import Conflict, Detail, NotFound, ValidationFailed
from steward.jobs import schedule
from steward.services import crawl, crawl_jobs, crawl_locks
from steward.services.access import audited, require_user, roles_in
from steward.timeutil import parse_duration, utcnow

SHORTEST = timedelta(minutes=5)
LONGEST = timedelta(days=365)
RETRY_BUSY = timedelta(minutes=5)
"""How soon a turn skipped because its sources were busy comes again."""
PREFIX = "crawl:"
"""A schedule's periodic task (and ``schedules`` row) is ``crawl:NAME``."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
EVERY_ACCEPTED = "a number and a unit (m, h, d), e.g. 30m, 8h, 1d; from 5m to 365d"


class ScheduleView(BaseModel):
    name: str
    every: str
    every_seconds: int
    sources: list[str]
    projects: list[str]
    origin: str
    created_by: str
    created_at: datetime
    next_run_at: datetime | None
    """When the worker's scheduler next queues it (``None``: at its next look)."""
    last_run_at: datetime | None
    last_error: str | None
    """Why the last turn did not queue a crawl (sources busy, permission lost…)."""
    last_crawl_id: str | None
    last_crawl_status: str | None
    full: bool = False
    """Its crawls examine every file, not only those of folders whose time changed."""


def parse_every(text: str) -> timedelta:
    """``--every``: ``30m``, ``8h``, ``1d`` (``h``/``d`` with a fraction too: ``1.5h``); at
    least five minutes (a crawl more often than that would mostly wait for the previous one)
    and at most a year. Anything else is refused naming what is accepted."""
    detail = Detail("not an interval", field="every", value=text, accepted=EVERY_ACCEPTED)
    stripped = text.strip().lower()
    if not stripped or stripped[-1] not in "mhd":
        raise ValidationFailed(f"--every {text!r} is not an interval", [detail])
    try:
        every = parse_duration(stripped)
    except ValueError:
        raise ValidationFailed(f"--every {text!r} is not an interval", [detail]) from None
    if every % timedelta(minutes=1):
        raise ValidationFailed(
            f"--every {text!r} is not a whole number of minutes",
            [Detail("not whole minutes", field="every", value=text, accepted=EVERY_ACCEPTED)],
        )
    if not SHORTEST <= every <= LONGEST:
        raise ValidationFailed(
            f"--every {text!r} is out of range: a crawl is scheduled from every 5 minutes to "
            "once a year",
            [Detail("out of range", field="every", value=text, accepted=EVERY_ACCEPTED)],
        )
    return every


def every_text(seconds: int) -> str:
    """``8h``, ``1d``, ``90m``: the interval as ``--every`` takes it."""
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValidationFailed(
            f"{name!r} is not a schedule name",
            [
                Detail(
                    "not a name",
                    field="name",
                    value=name,
                    accepted="letters, digits, '.', '_', '-' (up to 48, starting with a "
                    "letter or digit)",
                )
            ],
        )


def _projects(row: CrawlSchedule) -> list[str]:
    return sorted({str(src.get("project")) for src in row.config.get("sources", [])})


def _may_see(s: Session, user: User, row: CrawlSchedule) -> bool:
    """Admins, whoever added it, and stewards of every project its sources name."""
    if user.is_admin or row.created_by == user.id:
        return True
    projects = _projects(row)
    return bool(projects) and all(roles_in(s, user, p) & STAFF for p in projects)


def _view(s: Session, row: CrawlSchedule) -> ScheduleView:
    turn = s.get(Schedule, PREFIX + row.name)
    last = s.get(Crawl, row.last_crawl_id) if row.last_crawl_id else None
    return ScheduleView(
        name=row.name,
        every=every_text(row.every_seconds),
        every_seconds=row.every_seconds,
        sources=[str(src.get("name")) for src in row.config.get("sources", [])],
        projects=_projects(row),
        origin=row.origin,
        created_by=row.created_by,
        created_at=row.created_at,
        next_run_at=turn.next_run_at if turn is not None else None,
        last_run_at=turn.last_run_at if turn is not None else None,
        last_error=turn.last_error if turn is not None else None,
        last_crawl_id=row.last_crawl_id,
        last_crawl_status=last.status if last is not None else None,
        full=row.full,
    )


def add(
    db: Database,
    *,
    actor: str | None,
    name: str,
    every: timedelta,
    config: CrawlConfig,
    replace: bool = False,
    full: bool = False,
) -> ScheduleView:
    """Register (or with ``replace``, change) a periodic crawl of ``config``'s sources; its
    first turn is at the worker's next look, then every ``every``."""
    _check_name(name)
    with audited(db, actor=actor, action="crawl-schedule"), db.transaction() as s:
        crawl.authorise(s, actor, config)
        user = require_user(s, actor)
        row = s.get(CrawlSchedule, name)
        if row is not None and not _may_see(s, user, row):
            # Names are shared by everyone; say it is taken, nothing of whose or how often.
            raise Conflict(
                f"the name {name!r} is taken by a crawl schedule; choose another",
                [Detail("name taken", field="name", value=name, accepted="another name")],
            )
        if row is not None and not replace:
            raise Conflict(
                f"a crawl schedule named {name!r} exists (every "
                f"{every_text(row.every_seconds)}, added by {row.created_by}); give "
                "--replace to change it, or another name",
                [Detail("exists", field="name", value=name, accepted="a new name, or --replace")],
            )
        now = utcnow()
        if row is None:
            row = CrawlSchedule(name=name, created_at=now, last_crawl_id=None)
            s.add(row)
        row.every_seconds = int(every.total_seconds())
        row.full = full
        row.config = crawl_jobs.document(config)
        row.origin = config.origin
        row.created_by = user.id
        turn = s.get(Schedule, PREFIX + name)
        if turn is None:
            s.add(Schedule(name=PREFIX + name, next_run_at=now, runs=0))
        elif turn.owner is None:
            turn.next_run_at = min(turn.next_run_at, now + every)
        s.flush()
        return _view(s, row)


def same_as(
    db: Database, *, actor: str | None, name: str, every: timedelta, full: bool
) -> ScheduleView | None:
    """The schedule ``name`` if it is exactly what ``actor`` would add now (their own, this
    interval, this kind of crawl): what a repeated request answers instead of changing it."""
    with db.read() as s:
        user = require_user(s, actor)
        row = s.get(CrawlSchedule, name)
        if row is None or not _may_see(s, user, row):
            return None
        mine = row.created_by == user.id
        if not mine or row.every_seconds != int(every.total_seconds()) or row.full != full:
            return None
        return _view(s, row)


def _visible(s: Session, actor: str | None, name: str) -> CrawlSchedule:
    user = require_user(s, actor)
    row = s.get(CrawlSchedule, name)
    if row is None or not _may_see(s, user, row):
        raise NotFound(
            f"no crawl schedule named {name!r}",
            [
                Detail(
                    "unknown schedule",
                    field="name",
                    value=name,
                    accepted="a name from `steward crawl schedule list`",
                )
            ],
        )
    return row


def list_(db: Database, *, actor: str | None) -> list[ScheduleView]:
    """The schedules the caller may see, by name, with when each runs next."""
    with db.read() as s:
        user = require_user(s, actor)
        rows = s.scalars(select(CrawlSchedule).order_by(CrawlSchedule.name))
        return [_view(s, r) for r in rows if _may_see(s, user, r)]


def remove(db: Database, *, actor: str | None, name: str) -> ScheduleView:
    """Stop a periodic crawl; a crawl it queued already still runs (``jobs cancel`` stops it)."""
    with audited(db, actor=actor, action="crawl-schedule"), db.transaction() as s:
        row = _visible(s, actor, name)
        view = _view(s, row)
        s.delete(row)
        s.execute(delete(Schedule).where(Schedule.name == PREFIX + name))
        return view


def _turn(db: Database, name: str) -> None:
    """One turn of schedule ``name``: queue its crawl, unless a crawl of any of its sources is
    queued or running (its own last one included)."""
    later = f"tried again in {every_text(int(RETRY_BUSY.total_seconds()))}"
    with db.read() as s:
        row = s.get(CrawlSchedule, name)
        if row is None:
            return  # removed since the task map was built
        config = crawl_jobs.config_of(row.config, f"crawl schedule {name}")
        created_by, full = row.created_by, row.full
        names = [src.name for src in config.sources]
        waiting = crawl_jobs.open_crawls(s, names)
    held = crawl_locks.holders(db, names)
    if held:
        waiting.append(crawl_locks.describe(held))
    if waiting:
        raise schedule.NotNow(f"skipped: {'; '.join(waiting)}; {later}", RETRY_BUSY)
    with audited(db, actor=created_by, action="crawl"), db.transaction() as s:
        crawl.authorise(s, created_by, config)
        queued = crawl_jobs.enqueue_in(s, user=created_by, config=config, schedule=name, full=full)
        found = s.get(CrawlSchedule, name)
        if found is not None:
            found.last_crawl_id = queued.crawl_id


def periodic(db: Database) -> dict[str, schedule.Periodic]:
    """Every schedule as the worker's periodic task ``crawl:NAME`` (read on each pass)."""
    with db.read() as s:
        rows = [(r.name, r.every_seconds) for r in s.scalars(select(CrawlSchedule))]

    def task(name: str, seconds: int) -> schedule.Periodic:
        return schedule.Periodic(PREFIX + name, timedelta(seconds=seconds), lambda: _turn(db, name))

    return {PREFIX + name: task(name, seconds) for name, seconds in rows}
