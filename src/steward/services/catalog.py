"""Access requirements and the project's folder tree they govern (the seed's folder report)."""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.db.models import AccessRequirement, Folder
from steward.db.session import Database
from steward.domain.roles import STAFF
from steward.errors import Detail, Forbidden, NotFound, ValidationFailed
from steward.ids import new_id
from steward.services.access import audited, require_member, require_user
from steward.timeutil import utcnow

KINDS = ("controlled", "click-wrap")


class RequirementView(BaseModel):
    id: str
    project_id: str
    name: str
    kind: str
    description: str
    folders: list[str]


class TreeNode(BaseModel):
    name: str
    path: str
    requirement: str | None
    requirement_kind: str | None
    inherited: bool
    children: list[TreeNode]


def normalise_path(path: str) -> str:
    """Folder paths are relative, '/'-separated and may not climb out of the project."""
    absolute = path.strip().startswith("/")
    raw = path.strip().strip("/")
    parts = PurePosixPath(raw).parts
    if absolute or not raw or any(p in ("..", ".") for p in parts) or "\\" in raw or "\x00" in raw:
        raise ValidationFailed(
            f"bad folder path {path!r}",
            [
                Detail(
                    "invalid path",
                    field="path",
                    value=path,
                    accepted="relative paths like raw/wgs, without '..'",
                )
            ],
        )
    return "/".join(parts)


def _staff(db_session: Session, actor: str | None, project: str) -> None:
    user = require_user(db_session, actor)
    roles = require_member(db_session, user, project)
    if not roles & STAFF:
        raise Forbidden(
            f"{user.id} may not change access requirements of {project}",
            [Detail("needs steward or admin", field="role")],
        )


def add_requirement(
    db: Database,
    *,
    actor: str | None,
    project: str,
    name: str,
    kind: str,
    description: str = "",
    folders: list[str] | None = None,
) -> RequirementView:
    if kind not in KINDS:
        raise ValidationFailed(
            f"unknown access requirement kind {kind!r}",
            [Detail("unknown kind", field="kind", value=kind, accepted=", ".join(KINDS))],
        )
    if not name.strip():
        raise ValidationFailed("a requirement needs a name", [Detail("required", field="name")])
    paths = [normalise_path(f) for f in folders or []]
    with (
        audited(db, actor=actor, action="add-requirement", project_id=project),
        db.transaction() as s,
    ):
        _staff(s, actor, project)
        req = s.scalars(
            select(AccessRequirement).where(
                AccessRequirement.project_id == project, AccessRequirement.name == name
            )
        ).first()
        if req is None:
            req = AccessRequirement(
                id=new_id("requirement"),
                project_id=project,
                name=name,
                kind=kind,
                description=description,
                created_at=utcnow(),
            )
            s.add(req)
            s.flush()
        else:
            req.kind, req.description = kind, description or req.description
        for p in paths:
            _put_folder(s, project, p, req.id)
        s.flush()
        return _req_view(s, req)


def add_folder(
    db: Database, *, actor: str | None, project: str, path: str, requirement: str | None = None
) -> str:
    clean = normalise_path(path)
    with (
        audited(db, actor=actor, action="add-folder", project_id=project),
        db.transaction() as s,
    ):
        _staff(s, actor, project)
        req_id = None
        if requirement:
            req = s.scalars(
                select(AccessRequirement).where(
                    AccessRequirement.project_id == project, AccessRequirement.name == requirement
                )
            ).first()
            if req is None:
                raise NotFound(
                    f"no access requirement {requirement!r} in {project}",
                    [Detail("unknown requirement", field="requirement", value=requirement)],
                )
            req_id = req.id
        _put_folder(s, project, clean, req_id)
        return clean


def _put_folder(s: Session, project: str, path: str, req_id: str | None) -> None:
    # Parents exist implicitly so the tree is always connected.
    parts = path.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if s.get(Folder, (project, parent)) is None:
            s.add(Folder(project_id=project, path=parent, requirement_id=None))
    folder = s.get(Folder, (project, path))
    if folder is None:
        s.add(Folder(project_id=project, path=path, requirement_id=req_id))
    elif req_id is not None:
        folder.requirement_id = req_id
    s.flush()


def _req_view(s: Session, req: AccessRequirement) -> RequirementView:
    folders = sorted(s.scalars(select(Folder.path).where(Folder.requirement_id == req.id)))
    return RequirementView(
        id=req.id,
        project_id=req.project_id,
        name=req.name,
        kind=req.kind,
        description=req.description,
        folders=folders,
    )


def list_requirements(db: Database, *, actor: str | None, project: str) -> list[RequirementView]:
    with (
        audited(db, actor=actor, action="list-requirements", project_id=project),
        db.read() as s,
    ):
        require_member(s, require_user(s, actor), project)
        reqs = s.scalars(
            select(AccessRequirement)
            .where(AccessRequirement.project_id == project)
            .order_by(AccessRequirement.name)
        )
        return [_req_view(s, r) for r in reqs]


def tree(db: Database, *, actor: str | None, project: str) -> TreeNode:
    """The project's folders with the requirement that governs each (own or inherited)."""
    with (
        audited(db, actor=actor, action="tree", project_id=project),
        db.read() as s,
    ):
        require_member(s, require_user(s, actor), project)
        reqs = {
            r.id: r
            for r in s.scalars(
                select(AccessRequirement).where(AccessRequirement.project_id == project)
            )
        }
        folders = {
            f.path: f.requirement_id
            for f in s.scalars(select(Folder).where(Folder.project_id == project))
        }
    root = TreeNode(
        name=project, path="", requirement=None, requirement_kind=None, inherited=False, children=[]
    )
    nodes: dict[str, TreeNode] = {"": root}
    for path in sorted(folders, key=lambda p: (p.count("/"), p)):
        parent_path = path.rsplit("/", 1)[0] if "/" in path else ""
        parent = nodes[parent_path]
        own = folders[path]
        if own is not None:
            req = reqs[own]
            node = TreeNode(
                name=path.rsplit("/", 1)[-1],
                path=path,
                requirement=req.name,
                requirement_kind=req.kind,
                inherited=False,
                children=[],
            )
        else:
            node = TreeNode(
                name=path.rsplit("/", 1)[-1],
                path=path,
                requirement=parent.requirement,
                requirement_kind=parent.requirement_kind,
                inherited=parent.requirement is not None,
                children=[],
            )
        parent.children.append(node)
        nodes[path] = node
    return root
