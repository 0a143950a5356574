"""Generic use cases over every registered kind: get, list, history and act.

One command path: load → authorise (may the caller see it? may they issue this command now?)
→ validate the typed payload → decide (pure) → project and append the event (ledger) — one
transaction, refusals audited. Kind-specific services are thin typed wrappers around these.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from steward.db.models import Event, Membership
from steward.db.session import Database
from steward.domain.roles import STAFF
from steward.domain.workflow import Context
from steward.errors import Detail, Forbidden, ValidationFailed
from steward.services import ledger
from steward.services.access import (
    audited,
    load_visible,
    require_user,
    require_visible_project,
)
from steward.services.kinds import Filter, Kind, Step
from steward.services.timeline import History, check_filter, history, within
from steward.timeutil import utcnow


@dataclass(frozen=True)
class Found:
    """A subject the caller may see, with the caller's context and its history."""

    row: Any
    ctx: Context
    history: History
    allowed_actions: list[str]
    extra: Any = None


def visible(
    session: Session, kind: Kind, actor: str | None, subject_id: str
) -> tuple[Any, Context]:
    """The subject and the caller's context — or "not found", also when they may not see it."""
    row, user, roles = load_visible(
        session,
        actor,
        kind.model,
        subject_id,
        what=kind.label,
        field=kind.id_field,
        hidden=kind.policy.hidden,
    )
    return row, context(kind, user.id, roles, row)


def context(kind: Kind, actor: str, roles: frozenset[str], row: Any) -> Context:
    """What a decision may look at: the actor, their roles, and the subject's relationships."""
    subject = {name: getattr(row, name) for name in kind.facts}
    return Context(actor=actor, roles=roles, subject=subject)


def get(
    db: Database,
    kind: Kind,
    *,
    actor: str | None,
    subject_id: str,
    now: datetime | None = None,
    extra: Callable[[Session, Any], Any] | None = None,
) -> Found:
    """A visible subject with its history; ``extra`` reads more in the same snapshot."""
    now = now or utcnow()
    with (
        audited(db, actor=actor, action="show", subject_kind=kind.name, subject_id=subject_id),
        db.read() as s,
    ):
        row, ctx = visible(s, kind, actor, subject_id)
        return Found(
            row=row,
            ctx=ctx,
            history=history(s, workflow=kind.workflow, row=row, now=now),
            allowed_actions=[
                c for c in kind.workflow.available(row.state, ctx) if not kind.commands[c].internal
            ],
            extra=extra(s, row) if extra is not None else None,
        )


def history_of(
    db: Database, kind: Kind, *, actor: str | None, subject_id: str, now: datetime | None = None
) -> History:
    """A visible subject's timeline and the time it spent in each state."""
    return get(db, kind, actor=actor, subject_id=subject_id, now=now).history


def check(kind: Kind, flt: Filter) -> None:
    """Every problem of a list filter at once: unknown states or choices, ranges that end
    before they start, times without a zone, a negative limit."""
    problems = []
    limit = flt.limit
    if limit is not None and limit < 0:
        problems.append(
            Detail("negative", field="limit", value=str(limit), accepted="0 (all) or more")
        )
    choices = {
        **kind.filters.choices,
        **{n: c.accepted for n, c in kind.filters.conditions.items() if c.accepted},
    }
    for name, allowed in choices.items():
        value = flt.value(name)
        if value and value not in allowed:
            problems.append(
                Detail(f"unknown {name}", field=name, value=value, accepted=", ".join(allowed))
            )
    if problems:
        raise ValidationFailed("the filters are not valid", problems)
    check_filter(
        kind.workflow,
        flt.states,
        {r: (flt.value(f"{r}_from"), flt.value(f"{r}_to")) for r in kind.filters.ranges},
    )


def visible_query(s: Session, kind: Kind, actor: str | None, flt: Filter) -> Select[Any]:
    """The subjects ``actor`` may see that match ``flt``: for lists and reports alike."""
    check(kind, flt)
    user = require_user(s, actor)
    model = kind.model
    q = select(model)
    rule = kind.policy.visible(model, user)
    if rule is not None:
        q = q.where(rule)
    if flt.project:
        require_visible_project(s, user, flt.project)
        q = q.where(model.project_id == flt.project)
    if flt.states:
        q = q.where(model.state.in_(list(flt.states)))
    for name, column in kind.filters.equals.items():
        value = flt.value(name)
        if value:
            q = q.where(getattr(model, column) == value)
    for name in kind.filters.choices:
        value = flt.value(name)
        if value:
            q = q.where(getattr(model, name) == value)
    for name, column in kind.filters.contains.items():
        value = flt.value(name)
        if value:
            q = q.where(getattr(model, column).contains(value, autoescape=True))
    for name, condition in kind.filters.conditions.items():
        value = flt.value(name)
        if value:
            q = q.where(condition.where(value))
    for name, column in kind.filters.ranges.items():
        col = getattr(model, column)
        q = q.where(*within(col, flt.value(f"{name}_from"), flt.value(f"{name}_to")))
    return q


def list_(
    db: Database, kind: Kind, *, actor: str | None, flt: Filter, sort: str = "created"
) -> list[Any]:
    """Views of the visible subjects matching ``flt`` in ``sort`` order (oldest first by
    default; ``-`` reverses), at most ``flt.limit``."""
    column, descending = _sort(sort)
    key, ident = getattr(kind.model, column), kind.model.id
    order = (key.desc(), ident.desc()) if descending else (key.asc(), ident.asc())
    with db.read() as s:
        q = visible_query(s, kind, actor, flt).order_by(*order)
        if flt.limit:
            q = q.limit(flt.limit)
        return [kind.view_of(r) for r in s.scalars(q)]


def payload_of(kind: Kind, command: str, payload: Mapping[str, Any] | Any) -> Any:
    """The command's typed payload; every field problem at once, with its path."""
    spec = kind.commands[command]  # the registry's contract test: every command has one
    if isinstance(payload, spec.payload):
        return payload
    try:
        return spec.payload.model_validate(dict(payload or {}))
    except ValidationError as exc:
        raise ValidationFailed(
            f"the {command} command's input is not valid",
            [
                Detail(
                    e["msg"],
                    field=".".join(str(p) for p in e["loc"]) or None,
                    value=None if isinstance(e.get("input"), dict) else str(e.get("input")),
                )
                for e in exc.errors()
            ],
        ) from None


def apply(
    s: Session,
    kind: Kind,
    row: Any,
    ctx: Context,
    command: str,
    payload: Mapping[str, Any] | Any = None,
    *,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> Event:
    """One command on a loaded, visible subject inside the caller's transaction.

    A repeated idempotency key returns the first send's event before anything else is
    judged; a stale version conflicts before any verdict on the new state; then the
    decision (may this caller do this now?) comes before the payload is looked at, so a
    refusal never depends on what was sent.
    """
    prior = ledger.replayed(
        s, kind=kind, subject_id=row.id, command=command, idempotency_key=idempotency_key
    )
    if prior is not None:
        return prior
    ledger.check_version(row, expected_version)
    kind.workflow.decide(command, row.state, ctx)
    typed = payload_of(kind, command, payload)
    data = kind.commands[command].handle(Step(command, s, row, ctx, at), typed)
    return ledger.record(
        s,
        kind=kind,
        row=row,
        command=command,
        ctx=ctx,
        data=data,
        at=at,
        idempotency_key=idempotency_key,
        expected_version=expected_version,
    )


def act(
    db: Database,
    kind: Kind,
    *,
    actor: str | None,
    subject_id: str,
    command: str,
    payload: Mapping[str, Any] | Any = None,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    at: datetime | None = None,
    before: Callable[[Any], None] | None = None,
) -> Any:
    """``act(kind, id, command, payload, actor, key, version)`` for every kind; answers the
    subject's view afterwards (for a repeated key: as the first send left it). ``before``
    sees the loaded row first (what a command's after-commit work needs to know)."""
    with db.read() as s:
        project_id = s.scalar(select(kind.model.project_id).where(kind.model.id == subject_id))
    with (
        audited(
            db,
            actor=actor,
            action=command,
            project_id=project_id,
            subject_kind=kind.name,
            subject_id=subject_id,
        ),
        db.transaction() as s,
    ):
        row, ctx = visible(s, kind, actor, subject_id)
        if before is not None:
            before(row)
        event = apply(
            s,
            kind,
            row,
            ctx,
            command,
            payload,
            idempotency_key=idempotency_key,
            expected_version=expected_version,
            at=at,
        )
        s.refresh(row)
        return kind.result(s, row, event)


def due(
    db: Database,
    kind: Kind,
    *,
    actor: str | None,
    state: str,
    column: str,
    now: datetime | None = None,
) -> list[str]:
    """Ids of ``kind``'s subjects in ``state`` whose ``column`` time has passed, in the
    projects ``actor`` coordinates (all for an admin): what a scheduled expiry works through.

    Someone who coordinates no project is refused (for every kind alike), so a misconfigured
    schedule fails loudly instead of silently doing nothing.
    """
    now = now or utcnow()
    model = kind.model
    with (
        audited(db, actor=actor, action="expire", subject_kind=kind.name),
        db.read() as s,
    ):
        user = require_user(s, actor)
        q = select(model.id).where(model.state == state, getattr(model, column) <= now)
        if not user.is_admin:
            staff_of = sorted(
                s.scalars(
                    select(Membership.project_id).where(
                        Membership.user_id == user.id, Membership.role.in_(sorted(STAFF))
                    )
                )
            )
            if not staff_of:
                raise Forbidden(
                    f"{user.id} may not expire {kind.label}s: that needs the steward or admin role",
                    [Detail("needs steward or admin", field="role")],
                )
            q = q.where(model.project_id.in_(staff_of))
        return list(s.scalars(q.order_by(getattr(model, column), model.id)))


SORTS = {
    "created": "created_at",
    "updated": "updated_at",
    "since": "state_since",
    "state": "state",
    "id": "id",
}
"""What lists may be sorted by: columns every kind has and none leaves empty, so a cursor
(the last row's value and id) always names a place in the order."""


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, how many match in all, and the cursor of the next page
    (``None`` on the last)."""

    items: list[Any]
    total: int
    next: str | None


def _sort(sort: str) -> tuple[str, bool]:
    name, descending = sort.removeprefix("-"), sort.startswith("-")
    if name not in SORTS:
        accepted = ", ".join([*SORTS, *(f"-{s}" for s in SORTS)])
        raise ValidationFailed(
            f"cannot sort by {sort!r}",
            [Detail("unknown sort", field="sort", value=sort, accepted=accepted)],
        )
    return SORTS[name], descending


def _cursor(value: Any, ident: str) -> str:
    raw = json.dumps([value.isoformat() if isinstance(value, datetime) else value, ident])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _uncursor(text: str, column: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value, ident = json.loads(raw)
        # Only what this list gives out: text, and for times an ISO time with its zone (a
        # hand-made cursor must not reach the database as a value of another type).
        if not isinstance(ident, str) or not isinstance(value, str):
            raise ValueError(ident)
        if column.endswith("_at") or column == "state_since":
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise ValueError(value)
        return value, ident
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed(
            "the cursor is not one this list gave out",
            [Detail("unknown cursor", field="after", value=text[:80])],
        ) from None


def page(
    db: Database,
    kind: Kind,
    *,
    actor: str | None,
    flt: Filter,
    sort: str = "created",
    after: str | None = None,
    limit: int = 50,
) -> Page:
    """A page of the visible subjects matching ``flt``, in ``sort`` order (``-`` for newest
    first), after the ``after`` cursor. Keyset pagination on (sort value, id): rows written
    between two pages neither repeat nor push others off, as offsets would."""
    column, descending = _sort(sort)
    if limit < 1:
        raise ValidationFailed(
            "a page holds at least one row",
            [Detail("too small", field="limit", value=str(limit), accepted="1 or more")],
        )
    model = kind.model
    key, ident = getattr(model, column), model.id
    with db.read() as s:
        q = visible_query(s, kind, actor, flt)
        total = int(s.scalar(select(func.count()).select_from(q.subquery())) or 0)
        if after:
            value, last = _uncursor(after, column)
            later = (
                (key < value) | ((key == value) & (ident < last))
                if descending
                else ((key > value) | ((key == value) & (ident > last)))
            )
            q = q.where(later)
        order = (key.desc(), ident.desc()) if descending else (key.asc(), ident.asc())
        rows = list(s.scalars(q.order_by(*order).limit(limit + 1)))
    more, rows = len(rows) > limit, rows[:limit]
    nxt = _cursor(getattr(rows[-1], column), rows[-1].id) if more else None
    return Page([kind.view_of(r) for r in rows], total, nxt)
