"""Access-request use cases: create, act, read, list, expire — each one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from steward.db.models import AccessRequest, AccessRequirement, Event, Folder, Membership, User
from steward.db.session import Database
from steward.domain import requests as domain
from steward.domain.roles import STAFF, Role
from steward.domain.workflow import Context
from steward.errors import Conflict, Detail, Forbidden, ValidationFailed
from steward.ids import new_id
from steward.services import ledger
from steward.services.access import (
    audited,
    load_visible,
    require_member,
    require_user,
    require_visible_project,
    roles_in,
)
from steward.services.timeline import TimelineEntry, check_filter, history, within
from steward.timeutil import require_aware, utcnow

KIND = ledger.Kind(domain.WORKFLOW, AccessRequest, domain.project)


class RequestView(BaseModel):
    id: str
    project_id: str
    external_id: str | None
    title: str
    requester: str
    institution: str
    project_lead: str
    intended_use: str
    datasets: list[str]
    duo_codes: list[str]
    reviewer: str | None
    state: str
    version: int
    created_at: datetime
    updated_at: datetime
    state_since: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    expires_at: datetime | None
    ticket_key: str | None


class RequestDetail(BaseModel):
    request: RequestView
    timeline: list[TimelineEntry]
    time_in_state: dict[str, float]
    current_state_for: float | None
    available_actions: list[str]


@dataclass(frozen=True)
class RequestFilter:
    """Every filter combines with every other (AND)."""

    project: str | None = None
    states: Sequence[str] = ()
    requester: str | None = None
    reviewer: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    decided_from: datetime | None = None
    decided_to: datetime | None = None
    limit: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValidationFailed(
                f"--limit {self.limit} is negative",
                [
                    Detail(
                        "negative", field="limit", value=str(self.limit), accepted="0 (all) or more"
                    )
                ],
            )
        check_filter(
            domain.WORKFLOW,
            self.states,
            {
                "created": (self.created_from, self.created_to),
                "decided": (self.decided_from, self.decided_to),
            },
        )


def _view(row: AccessRequest) -> RequestView:
    return RequestView.model_validate(row, from_attributes=True)


def _context(
    session: Session,
    actor: str | None,
    project_id: str,
    row: AccessRequest | None = None,
    data: Mapping[str, Any] | None = None,
) -> Context:
    user = require_user(session, actor)
    roles = require_member(session, user, project_id)
    subject = {"requester": row.requester, "reviewer": row.reviewer} if row else {}
    return Context(actor=user.id, roles=roles, subject=subject, data=dict(data or {}))


def _load_visible(
    session: Session, actor: str | None, request_id: str
) -> tuple[AccessRequest, Context]:
    """The request and the caller's context, if the caller may see it; else "not found"."""

    def hidden(user: User, roles: frozenset[str], row: AccessRequest) -> str | None:
        why = domain.GUARDS["can_see"](_subject_context(user, roles, row))
        return None if why is None else f"{user.id} may not see {row.id}: {why}"

    row, user, roles = load_visible(
        session, actor, AccessRequest, request_id, what="access request", field="request",
        hidden=hidden,
    )  # fmt: skip
    return row, _subject_context(user, roles, row)


def _subject_context(user: User, roles: frozenset[str], row: AccessRequest) -> Context:
    return Context(
        actor=user.id, roles=roles, subject={"requester": row.requester, "reviewer": row.reviewer}
    )


def catalog_names(session: Session, project_id: str) -> set[str]:
    names = set(
        session.scalars(
            select(AccessRequirement.name).where(AccessRequirement.project_id == project_id)
        )
    )
    names |= set(session.scalars(select(Folder.path).where(Folder.project_id == project_id)))
    return names


def _check_fields(
    session: Session, project_id: str, fields: domain.RequestFields
) -> domain.RequestFields:
    clean, problems = domain.check_fields(fields)
    known = catalog_names(session, project_id)
    problems += [
        Detail(
            "not a dataset, folder or access requirement of this project",
            field="datasets",
            value=d,
            accepted="see `steward tree " + project_id + "`",
        )
        for d in clean.datasets
        if d not in known
    ]
    if problems:
        raise ValidationFailed("the request is not valid", problems)
    return clean


def create(
    db: Database,
    *,
    actor: str | None,
    project: str,
    fields: domain.RequestFields,
    requester: str | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
    submit: bool = False,
) -> RequestView:
    """A new draft; with ``submit`` also submitted, in the same transaction, so a request that
    is not complete enough to submit leaves no draft behind (re-running it adds none)."""
    require_aware(at=at)
    with (
        audited(db, actor=actor, action="create", project_id=project, subject_kind=domain.KIND),
        db.transaction() as s,
    ):
        ctx = _context(s, actor, project)
        owner = requester or ctx.actor
        if owner != ctx.actor and not ctx.roles & STAFF:
            raise Forbidden(
                f"{ctx.actor} may not file a request on behalf of {owner}",
                [Detail("staff only", field="requester", value=owner)],
            )
        owner_user = _existing_user(s, owner, "requester")
        if owner != ctx.actor and Role.REQUESTER.value not in roles_in(s, owner_user, project):
            raise ValidationFailed(
                f"{owner} is not a requester in {project}",
                [Detail("not a requester", field="requester", value=owner)],
            )
        clean = _check_fields(s, project, fields)
        data = {
            "title": clean.title,
            "requester": owner,
            "institution": clean.institution,
            "project_lead": clean.project_lead,
            "intended_use": clean.intended_use,
            "datasets": list(clean.datasets),
            "duo_codes": list(clean.duo_codes),
        }
        row = AccessRequest(id=new_id(domain.KIND), project_id=project, version=1)
        done, first = ledger.record_create(
            s, kind=KIND, row=row, ctx=ctx, data=data, at=at, idempotency_key=idempotency_key
        )
        assert isinstance(done, AccessRequest)
        if first.actor != ctx.actor or done.project_id != project:
            # Someone else's key: answering with their request would show it to a stranger.
            raise Conflict(
                "this idempotency key was already used for a different command",
                [Detail("reused key", field="idempotency_key", value=idempotency_key)],
            )
        if not submit:
            return _view(done)
        return _apply(
            s,
            done,
            _context(s, actor, project, done),
            "submit",
            idempotency_key=f"{idempotency_key}:submit" if idempotency_key else None,
            at=at,
        )


def act(
    db: Database,
    *,
    actor: str | None,
    request_id: str,
    command: str,
    reason: str | None = None,
    reviewer: str | None = None,
    expires_at: datetime | None = None,
    text: str | None = None,
    changes: domain.RequestFields | None = None,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> RequestView:
    """Issue one workflow command; the event records the reason and any extra data."""
    require_aware(at=at, expires_at=expires_at)
    project_id: str | None = None
    with db.transaction() as s:
        project_id = s.scalar(
            select(AccessRequest.project_id).where(AccessRequest.id == request_id)
        )
    with (
        audited(
            db,
            actor=actor,
            action=command,
            project_id=project_id,
            subject_kind=domain.KIND,
            subject_id=request_id,
        ),
        db.transaction() as s,
    ):
        row, ctx = _load_visible(s, actor, request_id)
        return _apply(
            s,
            row,
            ctx,
            command,
            reason=reason,
            reviewer=reviewer,
            expires_at=expires_at,
            text=text,
            changes=changes,
            idempotency_key=idempotency_key,
            expected_version=expected_version,
            at=at,
        )


def _apply(
    s: Session,
    row: AccessRequest,
    ctx: Context,
    command: str,
    *,
    reason: str | None = None,
    reviewer: str | None = None,
    expires_at: datetime | None = None,
    text: str | None = None,
    changes: domain.RequestFields | None = None,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> RequestView:
    """One command on a loaded, visible request, inside the caller's transaction."""
    prior = ledger.replayed(
        s, kind=KIND, subject_id=row.id, command=command, idempotency_key=idempotency_key
    )
    if prior is not None:
        return _view_at(s, row, prior)
    # A stale caller hears "changed since you looked" before any verdict on the new state.
    ledger.check_version(row, expected_version)
    decision = domain.WORKFLOW.decide(command, row.state, ctx)
    data: dict[str, Any] = {}
    if reason:
        data["reason"] = reason.strip()
    if command in domain.REASON_REQUIRED and not data.get("reason"):
        raise ValidationFailed(
            f"{command} needs a reason the requester can read",
            [Detail("required", field="reason")],
        )
    if command in ("submit", "resubmit"):
        missing = domain.check_ready_to_submit(
            {n: getattr(row, n) for n in domain.REQUIRED_TO_SUBMIT}
        )
        if missing:
            raise ValidationFailed(f"{row.id} is not complete enough to {command}", missing)
    if command == "approve" and expires_at is not None:
        if expires_at <= (at or utcnow()):
            raise ValidationFailed(
                "the expiry must be in the future",
                [Detail("in the past", field="expires_at", value=expires_at.isoformat())],
            )
        data["expires_at"] = expires_at.isoformat()
    if command == "assign-reviewer":
        data["reviewer"] = _check_reviewer(s, row, reviewer)
    if command == "comment":
        if not (text or "").strip():
            raise ValidationFailed("a comment needs text", [Detail("required", field="text")])
        data["text"] = (text or "").strip()
    if command == "edit":
        data.update(_edit_changes(s, row, changes))
    ledger.record(
        s,
        kind=KIND,
        row=row,
        command=command,
        ctx=ctx,
        data=data,
        at=at,
        idempotency_key=idempotency_key,
        expected_version=expected_version,
        decision=decision,
    )
    s.refresh(row)
    return _view(row)


def _view_at(s: Session, row: AccessRequest, prior: Event) -> RequestView:
    """The request as a repeated command's first send left it: the first result, unchanged."""
    if prior.seq == row.version:
        return _view(row)
    values = _view(row).model_dump()
    derived = ("reviewer", "submitted_at", "decided_at", "decided_by", "decision_reason")
    values.update(dict.fromkeys((*derived, "expires_at")))
    history = s.scalars(
        select(Event)
        .where(
            Event.subject_kind == domain.KIND,
            Event.subject_id == row.id,
            Event.seq <= prior.seq,
        )
        .order_by(Event.seq)
    )
    for e in history:
        values.update(domain.project(e.type, e.at, e.actor, e.data, values))
        if e.from_state != e.to_state:
            values["state_since"] = e.at
    values.update(state=prior.to_state, version=prior.seq, updated_at=prior.at)
    return RequestView.model_validate(values)


def _existing_user(s: Session, user_id: str, field: str) -> User:
    """A user named in the input (not the caller): unknown → a field error, not 'who are you'."""
    user = s.get(User, user_id)
    if user is None:
        raise ValidationFailed(
            f"no user {user_id!r}",
            [Detail("unknown user", field=field, value=user_id, accepted="existing users")],
        )
    return user


def _check_reviewer(s: Session, row: AccessRequest, reviewer: str | None) -> str:
    if not reviewer:
        raise ValidationFailed("name the reviewer", [Detail("required", field="reviewer")])
    user = _existing_user(s, reviewer, "reviewer")
    if reviewer == row.requester:
        raise ValidationFailed(
            "the requester cannot review their own request",
            [Detail("is the requester", field="reviewer", value=reviewer)],
        )
    if not roles_in(s, user, row.project_id) & {Role.REVIEWER.value, *STAFF}:
        raise ValidationFailed(
            f"{reviewer} is not a reviewer in {row.project_id}",
            [
                Detail(
                    "not a reviewer",
                    field="reviewer",
                    value=reviewer,
                    accepted="members with the reviewer role",
                )
            ],
        )
    return reviewer


def _edit_changes(
    s: Session, row: AccessRequest, changes: domain.RequestFields | None
) -> dict[str, Any]:
    if changes is None:
        raise ValidationFailed("nothing to change", [Detail("no fields given")])
    # An edit names only the fields it changes; an absent title keeps the current one.
    clean = _check_fields(s, row.project_id, replace(changes, title=changes.title or row.title))
    out: dict[str, Any] = {}
    for name in domain.EDITABLE_FIELDS:
        new = getattr(clean, name)
        new = list(new) if isinstance(new, tuple) else new
        if new and new != getattr(row, name):
            out[name] = new
    if not out:
        raise ValidationFailed("the edit changes nothing", [Detail("same values")])
    return out


def get(
    db: Database, *, actor: str | None, request_id: str, now: datetime | None = None
) -> RequestDetail:
    now = now or utcnow()
    with (
        audited(db, actor=actor, action="show", subject_kind=domain.KIND, subject_id=request_id),
        db.read() as s,
    ):
        row, ctx = _load_visible(s, actor, request_id)
        h = history(s, workflow=domain.WORKFLOW, row=row, now=now)
        return RequestDetail(
            request=_view(row),
            timeline=h.timeline,
            time_in_state=h.time_in_state,
            current_state_for=h.current_state_for,
            available_actions=domain.WORKFLOW.available(row.state, ctx),
        )


def visible_query(s: Session, actor: str | None, flt: RequestFilter) -> Select[AccessRequest]:
    """Requests ``actor`` may see that match ``flt``; shared by list and the reports."""
    flt.validate()
    user = require_user(s, actor)
    q = select(AccessRequest)
    if not user.is_admin:
        memberships = s.execute(
            select(Membership.project_id, Membership.role).where(Membership.user_id == user.id)
        ).all()
        see_all = {p for p, r in memberships if r != Role.REQUESTER.value}
        own_only = {p for p, r in memberships} - see_all
        q = q.where(
            (AccessRequest.project_id.in_(see_all))
            | (AccessRequest.project_id.in_(own_only) & (AccessRequest.requester == user.id))
        )
    if flt.project:
        require_visible_project(s, user, flt.project)
        q = q.where(AccessRequest.project_id == flt.project)
    if flt.states:
        q = q.where(AccessRequest.state.in_(list(flt.states)))
    if flt.requester:
        q = q.where(AccessRequest.requester == flt.requester)
    if flt.reviewer:
        q = q.where(AccessRequest.reviewer == flt.reviewer)
    q = q.where(*within(AccessRequest.created_at, flt.created_from, flt.created_to))
    q = q.where(*within(AccessRequest.decided_at, flt.decided_from, flt.decided_to))
    return q


def list_requests(db: Database, *, actor: str | None, flt: RequestFilter) -> list[RequestView]:
    with db.read() as s:
        q = visible_query(s, actor, flt).order_by(AccessRequest.created_at, AccessRequest.id)
        if flt.limit:
            q = q.limit(flt.limit)
        return [_view(r) for r in s.scalars(q)]


def expire_due(db: Database, *, actor: str | None, now: datetime | None = None) -> list[str]:
    """Expire approved requests whose expiry has passed (run on a schedule; safe to repeat)."""
    now = now or utcnow()
    with (
        audited(db, actor=actor, action="expire", subject_kind=domain.KIND),
        db.transaction() as s,
    ):
        user = require_user(s, actor)
        q = select(AccessRequest.id).where(
            AccessRequest.state == "approved", AccessRequest.expires_at <= now
        )
        if not user.is_admin:
            # Only the projects the caller coordinates: one project's steward running the job
            # must neither fail on nor touch another project's requests.
            staff_of = set(
                s.scalars(
                    select(Membership.project_id).where(
                        Membership.user_id == user.id, Membership.role.in_(sorted(STAFF))
                    )
                )
            )
            if not staff_of:
                raise Forbidden(
                    f"{user.id} may not expire requests: that needs the steward or admin role",
                    [Detail("needs steward or admin", field="role")],
                )
            q = q.where(AccessRequest.project_id.in_(sorted(staff_of)))
        due = list(s.scalars(q.order_by(AccessRequest.expires_at, AccessRequest.id)))
    done = []
    for rid in due:
        act(
            db,
            actor=actor,
            request_id=rid,
            command="expire",
            reason="the approval's expiry date passed",
            idempotency_key=f"expire:{rid}",
        )
        done.append(rid)
    return done
