"""``steward jobs``: what the queue holds, how far each job is, and retry/cancel.

Project staff (steward, admin) see and steer their projects' actions; admins all of them.
Anyone else sees none, and an action they name reads "not found" like an unknown id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from steward.db.models import Membership
from steward.db.queue_tables import Action
from steward.db.session import Database
from steward.domain.roles import STAFF
from steward.errors import Detail, NotFound, ValidationFailed
from steward.jobs import outbox, runner
from steward.jobs.effects import JOBS, WITH_PROGRESS
from steward.services.access import audited, require_user


class ProgressInfo(BaseModel):
    bytes_done: int
    bytes_total: int | None
    items_done: int
    items_total: int | None
    owner: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    eta_seconds: float | None


class ActionView(BaseModel):
    id: str
    action: str
    subject_kind: str
    subject_id: str
    project_id: str
    state: str
    attempts: int
    max_attempts: int
    next_try_at: datetime
    last_error: str | None
    outcome: dict[str, Any] | None
    owner: str | None
    lease_until: datetime | None
    idempotency_key: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    cancel_requested_by: str | None
    payload: dict[str, Any]
    progress: ProgressInfo | None = None


def _view(s: Session, row: Action) -> ActionView:
    v = ActionView.model_validate(row, from_attributes=True)
    if row.action in JOBS or row.action in WITH_PROGRESS:
        p = runner.progress_of(s, row.subject_kind, row.subject_id)
        if p is not None:
            v.progress = ProgressInfo.model_validate(p, from_attributes=True)
    return v


def _scope(s: Session, actor: str | None) -> Select[str] | None:
    """The projects whose actions the caller may see (None: all, for admins)."""
    user = require_user(s, actor)
    if user.is_admin:
        return None
    return select(Membership.project_id).where(
        Membership.user_id == user.id, Membership.role.in_(sorted(STAFF))
    )


def _projects_of(row: Action) -> set[str]:
    """Every project an action touches: its own, and those its sources name (a crawl feeds
    the projects of all its sources, and is filed under the first)."""
    sources = row.payload.get("config", {}).get("sources", []) if row.payload else []
    return {row.project_id, *(str(src["project"]) for src in sources if src.get("project"))}


def _whole(s: Session, scope: Select[str] | None, rows: Iterable[Action]) -> list[Action]:
    """The rows whose every project is in ``scope``: a steward of one project a crawl feeds
    does not see (or cancel, or retry) a crawl of another's sources."""
    if scope is None:
        return list(rows)
    mine = set(s.scalars(scope))
    return [r for r in rows if _projects_of(r) <= mine]


def _visible(s: Session, actor: str | None, action_id: str) -> Action:
    scope = _scope(s, actor)
    q = select(Action).where(Action.id == action_id)
    if scope is not None:
        q = q.where(Action.project_id.in_(scope))
    row = next(iter(_whole(s, scope, s.scalars(q))), None)
    if row is None:
        raise NotFound(
            f"no action {action_id!r}",
            [Detail("unknown action", field="action", value=action_id, accepted="act_…")],
        )
    return row


def list_actions(
    db: Database,
    *,
    actor: str | None,
    states: Sequence[str] = (),
    subject: str | None = None,
    limit: int | None = None,
) -> list[ActionView]:
    bad = [st for st in states if st not in outbox.STATES]
    if bad:
        raise ValidationFailed(
            "the filters are not valid",
            [
                Detail("unknown state", field="state", value=b, accepted=", ".join(outbox.STATES))
                for b in bad
            ],
        )
    with db.read() as s:
        q = select(Action)
        scope = _scope(s, actor)
        if scope is not None:
            q = q.where(Action.project_id.in_(scope))
        if states:
            q = q.where(Action.state.in_(list(states)))
        if subject:
            q = q.where(Action.subject_id == subject)
        q = q.order_by(Action.created_at.desc(), Action.id.desc())
        if limit:
            q = q.limit(limit)
        return [_view(s, r) for r in _whole(s, scope, s.scalars(q))]


def get(db: Database, *, actor: str | None, action_id: str) -> ActionView:
    with db.read() as s:
        return _view(s, _visible(s, actor, action_id))


def retry(db: Database, *, actor: str | None, action_id: str) -> ActionView:
    """Queue a failed or cancelled action again; its job continues what was done."""
    with (
        audited(db, actor=actor, action="retry", subject_kind="action", subject_id=action_id),
        db.transaction() as s,
    ):
        row = _visible(s, actor, action_id)
        outbox.retry(s, row, require_user(s, actor).id)
        if row.action in JOBS:
            row.payload = {**row.payload, "again": True}  # the subject may be failed: continue
        s.flush()
        return _view(s, row)


def cancel(db: Database, *, actor: str | None, action_id: str) -> ActionView:
    """Cancel a pending action, or ask a running one's job to stop (it records why)."""
    with (
        audited(db, actor=actor, action="cancel", subject_kind="action", subject_id=action_id),
        db.transaction() as s,
    ):
        row = _visible(s, actor, action_id)
        user = require_user(s, actor)
        job = JOBS.get(row.action)
        subject = s.get(job.model, row.subject_id) if job is not None else None
        if job is not None and subject is not None and row.state in outbox.OPEN:
            ctx = job.context(s, user.id, subject)
            if row.state == "running":
                runner.request_cancel(s, job, subject, ctx)  # the job records why it stopped
            else:
                # Not started: the subject says so now, instead of waiting for a job that
                # will not come (asking again then queues a new one).
                runner.fail_in(s, job, subject, ctx, f"cancelled by {user.id}")
        outbox.cancel(s, row, user.id)
        s.flush()
        return _view(s, row)
