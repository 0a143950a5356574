"""Which requests (and which of their events) a report covers, and the transaction it reads in.

Every report starts from ``visible_query`` — the same permission check and filters as
``request list`` — and reads events only of those requests. When the caller sees every request
of one project, the events are picked by their own ``project_id`` instead of
``subject_id IN (visible requests)``: the indexes on events lead with the project, so one
project's events come in index order (request by request, or state by state) without a sort.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, false, select, text, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from steward.db.models import AccessRequest, Event, Membership
from steward.db.session import Database
from steward.domain import requests as domain
from steward.domain.roles import Role
from steward.services.access import require_user
from steward.services.requests import RequestFilter, visible_query

OF_KIND = Event.subject_kind == domain.KIND
MOVES = (Event.from_state.is_(None)) | (Event.from_state != Event.to_state)
"""Events that change state: the creation and every transition (not comments, edits…)."""

WORK_MEM = "64MB"
"""PostgreSQL memory for one report's sorts and hashes (the 4 MB default spills a million
events to disk)."""


@dataclass(frozen=True)
class Scope:
    visible: Select[Any]
    """The requests the report covers (``visible_query`` with the caller's filters)."""
    on_events: ColumnElement[bool]
    """The same requests, as a condition on their events."""
    project: str | None
    """Set when the report covers exactly every request of this one project."""


def _narrowed(flt: RequestFilter) -> bool:
    return bool(
        flt.states
        or flt.requester
        or flt.reviewer
        or flt.created_from
        or flt.created_to
        or flt.decided_from
        or flt.decided_to
    )


def _by_project(
    s: Session, actor: str | None, flt: RequestFilter
) -> tuple[ColumnElement[bool], str | None] | None:
    """The visible requests as a condition on their events' project, when that is exact.

    Mirrors ``visible_query``: admins see every project; other members see the whole of a
    project where they hold any role but requester, and only their own requests elsewhere.
    """
    if _narrowed(flt):
        return None
    user = require_user(s, actor)
    if user.is_admin:
        if flt.project is None:
            return true(), None
        return Event.project_id == flt.project, flt.project
    memberships = s.execute(
        select(Membership.project_id, Membership.role).where(Membership.user_id == user.id)
    ).all()
    see_all = {p for p, r in memberships if r != Role.REQUESTER.value}
    own_only = {p for p, _ in memberships} - see_all
    if flt.project is not None:
        if flt.project in see_all:
            return Event.project_id == flt.project, flt.project
        return None if flt.project in own_only else (false(), None)
    if own_only:
        return None
    if len(see_all) == 1:
        (only,) = see_all
        return Event.project_id == only, only
    return Event.project_id.in_(sorted(see_all)), None


def scope(s: Session, actor: str | None, flt: RequestFilter) -> Scope:
    visible: Select[Any] = visible_query(s, actor, flt)
    found = _by_project(s, actor, flt)
    if found is None:
        on_events: ColumnElement[bool] = Event.subject_id.in_(
            visible.with_only_columns(AccessRequest.id)
        )
        return Scope(visible, on_events, None)
    return Scope(visible, found[0], found[1])


@contextmanager
def reading(db: Database) -> Iterator[Session]:
    """A report's transaction, with room to sort in memory on PostgreSQL."""
    with db.transaction() as s:
        if db.dialect == "postgresql":
            s.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        yield s
