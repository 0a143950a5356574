"""The transactional outbox: effects on the outside world, written with the event that
caused them and carried out after the commit, exactly once.

Services call :func:`enqueue` inside their transaction. A relay (:func:`relay`) hands due
rows to the queue; a worker (:func:`deliver`) claims one with a lease, runs its handler and
records the outcome. Every step may be repeated — a relay that died after handing a row over,
a worker killed mid-effect, a message delivered twice — without repeating the effect:

- the idempotency key is unique, so asking twice is one row;
- :func:`deliver` claims the row first (one holder at a time; a dead holder is taken over);
- handlers are idempotent by key (a job resumes its subject; a webhook carries the key in
  ``Idempotency-Key`` for the receiver to drop repeats).

Failures are retried with exponential backoff and jitter (tenacity's
``wait_exponential_jitter``); refusals that cannot get better (bad input, no permission, a
subject in the wrong state) end the row ``failed`` at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import tenacity
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from ulid import ULID

from steward.db.queue_tables import Action
from steward.db.session import Database
from steward.errors import (
    Conflict,
    Detail,
    ExternalError,
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from steward.services import leases
from steward.timeutil import utcnow

log = logging.getLogger(__name__)

STATES = ("pending", "running", "done", "failed", "cancelled")
OPEN = ("pending", "running")
FINAL = ("done", "failed", "cancelled")
MAX_ATTEMPTS = 8
REQUEUE_AFTER = timedelta(seconds=30)
"""A row handed to the queue that nobody claimed by then is handed over again (the message
may have been lost with the process that held it)."""
_WAIT = tenacity.wait_exponential_jitter(multiplier=2, max=900, exp_base=2, jitter=2)
PERMANENT: tuple[type[Exception], ...] = (
    ValidationFailed,
    InvalidTransition,
    NotFound,
    Forbidden,
)
"""Refusals that a retry cannot change: the row fails at once (the subject says why)."""

OWN_OUTCOME: dict[str, Callable[[Session, Action], None]] = {}
"""Actions whose subject is not a tracked kind (a crawl), by action: the function that records
their end on the subject, in the transaction that settles them, instead of an event. Filled as
the services declaring them are imported."""


class PermanentFailure(ExternalError):
    """A handler's way to say "do not try again" (a webhook answered 4xx)."""

    code = "external-refused"
    title = "Refused by another system"


def backoff(attempt: int) -> timedelta:
    """How long to wait before try ``attempt + 1``: 2 s, 4 s, 8 s … up to 15 min, + jitter."""
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = attempt
    return timedelta(seconds=_WAIT(state))


def new_action_id() -> str:
    return f"act_{ULID()}"


def enqueue(
    session: Session,
    *,
    subject_kind: str,
    subject_id: str,
    project_id: str,
    action: str,
    payload: Mapping[str, Any],
    idempotency_key: str,
    actor: str = "steward",
    max_attempts: int = MAX_ATTEMPTS,
    not_before: datetime | None = None,
) -> str:
    """Queue an effect in the caller's transaction; returns the action id.

    The same key again returns the row already there (the effect happens once); the same key
    for another subject or action is a ``Conflict``.
    """
    now = utcnow()
    values = {
        "id": new_action_id(),
        "subject_kind": subject_kind,
        "subject_id": subject_id,
        "project_id": project_id,
        "action": action,
        "payload": dict(payload),
        "idempotency_key": idempotency_key,
        "state": "pending",
        "attempts": 0,
        "max_attempts": max_attempts,
        "next_try_at": not_before or now,
        "created_by": actor,
        "created_at": now,
        "updated_at": now,
    }
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(Action).values(**values)
        session.execute(pg.on_conflict_do_nothing(index_elements=["idempotency_key"]))
    else:
        lite = sqlite.insert(Action).values(**values)
        session.execute(lite.on_conflict_do_nothing(index_elements=["idempotency_key"]))
    row = session.scalars(select(Action).where(Action.idempotency_key == idempotency_key)).one()
    if (row.subject_kind, row.subject_id, row.action) != (subject_kind, subject_id, action):
        raise Conflict(
            "this idempotency key was already used for a different effect",
            [
                Detail(
                    "reused key",
                    field="idempotency_key",
                    value=idempotency_key,
                    accepted=f"a new key (it names {row.action} on {row.subject_id})",
                )
            ],
        )
    return row.id


def request(
    session: Session,
    *,
    subject_kind: str,
    subject_id: str,
    project_id: str,
    action: str,
    payload: Mapping[str, Any],
    actor: str,
) -> str:
    """Queue ``action`` on a subject unless one is already open (pending or running); returns
    the open or new action's id.

    For work people ask for (``--no-wait``): asking twice while it is queued or running is one
    action; asking after it ended (done, failed, cancelled) is a new one. The key names the
    subject and how many such actions came before, so two requests racing get the same key.
    """
    found = session.scalars(
        select(Action.id).where(
            Action.subject_id == subject_id, Action.action == action, Action.state.in_(OPEN)
        )
    ).first()
    if found is not None:
        return found
    before = session.scalar(
        select(func.count()).where(Action.subject_id == subject_id, Action.action == action)
    )
    return enqueue(
        session,
        subject_kind=subject_kind,
        subject_id=subject_id,
        project_id=project_id,
        action=action,
        payload=payload,
        idempotency_key=f"{action}:{subject_id}:{before or 0}",
        actor=actor,
    )


def _due(now: datetime) -> Select[Action]:
    waiting = (Action.state == "pending") & (Action.next_try_at <= now)
    not_queued = or_(Action.queued_at.is_(None), Action.queued_at < now - REQUEUE_AFTER)
    # Every running row: whether its holder is gone is judged in Python (a dead process on
    # this host frees it at once, without waiting out the lease).
    return select(Action).where(or_(waiting, Action.state == "running"), not_queued)


def _lock_due(s: Session, q: Select[Action]) -> Select[Action]:
    # PostgreSQL: relays on several machines each take different rows, none waits for another.
    # SQLite: the writing transaction (BEGIN IMMEDIATE) already runs alone.
    if s.get_bind().dialect.name == "postgresql":
        return q.with_for_update(skip_locked=True)
    return q


def relay(db: Database, send: Callable[[str], None], *, limit: int = 200) -> int:
    """Hand due rows to the queue (``send``); returns how many were handed over.

    Due: pending past its next try, or running with a holder that is gone (lease ran out,
    or its process on this host died). Marked ``queued_at`` in the same transaction, so a
    second relay does not hand them over again until ``REQUEUE_AFTER``.
    """
    now = utcnow()
    with db.transaction() as s:
        rows = list(s.scalars(_lock_due(s, _due(now).order_by(Action.next_try_at).limit(limit))))
        ids = [
            r.id
            for r in rows
            if r.state == "pending" or leases.holder_gone(r.owner, r.lease_until, now)
        ]
        if ids:
            s.execute(
                update(Action)
                .where(Action.id.in_(ids))
                .values(queued_at=now)
                .execution_options(synchronize_session=False)
            )
    for action_id in ids:
        send(action_id)
    return len(ids)


def anything_due(db: Database) -> bool:
    """Whether a row is due now or queued and not yet claimed (for ``worker --drain``)."""
    now = utcnow()
    with db.read() as s:
        rows = s.scalars(
            select(Action).where(
                or_(
                    (Action.state == "pending") & (Action.next_try_at <= now),
                    Action.state == "running",
                )
            )
        )
        return any(
            r.state == "pending" or leases.holder_gone(r.owner, r.lease_until, now) for r in rows
        )


@dataclass(frozen=True)
class Delivery:
    """What a handler gets: the row as it was claimed."""

    id: str
    action: str
    subject_kind: str
    subject_id: str
    project_id: str
    payload: dict[str, Any]
    idempotency_key: str
    attempt: int
    created_by: str


Handler = Callable[[Delivery], dict[str, Any] | None]


def _claim(db: Database, action_id: str, owner: str) -> Delivery | None:
    now = utcnow()
    with db.transaction() as s:
        q = select(Action).where(Action.id == action_id)
        if s.get_bind().dialect.name == "postgresql":
            q = q.with_for_update()
        row = s.scalars(q).first()
        if row is None:
            return None
        if row.state == "pending":
            if row.next_try_at > now:
                return None
        elif row.state != "running" or not leases.holder_gone(row.owner, row.lease_until, now):
            return None  # done, failed, cancelled, or someone alive holds it
        row.state = "running"
        row.owner = owner
        row.lease_until = leases.lease_until(now)
        row.attempts += 1
        row.queued_at = None
        row.updated_at = now
        return Delivery(
            id=row.id,
            action=row.action,
            subject_kind=row.subject_kind,
            subject_id=row.subject_id,
            project_id=row.project_id,
            payload=dict(row.payload),
            idempotency_key=row.idempotency_key,
            attempt=row.attempts,
            created_by=row.created_by,
        )


def _renew(db: Database, action_id: str, owner: str) -> None:
    with db.transaction() as s:
        s.execute(
            update(Action)
            .where(Action.id == action_id, Action.owner == owner, Action.state == "running")
            .values(lease_until=leases.lease_until())
            .execution_options(synchronize_session=False)
        )


def _settle(
    db: Database,
    action_id: str,
    owner: str,
    *,
    outcome: dict[str, Any] | None = None,
    error: BaseException | None = None,
) -> str:
    from steward.jobs.runner import Released, reason

    now = utcnow()
    with db.transaction() as s:
        row = s.get(Action, action_id)
        if row is None or row.owner != owner or row.state != "running":
            return row.state if row is not None else "missing"  # taken over meanwhile
        row.owner, row.lease_until, row.updated_at = None, None, now
        if error is None:
            row.state, row.outcome, row.last_error, row.finished_at = "done", outcome, None, now
        else:
            row.last_error = reason(error, row.action)
            if isinstance(error, Released):  # its worker is stopping: the next one resumes it
                row.state, row.next_try_at = "pending", now
                row.attempts = max(0, row.attempts - 1)  # not a failed try
            elif row.cancel_requested_by:
                row.state, row.finished_at = "cancelled", now
            elif isinstance(error, (*PERMANENT, PermanentFailure)) or (
                row.attempts >= row.max_attempts
            ):
                row.state, row.finished_at = "failed", now
            else:
                row.state, row.next_try_at = "pending", now + backoff(row.attempts)
        if row.state in FINAL:
            _record_outcome(s, row)
        return row.state


def _record_outcome(s: Session, row: Action) -> None:
    """The effect's outcome as an event on the subject that caused it, in the transaction
    that settles the row: both or neither. Keyed by the action, so it is recorded once; a
    retried action that ends again records its new outcome under its new attempt count.
    A long job's outcome is already its subject's own events (start, finish, fail)."""
    from steward.jobs.runner import JOBS

    if row.action in JOBS:
        return
    if row.action in OWN_OUTCOME:
        OWN_OUTCOME[row.action](s, row)
        return
    from steward.domain.roles import SYSTEM
    from steward.domain.workflow import RECORD_EFFECT, Context
    from steward.services import kinds, subjects

    kind = next((k for k in kinds.kinds() if k.name == row.subject_kind), None)
    # Locked (PostgreSQL; SQLite's writers take turns anyway): many effects of one subject
    # settling at once append their events one after the other instead of colliding on its
    # version and rolling their settlements back.
    subject = (
        s.get(kind.model, row.subject_id, with_for_update=True, populate_existing=True)
        if kind is not None
        else None
    )
    if kind is None or subject is None:
        log.warning(
            "%s: no %s %s to record its outcome on", row.id, row.subject_kind, row.subject_id
        )
        return
    subjects.apply(
        s,
        kind,
        subject,
        Context(actor=row.created_by, roles=frozenset({SYSTEM})),
        RECORD_EFFECT,
        {
            "action": row.action,
            "action_id": row.id,
            "outcome": row.state,
            "attempts": row.attempts,
            "detail": row.outcome,
            "error": row.last_error,
        },
        idempotency_key=f"{row.id}:{row.state}:{row.attempts}",
    )


def deliver(db: Database, action_id: str, handlers: Mapping[str, Handler]) -> str | None:
    """Carry out one action if it is still due; returns its state afterwards (None: not ours).

    Its outcome, once final, is an event on its subject (a long job's are its own start,
    finish and fail events).

    Safe to call twice for the same id, from any number of processes: only the one that
    claims the row runs it, and a handler that died half-way is taken over, not doubled.
    """
    import threading

    owner = leases.me()
    claimed = _claim(db, action_id, owner)
    if claimed is None:
        return None
    handler = handlers.get(claimed.action)
    stop = threading.Event()

    def renew_loop() -> None:
        while not stop.wait(leases.RENEW_EVERY):
            try:
                _renew(db, action_id, owner)
            except Exception:
                continue

    renewer = threading.Thread(target=renew_loop, name="action-lease", daemon=True)
    renewer.start()
    try:
        if handler is None:
            raise PermanentFailure(
                f"no handler for action {claimed.action!r}",
                [Detail("unknown action", field="action", value=claimed.action)],
            )
        outcome = handler(claimed)
    except Exception as exc:
        return _settle(db, action_id, owner, error=exc)
    finally:
        stop.set()
        renewer.join()
    return _settle(db, action_id, owner, outcome=outcome or {})


# -- reading and steering -------------------------------------------------------------------


def load(s: Session, action_id: str) -> Action:
    row = s.get(Action, action_id)
    if row is None:
        raise NotFound(
            f"no action {action_id}",
            [Detail("not found", field="action", value=action_id, accepted="act_… from jobs list")],
        )
    return row


def retry(s: Session, row: Action, actor: str) -> None:
    """Try a failed or cancelled action again, from a clean count of attempts."""
    if row.state not in ("failed", "cancelled"):
        raise InvalidTransition(
            f"{row.id} is {row.state}; only a failed or cancelled action is retried",
            [Detail("cannot retry", field="state", value=row.state, accepted="failed, cancelled")],
        )
    now = utcnow()
    row.state, row.attempts, row.next_try_at = "pending", 0, now
    row.cancel_requested_by, row.finished_at, row.queued_at = None, None, None
    row.updated_at = now


def cancel(s: Session, row: Action, actor: str) -> None:
    """Stop an action: a pending one ends at once (recorded on its subject); a running one is
    asked to stop (its job sees it within seconds and records why on its subject)."""
    if row.state not in OPEN:
        raise InvalidTransition(
            f"{row.id} is {row.state}; only a pending or running action is cancelled",
            [Detail("cannot cancel", field="state", value=row.state, accepted="pending, running")],
        )
    now = utcnow()
    row.cancel_requested_by, row.updated_at = actor, now
    if row.state == "pending":
        row.state, row.finished_at = "cancelled", now
        _record_outcome(s, row)
