"""The workflow engine's write path, shared by every tracked kind.

load → decide (pure) → project the event onto the read model → append the event (and, when
it changes state, its line to the subject's change log), all in the caller's transaction.
SQLAlchemy's ``version_id_col`` makes the UPDATE carry ``WHERE version =`` so two writers
racing on one subject cannot both win; the loser gets ``Conflict``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from steward.db import change_logs
from steward.db.models import Event
from steward.domain.workflow import Context, Decision, Workflow
from steward.errors import Conflict, Detail, ValidationFailed
from steward.redact import redact
from steward.timeutil import utcnow

Projector = Callable[[str, datetime, str, Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]


class Tracked(Protocol):
    """What the engine needs of a read-model row."""

    id: str
    project_id: str
    state: str
    version: int
    created_at: datetime
    updated_at: datetime
    state_since: datetime


@dataclass(frozen=True)
class Kind:
    """A tracked kind: its workflow, read-model class and projector."""

    workflow: Workflow
    model: type[Any]
    project: Projector

    @property
    def name(self) -> str:
        return self.workflow.kind


def find_by_key(session: Session, key: str) -> Event | None:
    return session.scalars(select(Event).where(Event.idempotency_key == key)).first()


def _check_replay(event: Event, kind: Kind, subject_id: str | None, event_type: str) -> None:
    same = event.subject_kind == kind.name and event.type == event_type
    if not same or (subject_id is not None and event.subject_id != subject_id):
        raise Conflict(
            "this idempotency key was already used for a different command",
            [Detail("reused key", field="idempotency_key", value=event.idempotency_key)],
        )


def replayed(
    session: Session, *, kind: Kind, subject_id: str, command: str, idempotency_key: str | None
) -> Event | None:
    """The event a previous send of this command produced, if the key was seen before.

    Checked before any decision: the first result stands even if the state has moved on.
    """
    if not idempotency_key:
        return None
    prior = find_by_key(session, idempotency_key)
    if prior is not None:
        _check_replay(prior, kind, subject_id, kind.workflow.event_for(command))
    return prior


def _last(session: Session, kind: Kind, subject_id: str) -> tuple[int, datetime] | None:
    """Sequence number and time of the subject's newest event."""
    found = session.execute(
        select(Event.seq, Event.at)
        .where(Event.subject_kind == kind.name, Event.subject_id == subject_id)
        .order_by(Event.seq.desc())
        .limit(1)
    ).first()
    return None if found is None else (found[0], found[1])


def record_create(
    session: Session,
    *,
    kind: Kind,
    row: Tracked,
    ctx: Context,
    data: Mapping[str, Any],
    at: datetime | None = None,
    idempotency_key: str | None = None,
) -> tuple[Tracked, Event]:
    """Insert a new subject in its initial state with its first event (or replay the first)."""
    if idempotency_key:
        prior = find_by_key(session, idempotency_key)
        if prior is not None:
            _check_replay(prior, kind, None, kind.workflow.create.event)
            return session.get_one(kind.model, prior.subject_id), prior
    decision = kind.workflow.decide_create(ctx)
    at = at or utcnow()
    for name, value in kind.project(decision.event, at, ctx.actor, data, {}).items():
        setattr(row, name, value)
    row.state = decision.to_state
    row.created_at = row.updated_at = row.state_since = at
    session.add(row)
    event = _event(kind, row, decision, ctx.actor, at, data, idempotency_key, seq=1)
    session.add(event)
    change_logs.record(session, event)
    _flush(session)
    return row, event


def check_version(row: Tracked, expected_version: int | None) -> None:
    """Refuse a command from a caller who looked at an older version of ``row``."""
    if expected_version is not None and expected_version != row.version:
        raise Conflict(
            f"{row.id} is at version {row.version}, not {expected_version}: someone changed it "
            "since you looked; reload and try again",
            [
                Detail(
                    "stale version",
                    field="version",
                    value=str(expected_version),
                    accepted=str(row.version),
                )
            ],
        )


def record(
    session: Session,
    *,
    kind: Kind,
    row: Tracked,
    command: str,
    ctx: Context,
    data: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    decision: Decision | None = None,
) -> Event:
    """Apply ``command`` to ``row``: one event appended, read model updated, or an error."""
    data = dict(data or {})
    prior = replayed(
        session, kind=kind, subject_id=row.id, command=command, idempotency_key=idempotency_key
    )
    if prior is not None:
        return prior
    check_version(row, expected_version)
    if decision is None:
        decision = kind.workflow.decide(command, row.state, ctx)
    at = at or utcnow()
    newest = _last(session, kind, row.id)
    if newest is not None and newest[0] > row.version:
        # Another process appended an event after ``row`` was loaded (PostgreSQL shows it to
        # this statement): the decision was taken on a stale state. The same answer the
        # version check at flush would give, before the time check can misname it.
        raise _stale()
    last = newest[1] if newest is not None else None
    if last is not None and at < last:
        raise ValidationFailed(
            f"{row.id}: an event at {at.isoformat()} would come before the previous one at "
            f"{last.isoformat()}",
            [Detail("timestamps must not go backwards", field="at", value=at.isoformat())],
        )
    subject = {c.key: getattr(row, c.key) for c in sa_inspect(row).mapper.column_attrs}
    for name, value in kind.project(decision.event, at, ctx.actor, data, subject).items():
        setattr(row, name, value)
    seq = row.version + 1
    stay: float | None = None
    if decision.to_state != row.state:
        # How long the subject stayed in the state it now leaves, kept on the event itself.
        stay = (at - row.state_since).total_seconds()
        row.state = decision.to_state
        row.state_since = at
    row.updated_at = at
    # Every event is a new version, even one that changes no column (a comment at the same
    # instant as the previous event): without this the ORM skips the UPDATE, the version
    # stays, and the next command collides with this event's sequence number.
    flag_modified(row, "updated_at")
    event = _event(kind, row, decision, ctx.actor, at, data, idempotency_key, seq=seq)
    event.stay_seconds = stay
    session.add(event)
    if event.from_state != event.to_state:
        change_logs.record(session, event)
    _flush(session)
    return session.scalars(
        select(Event).where(
            Event.subject_kind == kind.name, Event.subject_id == row.id, Event.seq == seq
        )
    ).one()


def _event(
    kind: Kind,
    row: Tracked,
    decision: Decision,
    actor: str,
    at: datetime,
    data: Mapping[str, Any],
    key: str | None,
    *,
    seq: int,
) -> Event:
    return Event(
        subject_kind=kind.name,
        subject_id=row.id,
        project_id=row.project_id,
        seq=seq,
        at=at,
        actor=actor,
        type=decision.event,
        from_state=decision.from_state,
        to_state=decision.to_state,
        data=dict(data),
        idempotency_key=key,
    )


def _stale() -> Conflict:
    return Conflict(
        "someone else changed this at the same moment; nothing was saved; reload and retry"
    )


def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError:
        raise _stale() from None
    except IntegrityError as exc:
        text = str(exc.orig)
        if "idempotency" in text or "uq_events" in text or "UNIQUE" in text.upper():
            raise Conflict(
                "a concurrent command got there first; nothing was saved; reload and retry",
                [Detail(redact(text.splitlines()[0]))],
            ) from None
        raise
