"""Sites: the biobanks and nodes that run analyses, and their analysts.

A site is not a project: its members are analysts (the site-scoped role), who will see the
federated tasks sent to their site and nothing of other sites. Administrators add sites and
members; administrators and project stewards (coordination staff) see every site; an analyst
sees the sites they belong to; anyone else sees none, and hears "no site" for any of them —
the same words as for an id that does not exist.

Adding a member who already is one, or removing one who is not, changes nothing: the answer
says so (``changed`` is false) and no audit entry is written, so scripts may run it again.
Every change is an :class:`~steward.db.models.AuditEntry`; every refusal too.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from steward.db.models import AuditEntry, Membership, Site, SiteMember, User
from steward.db.session import Database
from steward.domain.roles import Role
from steward.errors import Conflict, Detail, NotFound, ValidationFailed
from steward.services.access import audited, check_name, not_found, require_admin, require_user
from steward.timeutil import utcnow

KIND = "site"
ANALYST = Role.ANALYST.value
LONGEST_NAME = 200
LONGEST_DESCRIPTION = 2000


class SiteView(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime
    created_by: str
    member_count: int


class SiteMemberView(BaseModel):
    user: str
    display_name: str
    role: str
    added_at: datetime
    added_by: str


class SiteDetail(SiteView):
    members: list[SiteMemberView]


class MembershipChange(BaseModel):
    """What adding or removing a member did: whether the user is a member now, and whether
    this call changed that (false when it already was so)."""

    site: str
    user: str
    role: str
    member: bool
    changed: bool


def _audit(s: Session, actor: str, action: str, site_id: str, reason: str) -> None:
    s.add(
        AuditEntry(
            at=utcnow(),
            actor=actor,
            subject_kind=KIND,
            subject_id=site_id,
            action=action,
            outcome="done",
            reason=reason,
        )
    )


def refusals(
    db: Database, actor: str | None, action: str, site_id: str
) -> AbstractContextManager[None]:
    """Refusals of ``action`` on a site go to the audit log (see :func:`access.audited`)."""
    return audited(db, actor=actor, action=action, subject_kind=KIND, subject_id=site_id[:64])


def _is_staff(s: Session, user: User) -> bool:
    """Administrators, and stewards of any project: coordination staff, who see every site."""
    if user.is_admin:
        return True
    found = s.scalar(
        select(Membership.user_id)
        .where(Membership.user_id == user.id, Membership.role == Role.STEWARD.value)
        .limit(1)
    )
    return found is not None


def sites_of(session: Session, user: User | str) -> frozenset[str]:
    """The ids of the sites ``user`` belongs to (as an analyst): what scopes an analyst's view
    of federated work. Administrators get no sites from being administrators."""
    user_id = user if isinstance(user, str) else user.id
    return frozenset(
        session.scalars(select(SiteMember.site_id).where(SiteMember.user_id == user_id))
    )


def _counts(s: Session, site_ids: list[str]) -> dict[str, int]:
    if not site_ids:
        return {}
    rows = s.execute(
        select(SiteMember.site_id, func.count())
        .where(SiteMember.site_id.in_(site_ids))
        .group_by(SiteMember.site_id)
    ).all()
    return {site_id: int(n) for site_id, n in rows}


def _view(row: Site, members: int) -> SiteView:
    return SiteView(
        id=row.id,
        name=row.name,
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        member_count=members,
    )


def _check_text(name: str, description: str) -> None:
    problems = []
    if not name.strip():
        problems.append(Detail("empty", field="name", accepted="the site's name, e.g. Biobank"))
    elif len(name) > LONGEST_NAME:
        problems.append(
            Detail("too long", field="name", value=name[:40], accepted=f"{LONGEST_NAME} characters")
        )
    if len(description) > LONGEST_DESCRIPTION:
        problems.append(
            Detail(
                "too long",
                field="description",
                value=description[:40],
                accepted=f"{LONGEST_DESCRIPTION} characters",
            )
        )
    if problems:
        raise ValidationFailed("the site cannot be added", problems)


def add_site(
    db: Database, *, actor: str | None, site_id: str, name: str, description: str = ""
) -> SiteView:
    """A new site (administrators only). Adding the same site again with the same name and
    description changes nothing; with others it is refused (``Conflict``)."""
    check_name(site_id, KIND)
    name = name.strip()
    _check_text(name, description)
    with refusals(db, actor, "site-add", site_id), db.transaction() as s:
        me = require_user(s, actor)
        require_admin(me)
        existing = s.get(Site, site_id)
        if existing is not None:
            if (existing.name, existing.description) != (name, description):
                raise Conflict(
                    f"site {site_id!r} already exists, named {existing.name!r}",
                    [Detail("already exists", field="site", value=site_id)],
                )
            return _view(existing, _counts(s, [site_id]).get(site_id, 0))
        row = Site(
            id=site_id, name=name, description=description, created_at=utcnow(), created_by=me.id
        )
        s.add(row)
        _audit(s, me.id, "site-add", site_id, f"site {name!r}")
        s.flush()
        return _view(row, 0)


def list_sites(db: Database, *, actor: str | None) -> list[SiteView]:
    """Every site for administrators and stewards; an analyst's own sites; none for others."""
    with db.read() as s:
        me = require_user(s, actor)
        q = select(Site).order_by(Site.id)
        if not _is_staff(s, me):
            q = q.where(Site.id.in_(select(SiteMember.site_id).where(SiteMember.user_id == me.id)))
        rows = list(s.scalars(q))
        counts = _counts(s, [r.id for r in rows])
        return [_view(r, counts.get(r.id, 0)) for r in rows]


def _visible(s: Session, me: User, site_id: str) -> Site:
    """The site, if ``me`` may see it; otherwise "no site", the same words either way (the
    reason goes to the audit log)."""
    row = s.get(Site, site_id)
    if row is None:
        raise not_found(KIND, KIND, site_id)
    if not _is_staff(s, me) and site_id not in sites_of(s, me):
        raise not_found(KIND, KIND, site_id, reason=f"{me.id} is not a member of site {site_id}")
    return row


def show_site(db: Database, *, actor: str | None, site_id: str) -> SiteDetail:
    """A site and its members, for whoever may see it."""
    with refusals(db, actor, "site-show", site_id), db.read() as s:
        me = require_user(s, actor)
        row = _visible(s, me, site_id)
        members = [
            SiteMemberView(
                user=m.user_id,
                display_name=display,
                role=m.role,
                added_at=m.added_at,
                added_by=m.added_by,
            )
            for m, display in s.execute(
                select(SiteMember, User.display_name)
                .join(User, User.id == SiteMember.user_id)
                .where(SiteMember.site_id == site_id)
                .order_by(SiteMember.user_id)
            )
        ]
        return SiteDetail(**_view(row, len(members)).model_dump(), members=members)


def _target(s: Session, site_id: str, user_id: str) -> tuple[Site, User]:
    site = s.get(Site, site_id)
    if site is None:
        raise not_found(KIND, KIND, site_id)
    user = s.get(User, user_id)
    if user is None:
        raise NotFound(
            f"no user {user_id!r}; add it first with `steward user add {user_id}`",
            [Detail("unknown user", field="user", value=user_id)],
        )
    return site, user


def add_member(db: Database, *, actor: str | None, site_id: str, user_id: str) -> MembershipChange:
    """Make a user an analyst of a site (administrators only); already one: nothing changes."""
    check_name(site_id, KIND)
    check_name(user_id, "user")
    with refusals(db, actor, "site-member-add", site_id), db.transaction() as s:
        me = require_user(s, actor)
        require_admin(me)
        _target(s, site_id, user_id)
        existing = s.get(SiteMember, (site_id, user_id))
        if existing is not None:
            return MembershipChange(
                site=site_id, user=user_id, role=existing.role, member=True, changed=False
            )
        s.add(
            SiteMember(
                site_id=site_id, user_id=user_id, role=ANALYST, added_at=utcnow(), added_by=me.id
            )
        )
        _audit(s, me.id, "site-member-add", site_id, f"{user_id} added as {ANALYST}")
        s.flush()
        return MembershipChange(site=site_id, user=user_id, role=ANALYST, member=True, changed=True)


def remove_member(
    db: Database, *, actor: str | None, site_id: str, user_id: str
) -> MembershipChange:
    """Take a user off a site (administrators only); not a member: nothing changes."""
    check_name(site_id, KIND)
    check_name(user_id, "user")
    with refusals(db, actor, "site-member-remove", site_id), db.transaction() as s:
        me = require_user(s, actor)
        require_admin(me)
        _target(s, site_id, user_id)
        existing = s.get(SiteMember, (site_id, user_id))
        if existing is None:
            return MembershipChange(
                site=site_id, user=user_id, role=ANALYST, member=False, changed=False
            )
        role = existing.role
        s.delete(existing)
        _audit(s, me.id, "site-member-remove", site_id, f"{user_id} removed ({role})")
        s.flush()
        return MembershipChange(site=site_id, user=user_id, role=role, member=False, changed=True)
