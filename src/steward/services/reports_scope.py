"""Which requests (and which of their events) a report covers, and the transaction it reads in.

Every report starts from ``visible_query`` — the same permission check and filters as
``request list`` — and reads events (or kept change logs) only of those requests. When the
caller sees every request of some projects, the rows are picked by their own ``project_id``
instead of ``subject_id IN (visible requests)``: the indexes on events and change logs lead
with the project, so one project's rows come in index order (request by request, or state by
state) without a sort.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, false, select, text, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from steward.db import change_logs
from steward.db.models import AccessRequest, Event, Membership
from steward.db.session import Database
from steward.domain import requests as domain
from steward.services.access import require_user
from steward.services.kinds import Filter
from steward.services.requests import REQUEST, visible_query

OF_KIND = Event.subject_kind == domain.KIND
MOVES = change_logs.MOVES

WORK_MEM = "64MB"
"""PostgreSQL memory for one report's sorts and hashes (the 4 MB default spills a million
events to disk)."""

EVERY_PROJECT = None
"""``Scope.projects`` of a report over every project (an admin's, unfiltered)."""


@dataclass(frozen=True)
class Scope:
    visible: Select[Any]
    """The requests the report covers (``visible_query`` with the caller's filters)."""
    projects: tuple[str, ...] | None
    """When exact: the report covers every request of these projects (``None``: of every
    project)."""
    by_project: bool
    """Whether ``projects`` is exact; if not, requests are picked one by one (``visible``)."""

    @property
    def project(self) -> str | None:
        """Set when the report covers exactly every request of this one project."""
        if self.by_project and self.projects is not None and len(self.projects) == 1:
            return self.projects[0]
        return None

    def covers(self, project_id: Any, subject_id: Any) -> ColumnElement[bool]:
        """The covered requests, as a condition on a table's project and request columns."""
        if not self.by_project:
            return cast(
                ColumnElement[bool],
                subject_id.in_(self.visible.with_only_columns(AccessRequest.id)),
            )
        if self.projects is None:
            return true()
        if not self.projects:
            return false()
        if len(self.projects) == 1:
            return cast(ColumnElement[bool], project_id == self.projects[0])
        return cast(ColumnElement[bool], project_id.in_(self.projects))

    @property
    def on_events(self) -> ColumnElement[bool]:
        """The covered requests, as a condition on their events."""
        return self.covers(Event.project_id, Event.subject_id)


def _narrowed(flt: Filter) -> bool:
    """Whether any filter beyond the project narrows the requests (a filter's values are
    only the fields the kind declares, set: a new filter field cannot be forgotten here)."""
    return bool(flt.states or flt.values)


def _projects(s: Session, actor: str | None, flt: Filter) -> tuple[bool, tuple[str, ...] | None]:
    """Whether the visible requests are exactly every request of some projects, and which
    (``None``: every project).

    The same policy ``visible_query`` applies (the kind's declared ``Policy``): admins see
    every project; members see the whole of a project where they hold a reader role, and
    only their own requests where they hold only an owner's role.
    """
    if _narrowed(flt):
        return False, ()
    user = require_user(s, actor)
    if user.is_admin:
        return True, EVERY_PROJECT if flt.project is None else (flt.project,)
    memberships = s.execute(
        select(Membership.project_id, Membership.role).where(Membership.user_id == user.id)
    ).all()
    policy = REQUEST.policy
    see_all = {p for p, r in memberships if r in policy.readers}
    own_only = {p for p, r in memberships if r in policy.owner_readers} - see_all
    if flt.project is not None:
        if flt.project in see_all:
            return True, (flt.project,)
        return (False, ()) if flt.project in own_only else (True, ())
    if own_only:
        return False, ()
    return True, tuple(sorted(see_all))


def scope(s: Session, actor: str | None, flt: Filter) -> Scope:
    by_project, projects = _projects(s, actor, flt)
    return Scope(visible_query(s, actor, flt), projects, by_project)


@contextmanager
def reading(db: Database) -> Iterator[Session]:
    """A report's transaction, with room to sort in memory on PostgreSQL."""
    with db.read() as s:
        if db.dialect == "postgresql":
            s.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        yield s
