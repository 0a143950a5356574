"""The registry of tracked kinds: each kind is declared once, every surface is derived from it.

A declaration names the kind's workflow (states, and who may issue which command in which
state: roles × guards such as "own" or "assigned"), its read model and view, which columns
filter its lists, who may see its subjects, and for each command a typed payload and the
handler that turns the payload into the event's data. The generic ``get``/``list``/
``history``/``act`` in :mod:`steward.services.subjects`, the CLI's ``workflow show``, the
report scope and the docs test read this registry; a contract test checks every kind in it.

Adding a kind is: its domain module (workflow + projector), a migration for its table (columns
from :class:`steward.db.models.Tracked`), one ``register(Kind(...))`` and its docs page; its
CLI group is generated (:mod:`steward.cli.generic`) unless it has a hand-written one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.orm import Session

from steward.db.models import Membership, User
from steward.domain.workflow import EFFECT_RECORDED, RECORD_EFFECT, Context
from steward.errors import Detail, ValidationFailed
from steward.services import ledger


class Payload(BaseModel):
    """Base of every command's payload: unknown fields are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoPayload(Payload):
    """A command that takes nothing (submit, retry…)."""


class OptionalReason(Payload):
    reason: str | None = None


class RequiredReason(Payload):
    reason: str | None = None  # required: the handler says so in words people read


class CommentText(Payload):
    text: str


@dataclass(frozen=True)
class Step:
    """What a handler may look at: the command, the open session, the subject's row, the
    decision's context (who acts, in which roles) and the event's time (None: now)."""

    command: str
    session: Session
    row: Any
    ctx: Context
    at: datetime | None = None


Handler = Callable[[Step, Any], dict[str, Any]]
"""Turns a validated payload into the event's data, or raises ``ValidationFailed``."""


@dataclass(frozen=True)
class Command:
    payload: type[Payload]
    handle: Handler
    internal: bool = False
    """Issued by Steward's own jobs (builds, pushes), not by people; not offered as an action."""


def reason_data(step: Step, payload: Any) -> dict[str, Any]:
    """Handler of commands whose only input is a reason (required or optional)."""
    reason = (getattr(payload, "reason", None) or "").strip()
    if isinstance(payload, RequiredReason) and not reason:
        raise ValidationFailed(
            f"{step.command} needs a reason people can read", [Detail("required", field="reason")]
        )
    return {"reason": reason} if reason else {}


def comment_data(step: Step, payload: Any) -> dict[str, Any]:
    del step
    text = (payload.text or "").strip()
    if not text:
        raise ValidationFailed("a comment needs text", [Detail("required", field="text")])
    return {"text": text}


def no_data(step: Step, payload: Any) -> dict[str, Any]:
    del step, payload
    return {}


def as_data(step: Step, payload: Any) -> dict[str, Any]:
    """Handler of commands Steward issues itself (a build starting, finishing, failing): the
    payload, already typed and checked, is the event's data."""
    del step
    return dict(payload.model_dump(mode="json", exclude_none=True))


class Claim(Payload):
    """A job taking (or taking over) a subject's work: who, and until when unless renewed."""

    builder: str | None = None
    sender: str | None = None
    lease_until: str | None = None


def job_commands(finished: type[Payload]) -> dict[str, Command]:
    """The commands Steward's long-job runner issues on a kind whose work it runs (a build,
    a push): take it, take it over, finish with ``finished``'s figures, fail with a reason."""
    return {
        "start": Command(Claim, as_data, internal=True),
        "resume": Command(Claim, as_data, internal=True),
        "finish": Command(finished, as_data, internal=True),
        "fail": Command(OptionalReason, as_data, internal=True),
    }


class EffectOutcome(Payload):
    """What an outbox effect did, recorded on the subject that caused it."""

    action: str
    action_id: str
    outcome: str
    """done, failed or cancelled."""
    attempts: int
    detail: dict[str, Any] | None = None
    """The handler's answer (a webhook's HTTP status…)."""
    error: str | None = None
    """Why it failed, as the queue shows it."""


EFFECT_COMMANDS = {RECORD_EFFECT: Command(EffectOutcome, as_data, internal=True)}
"""What every kind gets besides its own commands (its workflow gets the transition)."""

REASON = Command(OptionalReason, reason_data)
NEEDS_REASON = Command(RequiredReason, reason_data)
COMMENT = Command(CommentText, comment_data)
NOTHING = Command(NoPayload, no_data)


@dataclass(frozen=True)
class Policy:
    """Who sees a kind's subjects: ``readers`` see all of their projects'; ``owner_readers``
    only those whose ``owner`` column names them. (Who may *do* what is the workflow's:
    each transition's roles and guards, evaluated by ``Workflow.decide``/``available``.)"""

    readers: frozenset[str]
    owner_readers: frozenset[str] = frozenset()
    owner: str | None = None

    def hidden(self, user: User, roles: frozenset[str], row: Any) -> str | None:
        """Why ``user`` may not see ``row`` (``None``: they may)."""
        if roles & self.readers:
            return None
        if roles & self.owner_readers and self.owner and getattr(row, self.owner) == user.id:
            return None
        return f"{user.id} may not see {row.id}"

    def visible(self, model: Any, user: User) -> ColumnElement[bool] | None:
        """The same rule as SQL, for lists and reports (``None``: no restriction)."""
        if user.is_admin:
            return None

        def projects(roles: frozenset[str]) -> Any:
            return select(Membership.project_id).where(
                Membership.user_id == user.id, Membership.role.in_(sorted(roles))
            )

        rules = [model.project_id.in_(projects(self.readers))]
        if self.owner_readers and self.owner:
            rules.append(
                model.project_id.in_(projects(self.owner_readers))
                & (getattr(model, self.owner) == user.id)
            )
        return or_(*rules) if rules else false()


@dataclass(frozen=True)
class Condition:
    """A filter that is not one column compared with the text typed: a place in another table,
    an element of a JSON list, a yes/no flag. ``where`` turns the text into the SQL condition;
    ``accepted``, when given, lists the only texts it takes."""

    where: Callable[[str], ColumnElement[bool]]
    accepted: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class FilterSpec:
    """Which filter fields narrow a list, beyond project, states and limit (every kind has
    those): exact matches, substrings, choices and ``[from, to)`` date ranges, each naming the
    model column it reads, and conditions that are more than one column."""

    equals: Mapping[str, str] = field(default_factory=dict)
    contains: Mapping[str, str] = field(default_factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ranges: Mapping[str, str] = field(default_factory=dict)
    conditions: Mapping[str, Condition] = field(default_factory=dict)

    @property
    def texts(self) -> tuple[str, ...]:
        """The fields that take text (a user id, part of a name, one of the choices)."""
        return (*self.equals, *self.contains, *self.choices, *self.conditions)

    @property
    def bounds(self) -> tuple[str, ...]:
        """The fields that take a time: ``created_from``, ``created_to``…"""
        return tuple(f"{r}_{end}" for r in self.ranges for end in ("from", "to"))


@dataclass(frozen=True)
class Filter:
    """A list's filter, for any kind: project, states, limit, and the kind's own fields by
    name (``requester``, ``created_from``…). Built by :meth:`Kind.filter`, which refuses
    names the kind does not filter by; every filter combines with the others (AND)."""

    project: str | None = None
    states: Sequence[str] = ()
    limit: int | None = None
    values: Mapping[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        return self.values.get(name)


@dataclass(frozen=True)
class Kind(ledger.Kind):
    """One tracked kind, declared once (see the module docstring)."""

    label: str = ""
    """How people name one subject: "access request"."""
    id_field: str = ""
    """The name errors give an id of this kind: "request"."""
    view: type[BaseModel] = BaseModel
    policy: Policy = Policy(frozenset())
    filters: FilterSpec = FilterSpec()
    commands: Mapping[str, Command] = field(default_factory=dict)
    docs: str = ""
    """The docs page (under docs/) that explains the kind."""
    prefix: str = ""
    """Id prefix: "req"."""
    facts: tuple[str, ...] = ()
    """Read-model columns the workflow's guards look at (the requester, the reviewer)."""
    view_at: Callable[[Session, Any, Any], Any] | None = None
    """The view as an earlier event left it, for a repeated command (default: as it is now)."""

    def filter(
        self,
        *,
        project: str | None = None,
        states: Sequence[str] = (),
        limit: int | None = None,
        **values: str | datetime | None,
    ) -> Filter:
        """A filter of this kind's lists; a name it does not filter by is refused."""
        known = (*self.filters.texts, *self.filters.bounds)
        unknown = [name for name in values if name not in known]
        if unknown:
            accepted = ", ".join(["project", "states", "limit", *known])
            raise ValidationFailed(
                f"{self.label}s cannot be filtered by {', '.join(unknown)}",
                [Detail("unknown filter", field=n, accepted=accepted) for n in unknown],
            )
        return Filter(
            project=project,
            states=tuple(states),
            limit=limit,
            values={k: v for k, v in values.items() if v is not None},
        )

    def offered(self) -> dict[str, tuple[Command, str]]:
        """The commands people may issue (not Steward's own), each with its description:
        what the CLI and the API offer."""
        described = {t.command: t.description for t in self.workflow.transitions if t.by_people}
        return {
            name: (command, described[name])
            for name, command in self.commands.items()
            if name in described and not command.internal
        }

    @property
    def collection(self) -> str:
        """The kind's collection in URLs: ``requests``, ``packages``…"""
        return f"{self.id_field}s"

    def view_of(self, row: Any) -> Any:
        return self.view.model_validate(row, from_attributes=True)

    def result(self, session: Session, row: Any, event: Any) -> Any:
        """What a command answers: the subject now, or as the first send of a repeated
        command left it (the first result stands)."""
        if self.view_at is not None and event.seq != row.version:
            return self.view_at(session, row, event)
        return self.view_of(row)


REGISTRY: dict[str, Kind] = {}


def _annotating(project: ledger.Projector) -> ledger.Projector:
    """``project`` plus the annotations every workflow has, which change no column."""

    def projector(
        event: str, at: datetime, actor: str, data: Mapping[str, Any], subject: Mapping[str, Any]
    ) -> dict[str, Any]:
        if event == EFFECT_RECORDED:
            return {}
        return project(event, at, actor, data, subject)

    return projector


def register(kind: Kind) -> Kind:
    """Add ``kind`` with the commands every kind has; returns the kind as registered."""
    if kind.name in REGISTRY:
        raise ValueError(f"kind {kind.name!r} is registered twice")
    kind = replace(
        kind,
        commands={**kind.commands, **EFFECT_COMMANDS},
        project=_annotating(kind.project),
    )
    REGISTRY[kind.name] = kind
    return kind


def kinds() -> list[Kind]:
    """Every registered kind (importing the services that declare them first)."""
    from steward.services import datasets, packages, requests, shares  # noqa: F401 - they register

    return list(REGISTRY.values())


def by_workflow(name: str) -> Kind | None:
    return next((k for k in kinds() if k.workflow.name == name), None)
