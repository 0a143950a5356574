"""Who is who: users, projects, memberships, role look-ups and the audit of refusals."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from steward.db.models import AuditEntry, Membership, Project, User
from steward.db.session import Database
from steward.domain.roles import ALL_ROLES, Role
from steward.errors import (
    Concealed,
    Conflict,
    DatabaseBusy,
    Detail,
    Forbidden,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from steward.timeutil import utcnow

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_NAME_RULE = "1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_name(value: str, field: str) -> str:
    if not _NAME.match(value):
        raise ValidationFailed(
            f"{field} {value!r} is not a valid name",
            [Detail("invalid name", field=field, value=value, accepted=_NAME_RULE)],
        )
    return value


class UserView(BaseModel):
    id: str
    display_name: str
    email: str
    is_admin: bool
    has_password: bool = False
    """Whether they can sign in to the server with a password (`steward user passwd`)."""
    disabled_at: datetime | None = None
    """When an administrator disabled them (`steward user disable`); None while enabled."""


class MemberView(BaseModel):
    user: str
    roles: list[str]


_WITHOUT_ADMIN: ContextVar[bool] = ContextVar("steward_without_admin", default=False)


@contextmanager
def without_admin(narrowed: bool = True) -> Iterator[None]:
    """Within this block an administrator acts as an ordinary member of their projects: what
    an API token without the ``admin`` scope may do, whoever holds it."""
    token = _WITHOUT_ADMIN.set(narrowed)
    try:
        yield
    finally:
        _WITHOUT_ADMIN.reset(token)


def require_user(session: Session, user_id: str | None) -> User:
    if not user_id:
        raise Unauthenticated(
            "say who you are: pass --as USER or set STEWARD_USER",
            [Detail("no user given", field="STEWARD_USER")],
        )
    user = session.get(User, user_id)
    if user is None:
        if session.scalar(select(User.id).limit(1)) is None:
            raise Unauthenticated(
                f"unknown user {user_id!r}: this Steward has no users yet; run "
                f"`steward init --admin {user_id}` first",
                [Detail("no users yet", field="user", value=user_id)],
            )
        raise Unauthenticated(
            f"unknown user {user_id!r}; an admin can add it with `steward user add {user_id}`",
            [Detail("unknown user", field="user", value=user_id)],
        )
    if user.disabled_at is not None:
        raise Unauthenticated(
            f"user {user_id!r} is disabled; an administrator can enable it with "
            f"`steward user enable {user_id}`",
            [Detail("disabled user", field="user", value=user_id)],
        )
    if user.is_admin and _WITHOUT_ADMIN.get():
        # A detached copy: the stored user stays an administrator, nothing is written.
        return User(id=user.id, display_name=user.display_name, email=user.email,
                    is_admin=False, created_at=user.created_at)  # fmt: skip
    return user


def hold_caller(session: Session, user: User) -> None:
    """Keep a caller loaded with their credentials in ``session``, so :func:`require_user`
    in the same read finds them without asking the database again (the identity map holds
    objects weakly: unreferenced, they would be gone)."""
    session.info.setdefault("callers", []).append(user)


def touch(db: Database, model: Any, row_id: str, column: str, now: datetime) -> None:
    """Record when a token or session was last used — bookkeeping only: a busy database must
    not turn a read into a refusal."""
    try:
        with db.transaction() as s:
            row = s.get(model, row_id)
            if row is not None:
                setattr(row, column, now)
    except (DatabaseBusy, Conflict):
        pass


def not_found(what: str, field: str, ident: str, *, reason: str | None = None) -> NotFound:
    """What a caller hears of a thing that does not exist *or* that they may not see: the same
    words either way, so probing ids tells a stranger neither that it exists nor who owns it.
    ``reason`` (why it is hidden) goes to the audit log only."""
    message = f"no {what} {ident!r}"
    details = [Detail(f"unknown {field}", field=field, value=ident)]
    if reason is None:
        return NotFound(message, details)
    return Concealed(message, details, reason=reason)


class _Subject(Protocol):
    id: str
    project_id: str


S = TypeVar("S", bound=_Subject)


def load_visible(
    session: Session,
    actor: str | None,
    model: type[S],
    subject_id: str,
    *,
    what: str,
    field: str,
    hidden: Callable[[User, frozenset[str], S], str | None],
) -> tuple[S, User, frozenset[str]]:
    """A subject, its caller and the caller's roles in its project — if the caller may see it.

    Someone outside the project, or whom ``hidden`` turns away (it returns why), hears the
    same "not found" as for an id that does not exist; the audit log gets the reason.
    """
    user = require_user(session, actor)
    row = session.get(model, subject_id)
    if row is None:
        raise not_found(what, field, subject_id)
    roles = roles_in(session, user, row.project_id)
    reason = f"{user.id} is not a member of {row.project_id}" if not roles else None
    reason = reason or hidden(user, roles, row)
    if reason is not None:
        raise not_found(what, field, subject_id, reason=reason)
    return row, user, roles


def require_visible_project(session: Session, user: User, project_id: str) -> None:
    """A project named as a filter must exist and be the caller's (or the caller an admin);
    otherwise "no project", the same words either way, rather than a silent empty list."""
    if session.get(Project, project_id) is None or not roles_in(session, user, project_id):
        raise NotFound(
            f"no project {project_id!r}",
            [
                Detail(
                    "unknown project",
                    field="project",
                    value=project_id,
                    accepted="your projects (`steward project list`)",
                )
            ],
        )


def require_project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(
            f"no project {project_id!r}",
            [Detail("unknown project", field="project", value=project_id)],
        )
    return project


_ROLES = select(Membership.role).where(
    Membership.project_id == bindparam("project_id"), Membership.user_id == bindparam("user_id")
)
"""Built once: every call that looks at a subject asks it."""


def roles_in(session: Session, user: User, project_id: str) -> frozenset[str]:
    roles = set(session.scalars(_ROLES, {"project_id": project_id, "user_id": user.id}))
    if user.is_admin:
        roles.add(Role.ADMIN.value)
    return frozenset(roles)


def require_member(session: Session, user: User, project_id: str) -> frozenset[str]:
    """The caller's roles in a project; to anyone outside it the project does not exist (the
    same words as for an unknown id; the audit log keeps why)."""
    require_project(session, project_id)
    roles = roles_in(session, user, project_id)
    if not roles:
        raise not_found(
            "project", "project", project_id, reason=f"{user.id} is not a member of {project_id}"
        )
    return roles


def require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden(
            f"{user.id} is not an administrator",
            [Detail("administrators only", field="user", value=user.id)],
        )


@contextmanager
def audited(
    db: Database,
    *,
    actor: str | None,
    action: str,
    project_id: str | None = None,
    subject_kind: str | None = None,
    subject_id: str | None = None,
) -> Iterator[None]:
    """Record a refusal in the audit log, in its own transaction, then let it propagate."""
    try:
        yield
    except (Forbidden, Concealed) as exc:
        reason = exc.reason if isinstance(exc, Concealed) else exc.message
        with db.transaction() as s:
            s.add(
                AuditEntry(
                    at=utcnow(),
                    actor=actor or "",
                    project_id=project_id,
                    subject_kind=subject_kind,
                    subject_id=subject_id,
                    action=action,
                    outcome="denied",
                    reason=reason,
                )
            )
        raise


def bootstrap_admin(db: Database, *, user_id: str) -> bool:
    """Create the first administrator when there are no users yet; True when created."""
    from steward.errors import Conflict  # a duplicate insert, as the transaction reports it

    check_name(user_id, "user")
    try:
        with db.transaction() as s:
            if s.scalars(select(User.id).limit(1)).first() is not None:
                return False
            s.add(
                User(id=user_id, display_name=user_id, email="", is_admin=True, created_at=utcnow())
            )
            s.flush()
            return True
    except (IntegrityError, Conflict):
        return False  # another process created the same first user at the same moment


def add_user(
    db: Database,
    *,
    actor: str | None,
    user_id: str,
    display_name: str = "",
    email: str = "",
    admin: bool = False,
) -> UserView:
    check_name(user_id, "user")
    with db.transaction() as s:
        require_admin(require_user(s, actor))
        existing = s.get(User, user_id)
        if existing is None:
            existing = User(
                id=user_id,
                display_name=display_name or user_id,
                email=email,
                is_admin=admin,
                created_at=utcnow(),
            )
            s.add(existing)
        else:
            existing.display_name = display_name or existing.display_name
            existing.email = email or existing.email
            existing.is_admin = existing.is_admin or admin
        return UserView.model_validate(existing, from_attributes=True)


def list_users(db: Database, *, actor: str | None) -> list[UserView]:
    with db.read() as s:
        require_user(s, actor)
        return [
            UserView.model_validate(u, from_attributes=True)
            for u in s.scalars(select(User).order_by(User.id))
        ]


def create_project(db: Database, *, actor: str | None, project_id: str, title: str = "") -> str:
    check_name(project_id, "project")
    with db.transaction() as s:
        user = require_user(s, actor)
        require_admin(user)
        if s.get(Project, project_id) is None:
            s.add(Project(id=project_id, title=title or project_id, created_at=utcnow()))
            s.flush()
            s.add(Membership(project_id=project_id, user_id=user.id, role=Role.STEWARD.value))
        return project_id


def add_member(
    db: Database, *, actor: str | None, project_id: str, user_id: str, role: str
) -> MemberView:
    if role not in ALL_ROLES:
        raise ValidationFailed(
            f"unknown role {role!r}",
            [
                Detail(
                    "unknown role", field="role", value=role, accepted=", ".join(sorted(ALL_ROLES))
                )
            ],
        )
    with db.transaction() as s:
        user = require_user(s, actor)
        if user.is_admin:
            require_project(s, project_id)
            roles: frozenset[str] = frozenset({Role.ADMIN.value})
        else:
            roles = require_member(s, user, project_id)
        if not roles & {Role.ADMIN.value, Role.STEWARD.value}:
            raise Forbidden(
                f"{user.id} may not manage members of {project_id}",
                [Detail("needs steward or admin", field="role")],
            )
        target = s.get(User, user_id)
        if target is None:
            raise NotFound(
                f"no user {user_id!r}; add it first with `steward user add {user_id}`",
                [Detail("unknown user", field="user", value=user_id)],
            )
        if s.get(Membership, (project_id, user_id, role)) is None:
            s.add(Membership(project_id=project_id, user_id=user_id, role=role))
        s.flush()
        return MemberView(user=user_id, roles=sorted(roles_in(s, target, project_id)))


def list_members(db: Database, *, actor: str | None, project_id: str) -> list[MemberView]:
    with db.read() as s:
        user = require_user(s, actor)
        if not user.is_admin:
            require_member(s, user, project_id)
        else:
            require_project(s, project_id)
        rows = s.execute(
            select(Membership.user_id, Membership.role)
            .where(Membership.project_id == project_id)
            .order_by(Membership.user_id, Membership.role)
        ).all()
    grouped: dict[str, list[str]] = {}
    for uid, role in rows:
        grouped.setdefault(uid, []).append(role)
    return [MemberView(user=u, roles=r) for u, r in grouped.items()]


def list_projects(db: Database, *, actor: str | None) -> list[tuple[str, str]]:
    with db.read() as s:
        user = require_user(s, actor)
        q = select(Project.id, Project.title).order_by(Project.id)
        if not user.is_admin:
            q = q.where(
                Project.id.in_(select(Membership.project_id).where(Membership.user_id == user.id))
            )
        return [(pid, title) for pid, title in s.execute(q)]


class ProjectSummary(BaseModel):
    id: str
    title: str


class ProjectView(BaseModel):
    """A project with its members and their roles."""

    id: str
    title: str
    created_at: datetime
    members: list[MemberView]


def get_project(db: Database, *, actor: str | None, project_id: str) -> ProjectView:
    """A project the caller belongs to (any project, for administrators); to anyone else it
    does not exist."""
    with (
        audited(
            db, actor=actor, action="project", subject_kind="project", subject_id=project_id[:64]
        ),
        db.read() as s,
    ):
        user = require_user(s, actor)
        project = s.get(Project, project_id)
        if project is None:
            raise not_found("project", "project", project_id)
        if not roles_in(s, user, project_id):
            raise not_found("project", "project", project_id, reason=f"{user.id} is not a member")
        members = list_members(db, actor=actor, project_id=project_id)
        return ProjectView(
            id=project.id, title=project.title, created_at=project.created_at, members=members
        )


def visible_users(db: Database, *, actor: str | None) -> list[UserView]:
    """Every user for administrators; anyone else sees only themselves."""
    with db.read() as s:
        me = require_user(s, actor)
        if not me.is_admin:  # as stored (an administrator's read token narrows only powers)
            return [UserView.model_validate(s.get(User, me.id), from_attributes=True)]
        return [
            UserView.model_validate(u, from_attributes=True)
            for u in s.scalars(select(User).order_by(User.id))
        ]


def get_user(db: Database, *, actor: str | None, user_id: str) -> UserView:
    """One user, to themselves and administrators; to anyone else it does not exist."""
    with (
        audited(db, actor=actor, action="user", subject_kind="user", subject_id=user_id[:64]),
        db.read() as s,
    ):
        me = require_user(s, actor)
        found = s.get(User, user_id)
        if found is None:
            raise not_found("user", "user", user_id)
        if found.id != me.id and not me.is_admin:
            raise not_found("user", "user", user_id, reason=f"{me.id} may not see other users")
        return UserView.model_validate(found, from_attributes=True)
