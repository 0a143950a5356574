"""Reading the audit log: refusals and security-relevant changes, newest first.

Administrators read every entry. A project's stewards read the entries of their projects
(entries without a project — tokens, sites — are for administrators). Anyone else is refused,
and the refusal is itself an entry. Pages are cut by a keyset cursor on the entry's id (ids
only grow): entries written while someone pages neither repeat nor push others off a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.db.models import AuditEntry, Membership
from steward.db.session import Database
from steward.domain.roles import Role
from steward.errors import Detail, Forbidden, ValidationFailed
from steward.services.access import audited, require_project, require_user, require_visible_project

OUTCOMES = ("done", "denied")
MAX_PAGE = 500
_CURSOR_PREFIX = "a"


class AuditView(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    outcome: str
    project: str | None
    subject_kind: str | None
    subject_id: str | None
    reason: str


@dataclass(frozen=True)
class AuditPage:
    """One page, newest first, and the cursor of the next (``None`` on the last)."""

    items: list[AuditView]
    next: str | None


def _view(row: AuditEntry) -> AuditView:
    return AuditView(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        project=row.project_id,
        subject_kind=row.subject_kind,
        subject_id=row.subject_id,
        reason=row.reason,
    )


def _cursor(entry_id: int) -> str:
    return f"{_CURSOR_PREFIX}{entry_id}"


def _uncursor(text: str) -> int:
    digits = text.removeprefix(_CURSOR_PREFIX)
    ours = text.startswith(_CURSOR_PREFIX) and digits.isascii() and digits.isdigit()
    if not ours or len(digits) > 18:
        raise ValidationFailed(
            "the cursor is not one this list gave out",
            [Detail("unknown cursor", field="after", value=text[:80])],
        )
    return int(digits)


def _utc(value: datetime | None, name: str, problems: list[Detail]) -> datetime | None:
    """A bound as UTC: one without a zone, or beyond what UTC can hold, is a problem."""
    if value is None:
        return None
    if value.tzinfo is None:
        problems.append(
            Detail("no time zone", field=name, value=value.isoformat(), accepted="a time zone")
        )
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        problems.append(
            Detail("out of range", field=name, value=value.isoformat(), accepted="years 1-9999")
        )
        return None


def _check(
    outcome: str | None, since: datetime | None, until: datetime | None, limit: int
) -> tuple[datetime | None, datetime | None]:
    """Every problem with the filters at once, before anything is read; the bounds in UTC."""
    problems: list[Detail] = []
    if outcome is not None and outcome not in OUTCOMES:
        problems.append(
            Detail("unknown outcome", field="outcome", value=outcome, accepted=", ".join(OUTCOMES))
        )
    start, end = _utc(since, "since", problems), _utc(until, "until", problems)
    if start is not None and end is not None and end <= start:
        problems.append(
            Detail(
                "not after since",
                field="until",
                value=end.isoformat(),
                accepted=f"later than since ({start.isoformat()})",
            )
        )
    if not 1 <= limit <= MAX_PAGE:
        problems.append(
            Detail("out of range", field="limit", value=str(limit), accepted=f"1 to {MAX_PAGE}")
        )
    if problems:
        raise ValidationFailed("the audit log cannot be read with these filters", problems)
    return start, end


def _stewarded(s: Session, user_id: str) -> list[str]:
    return list(
        s.scalars(
            select(Membership.project_id).where(
                Membership.user_id == user_id, Membership.role == Role.STEWARD.value
            )
        )
    )


def query(
    db: Database,
    *,
    actor: str | None,
    who: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    subject_kind: str | None = None,
    subject_id: str | None = None,
    project: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    after: str | None = None,
) -> AuditPage:
    """The entries the caller may read matching every filter given, newest first: at most
    ``limit``, after the ``after`` cursor. ``since`` is inclusive, ``until`` exclusive."""
    since, until = _check(outcome, since, until, limit)
    last = _uncursor(after) if after is not None else None
    shown = project[:64] if project is not None else None
    with audited(db, actor=actor, action="audit-read", project_id=shown), db.read() as s:
        me = require_user(s, actor)
        q = select(AuditEntry)
        if me.is_admin:
            if project is not None:
                require_project(s, project)
        else:
            mine = _stewarded(s, me.id)
            if project is not None:
                require_visible_project(s, me, project)
                if project not in mine:
                    raise Forbidden(
                        f"{me.id} may not read the audit log of {project}: only its stewards "
                        "and administrators may",
                        [Detail("needs steward or admin", field="project", value=project)],
                    )
            elif not mine:
                raise Forbidden(
                    f"{me.id} may not read the audit log: only administrators and the stewards "
                    "of a project may",
                    [Detail("needs steward or admin", field="user", value=me.id)],
                )
            q = q.where(AuditEntry.project_id.in_(mine))
        conditions = (
            (AuditEntry.actor, who),
            (AuditEntry.action, action),
            (AuditEntry.outcome, outcome),
            (AuditEntry.subject_kind, subject_kind),
            (AuditEntry.subject_id, subject_id),
            (AuditEntry.project_id, project),
        )
        for column, value in conditions:
            if value is not None:
                q = q.where(column == value)
        if since is not None:
            q = q.where(AuditEntry.at >= since)
        if until is not None:
            q = q.where(AuditEntry.at < until)
        if last is not None:
            q = q.where(AuditEntry.id < last)
        rows = list(s.scalars(q.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    return AuditPage([_view(r) for r in rows], _cursor(rows[-1].id) if more else None)
