"""Past crawls (``steward crawl list``/``show``) and whether each source answers now
(``steward crawl sources``).

A crawl's summary names datasets and places of every project its sources feed, so it is shown
to administrators, and to stewards of every one of those projects (and to whoever started it).
A queued or running crawl also shows its job: the outbox action that runs it (why it waits,
its tries) and how far it is (:mod:`.crawl_progress`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.crawl.config import CrawlConfig
from steward.crawl.reach import reachable
from steward.db.models import Crawl, Membership, User
from steward.db.queue_tables import Action
from steward.db.session import Database
from steward.domain.roles import STAFF
from steward.errors import Detail, Forbidden
from steward.jobs import runner
from steward.services import crawl
from steward.services.access import audited, not_found, require_user
from steward.services.crawl_progress import KIND
from steward.services.crawl_summary import CrawlSummary

LIVE = ("queued", "running")
"""Statuses of a crawl that has not ended."""


class CrawlRow(BaseModel):
    id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    started_by: str
    datasets: int
    events: int
    new: int
    state_changes: int
    missing: int
    failed_sources: int
    schedule: str | None = None
    """The crawl schedule that queued it (``steward crawl schedule list``)."""
    progress: str | None = None
    """A queued or running crawl: how far it is, or why it waits."""


class CrawlJob(BaseModel):
    """A queued or running crawl's job: its action, why it waits, how far it is."""

    action_id: str | None
    action_state: str | None
    attempts: int | None
    next_try_at: datetime | None
    last_error: str | None
    """Why its last try did not run (another crawl held its sources…)."""
    schedule: str | None
    phase: str | None
    """``listing`` (a source), ``committed`` (datasets written so far), ``done``."""
    source: str | None
    done: int | None
    total: int | None
    updated_at: datetime | None
    eta_seconds: float | None

    def describe(self) -> str:
        """One line: "writing: 1,500 of 5,000 datasets", "waiting for a worker"…"""
        if self.phase == "listing":
            return f"listing {self.source}: {self.done or 0:,} datasets"
        if self.phase == "committed":
            return f"writing: {self.done or 0:,} of {self.total or 0:,} datasets"
        if self.action_state == "pending" and self.last_error:
            return "waiting: " + self.last_error.splitlines()[0]
        if self.action_state == "pending":
            return "waiting for a worker (`steward worker`)"
        return "starting"


class CrawlDetail(BaseModel):
    summary: CrawlSummary
    job: CrawlJob | None = None


class SourceCheck(BaseModel):
    name: str
    project: str
    stage: str
    url: str
    """Without credentials (masked)."""
    status: str
    reachable: bool
    message: str


def _staff_of(s: Session, user: User) -> frozenset[str] | None:
    """The projects ``user`` coordinates; ``None``: all (an administrator)."""
    if user.is_admin:
        return None
    return frozenset(
        s.scalars(
            select(Membership.project_id).where(
                Membership.user_id == user.id, Membership.role.in_(sorted(STAFF))
            )
        )
    )


def _visible(row: Crawl, user: User, staff_of: frozenset[str] | None) -> bool:
    if staff_of is None or row.started_by == user.id:
        return True
    projects = {src.get("project") for src in row.summary.get("sources", [])}
    return bool(projects) and projects <= staff_of


def _summary(row: Crawl) -> CrawlSummary:
    """The stored summary, or what the row knows of a crawl that never wrote one."""
    stored = {k: v for k, v in row.summary.items() if k in CrawlSummary.model_fields}
    return CrawlSummary.model_validate(
        {
            **stored,
            "id": row.id,
            "status": row.status,
            "started_at": row.started_at,
            "finished_at": row.finished_at,
            "started_by": row.started_by,
        }
    )


def _job(s: Session, row: Crawl) -> CrawlJob | None:
    """The job of a crawl that has not ended (``None`` for one run in a CLI's process that
    wrote no progress yet, and for every ended crawl)."""
    if row.status not in LIVE:
        return None
    action_id = row.summary.get("action_id")
    action = s.get(Action, action_id) if action_id else None
    step = row.summary.get("progress") if row.status == "running" else None
    p = runner.progress_of(s, KIND, row.id) if row.status == "running" else None
    if action is None and step is None:
        return None
    return CrawlJob(
        action_id=action_id,
        action_state=action.state if action is not None else None,
        attempts=action.attempts if action is not None else None,
        next_try_at=action.next_try_at if action is not None else None,
        last_error=action.last_error if action is not None else None,
        schedule=row.summary.get("schedule"),
        phase=step.get("phase") if step else None,
        source=step.get("source") if step else None,
        done=step.get("done") if step else None,
        total=step.get("total") if step else None,
        updated_at=p.updated_at if p is not None else None,
        eta_seconds=p.eta_seconds if p is not None else None,
    )


def list_crawls(db: Database, *, actor: str | None, limit: int = 20) -> list[CrawlRow]:
    """The latest crawls the caller may see, newest first."""
    with db.read() as s:
        user = require_user(s, actor)
        staff_of = _staff_of(s, user)
        if staff_of is not None and not staff_of:
            raise Forbidden(
                f"{user.id} coordinates no project: crawls are shown to stewards and admins",
                [Detail("needs steward or admin", field="role")],
            )
        rows = s.scalars(select(Crawl).order_by(Crawl.started_at.desc(), Crawl.id.desc()))
        out: list[CrawlRow] = []
        for row in rows:
            if not _visible(row, user, staff_of):
                continue
            summary = _summary(row)
            counts = summary.counts
            out.append(
                CrawlRow(
                    id=row.id,
                    status=row.status,
                    started_at=row.started_at,
                    finished_at=row.finished_at,
                    started_by=row.started_by,
                    datasets=summary.datasets,
                    events=summary.events,
                    new=counts["new"].count,
                    state_changes=counts["state_changes"].count,
                    missing=counts["missing"].count,
                    failed_sources=counts["failed_sources"].count,
                    schedule=row.summary.get("schedule"),
                    progress=job.describe() if (job := _job(s, row)) is not None else None,
                )
            )
            if limit and len(out) >= limit:
                break
        return out


def show_crawl(db: Database, *, actor: str | None, crawl_id: str) -> CrawlDetail:
    """One crawl's summary, and for one that has not ended, its job."""
    with db.read() as s:
        user = require_user(s, actor)
        row = s.get(Crawl, crawl_id)
        if row is None or not _visible(row, user, _staff_of(s, user)):
            raise not_found("crawl", "crawl", crawl_id)
        return CrawlDetail(summary=_summary(row), job=_job(s, row))


def check_configured(
    db: Database,
    *,
    actor: str | None,
    config: CrawlConfig,
    environ: Mapping[str, str] | None = None,
) -> list[SourceCheck]:
    """:func:`check_sources` for a caller of the API: the server's sources name its places
    and projects, so only someone who may crawl them all (a steward of each project, an
    administrator) hears whether they answer, as ``steward crawl`` would let them crawl."""
    with audited(db, actor=actor, action="crawl-sources"), db.read() as s:
        crawl.authorise(s, actor, config)
    return check_sources(config, environ=environ)


def check_sources(
    config: CrawlConfig, *, environ: Mapping[str, str] | None = None, timeout: float = 10.0
) -> list[SourceCheck]:
    """Whether each source can be listed now, and if not, what to do about it."""
    out = []
    for src in config.sources:
        reach = reachable(src, environ=environ, timeout=timeout)
        out.append(
            SourceCheck(
                name=src.name,
                project=src.project,
                stage=src.stage,
                url=src.display_url,
                status=str(reach.status),
                reachable=reach.ok,
                message=reach.message,
            )
        )
    return out
