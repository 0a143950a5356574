"""Access-request use cases: create, act, read, list, expire — each one transaction."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from steward.db.models import AccessRequest, AccessRequirement, Event, Folder, User
from steward.db.session import Database
from steward.domain import requests as domain
from steward.domain.roles import ALL_ROLES, STAFF, Role
from steward.domain.workflow import Context
from steward.errors import Conflict, Detail, Forbidden, ValidationFailed
from steward.ids import new_id
from steward.services import ledger, subjects
from steward.services.access import (
    audited,
    require_member,
    require_user,
    roles_in,
)
from steward.services.kinds import (
    COMMENT,
    NEEDS_REASON,
    REASON,
    Command,
    Filter,
    FilterSpec,
    Kind,
    OptionalReason,
    Policy,
    Step,
    reason_data,
    register,
)
from steward.services.timeline import TimelineEntry
from steward.timeutil import require_aware, utcnow


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


def _view(row: AccessRequest) -> RequestView:
    return RequestView.model_validate(row, from_attributes=True)


def _creator(session: Session, actor: str | None, project_id: str) -> Context:
    user = require_user(session, actor)
    return Context(actor=user.id, roles=require_member(session, user, project_id))


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
        ctx = _creator(s, actor, project)
        owner = requester or ctx.actor
        refusal = domain.filing_refusal(
            ctx.actor,
            owner,
            ctx.roles,
            lambda: roles_in(s, _existing_user(s, owner, "requester"), project),
            project=project,
        )
        if refusal is not None and refusal.rule == "staff only":
            raise Forbidden(refusal.message, [Detail("staff only", field="requester", value=owner)])
        if refusal is not None:
            raise ValidationFailed(
                refusal.message, [Detail("not a requester", field="requester", value=owner)]
            )
        _existing_user(s, owner, "requester")
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
            s, kind=REQUEST, row=row, ctx=ctx, data=data, at=at, idempotency_key=idempotency_key
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
        event = subjects.apply(
            s,
            REQUEST,
            done,
            subjects.context(REQUEST, ctx.actor, ctx.roles, done),
            "submit",
            idempotency_key=f"{idempotency_key}:submit" if idempotency_key else None,
            at=at,
        )
        s.refresh(done)
        return _view_at(s, done, event)


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
    """Issue one workflow command (the generic ``subjects.act``, with typed arguments).

    Arguments the command does not take are ignored, as the CLI sends what it was given."""
    require_aware(at=at, expires_at=expires_at)
    given: dict[str, Any] = {
        "reason": reason,
        "reviewer": reviewer,
        "expires_at": expires_at,
        "text": text,
    }
    if changes is not None:
        given.update(asdict(changes))
    spec = REQUEST.commands.get(command)
    fields = spec.payload.model_fields if spec else {}
    payload = {k: v for k, v in given.items() if k in fields and v is not None}
    if command == "edit" and changes is None:
        payload = {}
    view: RequestView = subjects.act(
        db,
        REQUEST,
        actor=actor,
        subject_id=request_id,
        command=command,
        payload=payload,
        idempotency_key=idempotency_key,
        expected_version=expected_version,
        at=at,
    )
    return view


# ---- commands: typed payloads and the handlers that turn them into event data --------------
class SubmitPayload(OptionalReason):
    pass


class ApprovePayload(OptionalReason):
    expires_at: datetime | None = None


class ReviewerPayload(OptionalReason):
    reviewer: str | None = None


class EditPayload(OptionalReason):
    title: str | None = None
    institution: str | None = None
    project_lead: str | None = None
    intended_use: str | None = None
    datasets: tuple[str, ...] | None = None
    duo_codes: tuple[str, ...] | None = None


def _submit(step: Step, payload: SubmitPayload) -> dict[str, Any]:
    row = step.row
    missing = domain.check_ready_to_submit({n: getattr(row, n) for n in domain.REQUIRED_TO_SUBMIT})
    if missing:
        raise ValidationFailed(f"{row.id} is not complete enough to {step.command}", missing)
    return reason_data(step, payload)


def _approve(step: Step, payload: ApprovePayload) -> dict[str, Any]:
    data = reason_data(step, payload)
    if payload.expires_at is not None:
        if payload.expires_at <= (step.at or utcnow()):
            raise ValidationFailed(
                "the expiry must be in the future",
                [Detail("in the past", field="expires_at", value=payload.expires_at.isoformat())],
            )
        data["expires_at"] = payload.expires_at.isoformat()
    return data


def _assign(step: Step, payload: ReviewerPayload) -> dict[str, Any]:
    return {
        **reason_data(step, payload),
        "reviewer": _check_reviewer(step.session, step.row, payload.reviewer),
    }


def _edit(step: Step, payload: EditPayload) -> dict[str, Any]:
    named = payload.model_dump(exclude={"reason"}, exclude_none=True)
    if not named:
        raise ValidationFailed("nothing to change", [Detail("no fields given")])
    changes = domain.RequestFields(**{"title": "", **named})
    return {**reason_data(step, payload), **_edit_changes(step.session, step.row, changes)}


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
    found = subjects.get(db, REQUEST, actor=actor, subject_id=request_id, now=now)
    return RequestDetail(
        request=_view(found.row),
        timeline=found.history.timeline,
        time_in_state=found.history.time_in_state,
        current_state_for=found.history.current_state_for,
        available_actions=found.allowed_actions,
    )


def visible_query(s: Session, actor: str | None, flt: Filter) -> Select[AccessRequest]:
    """Requests ``actor`` may see that match ``flt``; shared by list and the reports."""
    return subjects.visible_query(s, REQUEST, actor, flt)


def list_requests(
    db: Database, *, actor: str | None, flt: Filter, sort: str = "created"
) -> list[RequestView]:
    return subjects.list_(db, REQUEST, actor=actor, flt=flt, sort=sort)


def expire_due(db: Database, *, actor: str | None, now: datetime | None = None) -> list[str]:
    """Expire approved requests whose expiry has passed (run on a schedule; safe to repeat)."""
    due = subjects.due(db, REQUEST, actor=actor, state="approved", column="expires_at", now=now)
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


REQUEST = register(
    Kind(
        workflow=domain.WORKFLOW,
        model=AccessRequest,
        project=domain.project,
        label="access request",
        id_field="request",
        prefix="req",
        view=RequestView,
        # Requesters see their own requests; every other role sees all of its projects'.
        policy=Policy(
            readers=frozenset(ALL_ROLES - {Role.REQUESTER.value}),
            owner_readers=frozenset({Role.REQUESTER.value}),
            owner="requester",
        ),
        filters=FilterSpec(
            equals={"requester": "requester", "reviewer": "reviewer"},
            ranges={"created": "created_at", "decided": "decided_at"},
        ),
        facts=("requester", "reviewer"),
        commands={
            "submit": Command(SubmitPayload, _submit),
            "resubmit": Command(SubmitPayload, _submit),
            "return": NEEDS_REASON,
            "reject": NEEDS_REASON,
            "revoke": NEEDS_REASON,
            "cancel": REASON,
            "expire": REASON,
            "approve": Command(ApprovePayload, _approve),
            "assign-reviewer": Command(ReviewerPayload, _assign),
            "edit": Command(EditPayload, _edit),
            "comment": COMMENT,
        },
        view_at=_view_at,
        docs="access-requests.md",
    )
)
KIND = REQUEST  # the engine's name for it (reports and tests use requests.KIND)
RequestFilter = REQUEST.filter
