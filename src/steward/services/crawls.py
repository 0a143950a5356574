"""Past crawls (``steward crawl list``/``show``) and whether each source answers now
(``steward crawl sources``).

A crawl's summary names datasets and places of every project its sources feed, so it is shown
to administrators, and to stewards of every one of those projects (and to whoever started it).
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
from steward.db.session import Database
from steward.domain.roles import STAFF
from steward.errors import Detail, Forbidden
from steward.services.access import not_found, require_user
from steward.services.crawl_summary import CrawlSummary


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
                )
            )
            if limit and len(out) >= limit:
                break
        return out


def show_crawl(db: Database, *, actor: str | None, crawl_id: str) -> CrawlSummary:
    with db.read() as s:
        user = require_user(s, actor)
        row = s.get(Crawl, crawl_id)
        if row is None or not _visible(row, user, _staff_of(s, user)):
            raise not_found("crawl", "crawl", crawl_id)
        return _summary(row)


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
