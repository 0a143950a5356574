"""The workflow engine's write path, shared by every tracked kind.

load → decide (pure) → project the event onto the read model → append the event (and, when
it changes state, its line to the subject's change log), all in the caller's transaction.
SQLAlchemy's ``version_id_col`` makes the UPDATE carry ``WHERE version =`` so two writers
racing on one subject cannot both win; the loser gets ``Conflict``.

``append_many`` does the same for whole histories of new subjects at once (imports): the
same decisions, projection, stays and change-log lines (``_created``/``_advanced`` and the
change log's ``Builder``, shared with ``record``), written through the dialect's bulk path
(``db/bulk.py``) instead of the ORM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from steward.db import bulk, change_logs
from steward.db.models import Event
from steward.domain.change_log import Builder, reason_of
from steward.domain.workflow import Context, Decision, Workflow
from steward.errors import Conflict, Detail, ValidationFailed
from steward.redact import redact
from steward.timeutil import utcnow

Projector = Callable[[str, datetime, str, Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]

_TABLES = Event.metadata.tables


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
    state: str | None = None,
) -> tuple[Tracked, Event]:
    """Insert a new subject with its first event (or replay the first): in its initial state,
    or in ``state`` when the workflow lets a creation start there (``Workflow.entry``)."""
    if idempotency_key:
        prior = find_by_key(session, idempotency_key)
        if prior is not None:
            _check_replay(prior, kind, None, kind.workflow.create.event)
            return session.get_one(kind.model, prior.subject_id), prior
    decision = kind.workflow.decide_create(ctx, state)
    at = at or utcnow()
    subject: dict[str, Any] = {}
    _created(kind, subject, decision, at, ctx.actor, data)
    for name, value in subject.items():
        setattr(row, name, value)
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
) -> Event:
    """Apply ``command`` to ``row``: one event appended, read model updated, or an error.

    The workflow decides (there is no way to hand it a decision). ``at=None`` is a live
    command, recorded now — or, when the subject's last event is dated after now (a history
    imported from a clock that ran ahead, before imports refused future times), at that
    event's time with a ``clock_note`` in its data saying so, so the ledger stays in order
    and the subject is not blocked until then. An explicit ``at`` before the last event is
    refused.
    """
    data = dict(data or {})
    prior = replayed(
        session, kind=kind, subject_id=row.id, command=command, idempotency_key=idempotency_key
    )
    if prior is not None:
        return prior
    check_version(row, expected_version)
    seq = _append(
        session, kind, row, command, ctx, data, at, idempotency_key, _last(session, kind, row.id)
    )
    _flush(session)
    return session.scalars(
        select(Event).where(
            Event.subject_kind == kind.name, Event.subject_id == row.id, Event.seq == seq
        )
    ).one()


class Step(NamedTuple):
    """One live command of :func:`record_each`: what ``record`` takes, for one subject."""

    row: Tracked
    command: str
    data: Mapping[str, Any]


def record_each(session: Session, *, kind: Kind, steps: Iterable[Step], ctx: Context) -> int:
    """``record`` for many live commands at once (a crawl's events on the datasets it found
    changed), without idempotency keys: the same decisions, projection, stays, change-log
    lines and version checks, but the newest event of every subject read in one query and
    one flush for all (one more wherever a subject has a further event) instead of three
    round trips each. Returns how many events were appended."""
    steps = list(steps)
    newest: dict[str, tuple[int, datetime]] = {}
    ids = sorted({step.row.id for step in steps})
    for part in bulk.in_chunks(ids):
        # A subject's events are in time order, so the newest is both the highest seq and at.
        found = session.execute(
            select(Event.subject_id, func.max(Event.seq), func.max(Event.at))
            .where(Event.subject_kind == kind.name, Event.subject_id.in_(part))
            .group_by(Event.subject_id)
        )
        newest |= {sid: (seq, at) for sid, seq, at in found}
    pending: set[str] = set()
    for step in steps:
        if step.row.id in pending:  # its version moves at the flush: the next seq needs it
            _flush(session)
            pending.clear()
        data = dict(step.data)
        seq = _append(
            session, kind, step.row, step.command, ctx, data, None, None, newest.get(step.row.id)
        )
        newest[step.row.id] = (seq, step.row.updated_at)
        pending.add(step.row.id)
    _flush(session)
    return len(steps)


def _append(
    session: Session,
    kind: Kind,
    row: Tracked,
    command: str,
    ctx: Context,
    data: dict[str, Any],
    at: datetime | None,
    idempotency_key: str | None,
    newest: tuple[int, datetime] | None,
) -> int:
    """Decide ``command``, project it onto ``row`` and add its event (flushed by the caller);
    ``newest`` is the subject's newest event as stored (seq, time). Returns the event's seq."""
    decision = kind.workflow.decide(command, row.state, ctx)
    live = at is None
    at = at or utcnow()
    if newest is not None and newest[0] > row.version:
        # Another process appended an event after ``row`` was loaded (PostgreSQL shows it to
        # this statement): the decision was taken on a stale state. The same answer the
        # version check at flush would give, before the time check can misname it.
        raise _stale()
    last = newest[1] if newest is not None else None
    if last is not None and at < last:
        if not live:
            raise _backwards(row.id, at, last)
        data["clock_note"] = _clock_note(at, last)
        at = last
    subject = {c.key: getattr(row, c.key) for c in sa_inspect(row).mapper.column_attrs}
    stay = _advanced(kind, subject, decision, at, ctx.actor, data)
    for name, value in subject.items():
        if name != "version" and value is not getattr(row, name):
            setattr(row, name, value)
    seq = row.version + 1
    # Every event is a new version, even one that changes no column (a comment at the same
    # instant as the previous event): without this the ORM skips the UPDATE, the version
    # stays, and the next command collides with this event's sequence number.
    flag_modified(row, "updated_at")
    event = _event(kind, row, decision, ctx.actor, at, data, idempotency_key, seq=seq)
    event.stay_seconds = stay
    session.add(event)
    if event.from_state != event.to_state:
        change_logs.record(session, event)
    return seq


class Change(NamedTuple):
    """One event of a bulk history, before the workflow has decided it.

    ``command``: the first change of a subject is the kind's creation command. ``ctx``: the
    decision's context as it was then, built by the caller as for ``record`` (who acts, in
    which roles, the subject's facts). Histories may share ``ctx`` and ``data`` objects
    between changes: each distinct one is decided and serialised once.
    """

    command: str
    ctx: Context
    at: datetime
    data: Mapping[str, Any]
    idempotency_key: str | None = None


class NewSubject(NamedTuple):
    """A subject that does not exist yet, with its whole history, oldest change first.

    ``entry``: the state its creation leads to, as ``record_create``'s ``state`` (``None``:
    the workflow's initial state)."""

    id: str
    project_id: str
    changes: Sequence[Change]
    entry: str | None = None


Effect = tuple[str, Mapping[str, Any], str]
"""An outbox action an event causes: (action, payload, idempotency key)."""
Effects = Callable[[str, str, Decision, Mapping[str, Any]], Iterable[Effect]]
"""The outbox hook: (subject id, project id, decision, data) → the effects to enqueue."""


@dataclass
class Appended:
    subjects: int = 0
    events: int = 0


EVENT_COLUMNS = (
    "subject_kind",
    "subject_id",
    "project_id",
    "seq",
    "at",
    "actor",
    "type",
    "from_state",
    "to_state",
    "data",
    "idempotency_key",
    "stay_seconds",
)
CHANGE_LOG_COLUMNS = (
    "subject_kind",
    "subject_id",
    "project_id",
    "lines",
    "moves",
    "state",
    "since",
)


def append_many(
    session: Session,
    kind: Kind,
    items: Iterable[NewSubject],
    *,
    effects: Effects | None = None,
) -> Appended:
    """Create many subjects with their histories in the caller's transaction: what
    ``record_create`` and ``record`` would do event by event — the workflow's decision for
    every change, read-model rows, sequence numbers and versions, stays, change logs, and
    (``effects``) outbox rows — written through the dialect's bulk path.

    Refuses (``Forbidden``/``InvalidTransition`` from the workflow, ``ValidationFailed`` for
    a time going backwards) exactly where ``record`` would; callers that must list every
    problem of their input (the importer) judge it first, and this is the guarantee.
    """
    table = kind.model.__table__
    events, logs_table = _TABLES["events"], _TABLES["change_logs"]
    with bulk.Writer(session) as w:
        out = _Bulk(kind, w, table, effects)
        with w.stream(events, EVENT_COLUMNS) as put:
            for item in items:
                out.subject(item, put)
        w.write(table, out.columns, out.rows)
        w.write(logs_table, CHANGE_LOG_COLUMNS, out.logs)
        if out.done.events >= bulk.ANALYZE_AFTER:
            w.analyze(table, events, logs_table)
    _enqueue(session, kind.name, out.queued)
    return out.done


_KEEP = 1 << 16
"""Contexts (with their decisions) and data objects remembered for reuse; a history's own
objects would otherwise all stay alive, and a million events' worth of them slows every
allocation."""


class _Bulk:
    """``append_many``'s state: what is decided and serialised once, the rows to write."""

    def __init__(self, kind: Kind, w: bulk.Writer, table: Any, effects: Effects | None) -> None:
        self.kind, self.effects = kind, effects
        self.columns = tuple(c.name for c in table.columns)
        self.base = w.defaults(table, self.columns)
        self.when, self.as_json = w.time, w.json
        self.convert = tuple(
            (c, self._stamp if f is w.time else f)
            for c, f in zip(self.columns, w.converters(table, self.columns), strict=True)
        )
        self.stamps: dict[datetime | None, Any] = {None: None}
        """The subject's times as the database takes them: its columns repeat its events'."""
        self.decided: dict[tuple[str, str | None, int], tuple[Context, Decision]] = {}
        self.texts: dict[int, tuple[Mapping[str, Any], Any]] = {}  # id(data) → (data, JSON)
        self.queued: list[tuple[str, str, str, Effect]] = []
        self.rows: list[bulk.Row] = []
        self.logs: list[bulk.Row] = []
        self.done = Appended()

    def _stamp(self, value: datetime | None) -> Any:
        found = self.stamps.get(value)
        if found is None and value is not None:
            found = self.stamps[value] = self.when(value)
        return found

    def _decide(
        self, command: str, state: str | None, ctx: Context, entry: str | None = None
    ) -> Decision:
        """The workflow's decision, once per (command, state, context object): histories
        share one context per person and situation (``Change``). ``state=None`` is the
        creation, leading to ``entry``."""
        wf = self.kind.workflow
        if state is None:
            if command != wf.create.command:
                raise ValueError(f"a new subject's first change is {wf.create.command!r}")
            decision = wf.decide_create(ctx, entry)
        else:
            decision = wf.decide(command, state, ctx)
        if len(self.decided) >= _KEEP:
            self.decided.clear()  # the context is kept alive with its decision: ids stay valid
        self.decided[(command, state, id(ctx))] = (ctx, decision)
        return decision

    def subject(self, item: NewSubject, put: Callable[[bulk.Row], None]) -> None:
        """One new subject: its events streamed to ``put``, its row and change log kept."""
        kind, name, texts, as_json, stamps = (
            self.kind,
            self.kind.name,
            self.texts,
            self.as_json,
            self.stamps,
        )
        decided = self.decided
        sid, project = item.id, item.project_id
        subject = dict(self.base, id=sid, project_id=project)
        log = Builder(sid)
        stamps.clear()
        stamps[None] = None
        seq = 0
        for command, ctx, at, data, key in item.changes:
            actor = ctx.actor
            if seq == 0:
                decision = self._decide(command, None, ctx, item.entry)
                _created(kind, subject, decision, at, actor, data)
                stay = None
            else:
                state = subject["state"]
                found = decided.get((command, state, id(ctx)))  # _decide's cache, inlined
                if found is not None and found[0] is ctx:
                    decision = found[1]
                else:
                    decision = self._decide(command, state, ctx)
                if at < subject["updated_at"]:
                    raise _backwards(sid, at, subject["updated_at"])
                stay = _advanced(kind, subject, decision, at, actor, data)
            seq += 1
            if decision.from_state != decision.to_state:
                log.add(decision.from_state, decision.to_state, at, actor, reason_of(data), stay)
            text = texts.get(id(data))
            if text is None or text[0] is not data:
                if len(texts) >= _KEEP:
                    texts.clear()
                text = texts[id(data)] = (data, as_json(data))
            stamp = stamps.get(at)
            if stamp is None:
                stamp = stamps[at] = self.when(at)
            put(
                (
                    name,
                    sid,
                    project,
                    seq,
                    stamp,
                    actor,
                    decision.event,
                    decision.from_state,
                    decision.to_state,
                    text[1],
                    key,
                    stay,
                )
            )
            if self.effects is not None:
                self.queued += [
                    (sid, project, actor, e) for e in self.effects(sid, project, decision, data)
                ]
        if not seq:
            return
        subject["version"] = seq
        self.rows.append(tuple([f(subject[c]) for c, f in self.convert]))
        self.logs.append(
            (name, sid, project, log.text, log.moves, log.state, self._stamp(log.since))
        )
        self.done.subjects += 1
        self.done.events += seq


def _enqueue(session: Session, kind: str, queued: list[tuple[str, str, str, Effect]]) -> None:
    """The effects' outbox rows, in the same transaction as the events that caused them."""
    if not queued:
        return
    from steward.jobs import outbox  # the job runner imports the services: import when used

    for sid, project, actor, (action, payload, key) in queued:
        outbox.enqueue(
            session,
            subject_kind=kind,
            subject_id=sid,
            project_id=project,
            action=action,
            payload=payload,
            idempotency_key=key,
            actor=actor,
        )


def _created(
    kind: Kind,
    subject: dict[str, Any],
    decision: Decision,
    at: datetime,
    actor: str,
    data: Mapping[str, Any],
) -> None:
    """A new subject's columns from its first event (``record_create`` and ``append_many``)."""
    subject.update(kind.project(decision.event, at, actor, data, {}))
    subject["state"] = decision.to_state
    subject["created_at"] = subject["updated_at"] = subject["state_since"] = at


def _advanced(
    kind: Kind,
    subject: dict[str, Any],
    decision: Decision,
    at: datetime,
    actor: str,
    data: Mapping[str, Any],
) -> float | None:
    """Project one more event onto ``subject``'s columns (``record`` and ``append_many``);
    returns the stay it ends: how long the subject was in the state it now leaves, kept on
    the event itself (``None`` when the state does not change)."""
    subject.update(kind.project(decision.event, at, actor, data, subject))
    stay: float | None = None
    if decision.to_state != subject["state"]:
        stay = (at - subject["state_since"]).total_seconds()
        subject["state"] = decision.to_state
        subject["state_since"] = at
    subject["updated_at"] = at
    return stay


def _backwards(subject_id: str, at: datetime, last: datetime) -> ValidationFailed:
    return ValidationFailed(
        f"{subject_id}: an event at {at.isoformat()} would come before the previous one at "
        f"{last.isoformat()}",
        [Detail("timestamps must not go backwards", field="at", value=at.isoformat())],
    )


def _clock_note(now: datetime, last: datetime) -> str:
    return (
        f"recorded at {last.isoformat()}, the time of the previous event, instead of "
        f"{now.isoformat()}: that event is dated {last - now} in the future (its history "
        "was imported from a clock that ran ahead)"
    )


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
