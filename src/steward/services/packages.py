"""Package use cases: create from a manifest, list, show, abort, delete, retry, expire.

Building (the long part) lives in ``package_build``; this module keeps the short, transactional
commands. Every state change goes through the ledger; removing files happens only after the
event that explains it has been committed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from steward.config import Settings
from steward.db.models import Package, PackageFile
from steward.db.session import Database
from steward.domain import packages as domain
from steward.domain.workflow import Context
from steward.errors import Conflict, Detail, NotFound, ValidationFailed
from steward.ids import new_id
from steward.packaging import bag
from steward.packaging import manifest as mf
from steward.packaging.bagit_files import CRATE_FILE
from steward.services import leases, ledger, subjects
from steward.services.access import audited, require_member, require_user
from steward.services.kinds import (
    COMMENT,
    REASON,
    Filter,
    FilterSpec,
    Kind,
    Payload,
    Policy,
    job_commands,
    register,
)
from steward.services.storage_facts import manifest_stat
from steward.services.timeline import TimelineEntry

READERS = domain.READERS


class PackageView(BaseModel):
    id: str
    project_id: str
    name: str
    description: str
    mode: str
    layout: str
    filters: dict[str, Any]
    manifest_digest: str
    warnings: list[str]
    file_count: int
    total_size: int
    created_by: str
    builder: str | None
    failure_reason: str | None
    state: str
    version: int
    created_at: datetime
    updated_at: datetime
    state_since: datetime
    completed_at: datetime | None
    keep_until: datetime | None
    files_removed_at: datetime | None


class PackageFileView(BaseModel):
    relpath: str
    size: int | None
    sha256: str | None
    md5: str | None
    source_uri: str
    storage_class: str | None
    line: int
    source: str
    sample_id: str
    library_id: str
    subject_id: str
    project_code: str
    data_type: str
    run_id: str
    lane: str | None
    workflow_name: str | None


class PackageDetail(BaseModel):
    package: PackageView
    bag_path: str
    timeline: list[TimelineEntry]
    time_in_state: dict[str, float]
    current_state_for: float | None
    available_actions: list[str]
    files_by_data_type: dict[str, int]
    bytes_by_data_type: dict[str, int]
    warnings: list[str] = []
    """The manifest's warnings and those its file list gives (empty files), as people see them."""


@dataclass(frozen=True)
class PackageSpec:
    """What a person asks for: which manifest rows, laid out how, copied or fetched."""

    name: str
    manifest: Path
    workflow_manifest: Path | None = None
    projects: Sequence[str] = ()
    samples: Sequence[str] = ()
    libraries: Sequence[str] = ()
    runs: Sequence[str] = ()
    data_types: Sequence[str] = ()
    layout: str = mf.DEFAULT_LAYOUT
    mode: str = "copy"
    description: str = ""
    base_dir: Path | None = None
    allowed_roots: Sequence[str] = ()
    strict_ids: bool | None = None
    """Refuse look-alike ids instead of warning; ``None``: the ``manifest_ids`` setting."""
    confined_by: str | None = None
    """An uploaded manifest: only ``allowed_roots`` are open to it (not its own folder), and
    this names the setting that lists them (see ``package_uploads``)."""

    def filters(self) -> dict[str, list[str]]:
        chosen = {
            "projects": self.projects,
            "samples": self.samples,
            "libraries": self.libraries,
            "runs": self.runs,
            "data_types": self.data_types,
        }
        return {k: sorted(set(v)) for k, v in chosen.items() if v}


def bag_dir(settings: Settings, package_id: str) -> Path:
    return settings.resolved_packages_dir / package_id


def view(row: Package) -> PackageView:
    return PackageView.model_validate(row, from_attributes=True)


def load(session: Session, package_id: str) -> Package:
    row = session.get(Package, package_id)
    if row is None:
        raise NotFound(
            f"no package {package_id!r}",
            [Detail("unknown package", field="package", value=package_id)],
        )
    return row


def visible(session: Session, actor: str | None, package_id: str) -> tuple[Package, Context]:
    """The package and the caller's context, when the caller may see packages of its project;
    otherwise the same "not found" as for an id that does not exist."""
    row, ctx = subjects.visible(session, PACKAGE, actor, package_id)
    assert isinstance(row, Package)
    return row, ctx


def context(session: Session, actor: str | None, project_id: str) -> Context:
    user = require_user(session, actor)
    return Context(actor=user.id, roles=require_member(session, user, project_id))


def _plan(
    settings: Settings, spec: PackageSpec
) -> tuple[mf.Manifest, list[tuple[mf.ManifestRow, str]]]:
    """Read, check, filter and lay out the manifest; every problem in one error."""
    problems = domain.check_name(spec.name) + domain.check_mode(spec.mode)
    if problems:
        raise ValidationFailed("the package request is not valid", problems)
    manifest = mf.load_manifest(
        spec.manifest,
        spec.workflow_manifest,
        base_dir=spec.base_dir,
        allowed_roots=spec.allowed_roots,
        stat=manifest_stat(settings),
        strict_ids=(
            settings.manifest_ids == "refuse" if spec.strict_ids is None else spec.strict_ids
        ),
        confined_by=spec.confined_by,
    )
    manifest = mf.filter_manifest(
        manifest,
        projects=spec.projects,
        samples=spec.samples,
        libraries=spec.libraries,
        runs=spec.runs,
        data_types=spec.data_types,
    )
    if not manifest.rows:
        raise ValidationFailed(
            "no manifest rows are left after the filters; nothing to package",
            [Detail("empty selection", field="filters", value=json.dumps(spec.filters()))],
        )
    plan = mf.plan_layout(manifest, spec.layout)
    reserved = [
        Detail(
            "this path is where the RO-Crate metadata goes",
            field="layout",
            row=row.line,
            value=f"data/{relpath}",
            accepted="a layout that puts no manifest file at data/" + CRATE_FILE,
        )
        for row, relpath in plan
        if relpath == CRATE_FILE
    ]
    if reserved:
        raise ValidationFailed("the layout puts a file where the bag needs its own", reserved)
    return manifest, plan


def _libraries(manifest: mf.Manifest) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for r in (*manifest.listed, *manifest.rows):
        seen.setdefault(
            r.library_id,
            {
                "library_id": r.library_id,
                "sample_id": r.sample_id,
                "subject_id": r.subject_id,
                "project_id": r.project_id,
            },
        )
    return sorted(seen.values(), key=lambda lib: lib["library_id"])


def _digest(spec: PackageSpec, plan: Sequence[tuple[mf.ManifestRow, str]]) -> str:
    """Same request, same digest: how a repeated ``create`` recognises its own package."""
    h = hashlib.sha256()
    h.update(f"{spec.mode}\n{spec.layout}\n".encode())
    for row, relpath in plan:
        h.update(
            "\t".join(
                str(v) for v in (relpath, row.uri, row.size, row.md5, row.sha256, row.data_type)
            ).encode()
            + b"\n"
        )
    return h.hexdigest()


def _file_row(package_id: str, row: mf.ManifestRow, relpath: str) -> dict[str, Any]:
    return {
        "package_id": package_id,
        "relpath": "data/" + relpath,
        "source_uri": row.uri,
        "size": row.size,
        "sha256": row.sha256,
        "md5": row.md5,
        "storage_class": row.storage_class,
        "line": row.line,
        "source": row.source,
        "sample_id": row.sample_id,
        "library_id": row.library_id,
        "subject_id": row.subject_id,
        "project_code": row.project_id,
        "data_type": row.data_type,
        "run_id": row.run_id,
        "lane": row.lane,
        "workflow_name": row.workflow_name,
    }


def create(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    project: str,
    spec: PackageSpec,
) -> tuple[PackageView, bool]:
    """Accept a package request; ``(view, False)`` when the same request already exists.

    The manifest is checked completely before anything is written, so a bad manifest leaves
    no package behind; a repeated request (same name, same rows) returns the first package
    instead of making a duplicate — the seed's retries made a new package every time.
    """
    with (
        audited(db, actor=actor, action="create", project_id=project, subject_kind=domain.KIND),
        db.transaction() as s,
    ):
        ctx = context(s, actor, project)
        domain.WORKFLOW.decide_create(ctx)  # refuse non-staff before reading any file
    manifest, plan = _plan(settings, spec)
    digest = _digest(spec, plan)
    with db.transaction() as s:
        ctx = context(s, actor, project)
        existing = s.scalars(
            select(Package).where(Package.project_id == project, Package.name == spec.name)
        ).first()
        if existing is not None:
            if existing.manifest_digest == digest and existing.state not in (
                "aborted",
                "expired",
                "deleted",
            ):
                return view(existing), False
            why = (
                "package names are never reused, so every name in the history means one thing"
                if existing.state in ("aborted", "expired", "deleted")
                else "it holds different files"
            )
            raise Conflict(
                f"the name {spec.name!r} belongs to {existing.id} ({existing.state}); {why}; "
                "choose another name",
                [Detail("name in use", field="name", value=spec.name)],
            )
        row = Package(id=new_id(domain.KIND), project_id=project, version=1)
        sizes = [r.size for r, _ in plan if r.size is not None]
        data = {
            "name": spec.name,
            "mode": spec.mode,
            "layout": spec.layout,
            "filters": spec.filters(),
            "manifest_digest": digest,
            "file_count": len(plan),
            "total_size": sum(sizes),
            "created_by": ctx.actor,
            "description": spec.description,
            "manifests": [str(p) for p in (spec.manifest, spec.workflow_manifest) if p],
            "libraries": _libraries(manifest),
            "warnings": [str(w) for w in manifest.warnings],
        }
        done, _ = ledger.record_create(s, kind=KIND, row=row, ctx=ctx, data=data)
        s.execute(insert(PackageFile), [_file_row(done.id, r, p) for r, p in plan])
        return view(row), True


def act(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    package_id: str,
    command: str,
    reason: str | None = None,
    text: str | None = None,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
) -> PackageView:
    """abort, delete, retry, expire or comment; files are removed after the event commits."""
    holder: list[tuple[str | None, datetime | None]] = []

    def note_builder(row: Any) -> None:
        holder.append((row.builder, row.lease_until))

    payload = {"text": text} if command == "comment" else {"reason": reason}
    result: PackageView = subjects.act(
        db,
        PACKAGE,
        actor=actor,
        subject_id=package_id,
        command=command,
        payload={k: v for k, v in payload.items() if v is not None},
        idempotency_key=idempotency_key,
        expected_version=expected_version,
        before=note_builder,
    )
    builder, lease = holder[0]
    if result.state in ("aborted", "expired", "deleted") and leases.holder_gone(builder, lease):
        # A builder still running elsewhere removes the files itself when it sees the abort;
        # deleting under its feet would let it recreate half a folder.
        remove_files(settings, package_id)
    return result


def remove_files(settings: Settings, package_id: str) -> None:
    shutil.rmtree(bag_dir(settings, package_id), ignore_errors=True)


def get(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    package_id: str,
    now: datetime | None = None,
) -> PackageDetail:
    def files_and_warnings(s: Session, row: Package) -> tuple[list[Any], list[str]]:
        by_type = s.execute(
            select(
                PackageFile.data_type,
                func.count(),
                func.coalesce(func.sum(PackageFile.size), 0),
            )
            .where(PackageFile.package_id == row.id)
            .group_by(PackageFile.data_type)
            .order_by(PackageFile.data_type)
        ).all()
        return list(by_type), _warnings(s, row)

    found = subjects.get(
        db, PACKAGE, actor=actor, subject_id=package_id, now=now, extra=files_and_warnings
    )
    by_type, warnings = found.extra
    return PackageDetail(
        package=view(found.row),
        bag_path=str(bag_dir(settings, package_id)),
        timeline=found.history.timeline,
        time_in_state=found.history.time_in_state,
        current_state_for=found.history.current_state_for,
        available_actions=found.allowed_actions,
        files_by_data_type={t: int(n) for t, n, _ in by_type},
        bytes_by_data_type={t: int(b or 0) for t, _, b in by_type},
        warnings=warnings,
    )


def _warnings(s: Session, row: Package) -> list[str]:
    """The stored manifest warnings, and empty files (known from the file list; the report
    finds them itself, so they are not stored among the manifest's warnings)."""
    empty = select(PackageFile.relpath).where(
        PackageFile.package_id == row.id, PackageFile.size == 0
    )
    count = s.scalar(select(func.count()).select_from(empty.subquery())) or 0
    out = list(row.warnings or [])
    if count:
        names = list(s.scalars(empty.order_by(PackageFile.relpath).limit(5)))
        more = f" and {count - len(names)} more" if count > len(names) else ""
        noun = "file is" if count == 1 else "files are"
        out.append(f"{count} {noun} empty (0 bytes): {', '.join(names)}{more}")
    return out


def warnings(db: Database, *, actor: str | None, package_id: str) -> list[str]:
    """What ``package create`` prints before building, the same list ``get`` returns."""
    with db.read() as s:
        row, _ = visible(s, actor, package_id)
        return _warnings(s, row)


def files(db: Database, *, actor: str | None, package_id: str) -> list[PackageFileView]:
    with db.read() as s:
        visible(s, actor, package_id)
        rows = s.scalars(
            select(PackageFile)
            .where(PackageFile.package_id == package_id)
            .order_by(PackageFile.relpath)
        )
        return [PackageFileView.model_validate(f, from_attributes=True) for f in rows]


def file_page(
    db: Database, *, actor: str | None, package_id: str, after: str | None, limit: int
) -> tuple[list[PackageFileView], int]:
    """Up to ``limit`` files in path order after the path ``after``, and how many in all."""
    with db.read() as s:
        visible(s, actor, package_id)
        q = select(PackageFile).where(PackageFile.package_id == package_id)
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        if after is not None:
            q = q.where(PackageFile.relpath > after)
        rows = s.scalars(q.order_by(PackageFile.relpath).limit(limit))
        return [PackageFileView.model_validate(f, from_attributes=True) for f in rows], total


def visible_query(s: Session, actor: str | None, flt: Filter) -> Select[Package]:
    return subjects.visible_query(s, PACKAGE, actor, flt)


def list_packages(
    db: Database, *, actor: str | None, flt: Filter, sort: str = "created"
) -> list[PackageView]:
    return subjects.list_(db, PACKAGE, actor=actor, flt=flt, sort=sort)


def expire_due(
    db: Database, settings: Settings, *, actor: str | None, now: datetime | None = None
) -> list[str]:
    """Expire built packages past keep-until (run on a schedule; safe to repeat)."""
    due = subjects.due(db, PACKAGE, actor=actor, state="built", column="keep_until", now=now)
    for package_id in due:
        act(
            db,
            settings,
            actor=actor,
            package_id=package_id,
            command="expire",
            reason="kept for the configured number of days",
            idempotency_key=f"expire:{package_id}",
        )
    return due


class ValidationReport(BaseModel):
    package_id: str
    full: bool
    files: int
    bytes: int
    fetch_pending: int
    problems: list[str]


def _built_bag(s: Session, settings: Settings, actor: str | None, package_id: str) -> Path:
    row, _ = visible(s, actor, package_id)
    if row.state != "built":
        raise ValidationFailed(
            f"{row.id} is {row.state}; only a built package has a bag to look at",
            [Detail("not built", field="package", value=row.id, accepted="built")],
        )
    return bag_dir(settings, row.id)


def validate(
    db: Database, settings: Settings, *, actor: str | None, package_id: str, full: bool
) -> ValidationReport:
    """Check the bag on disk: completeness always, every checksum with ``full``."""
    with db.read() as s:
        path = _built_bag(s, settings, actor, package_id)
        mode = s.scalar(select(Package.mode).where(Package.id == package_id))
        q = select(PackageFile.relpath, PackageFile.size).where(
            PackageFile.package_id == package_id
        )
        sizes: dict[str, int | None] = {rel: n for rel, n in s.execute(q)}  # noqa: C416 - Rows
    check = bag.check_bag(path, full=full, workers=settings.workers or None)
    problems = [str(p) for p in check.problems]
    if mode != "fetch":
        problems += _size_problems(path, sizes)
    return ValidationReport(
        package_id=package_id,
        full=full,
        files=len(sizes),
        bytes=sum(v or 0 for v in sizes.values()),
        fetch_pending=len(check.fetch_pending),
        problems=problems,
    )


def _size_problems(path: Path, sizes: dict[str, int | None]) -> list[str]:
    """BagIt manifests carry no sizes, so a fast check cannot tell a truncated file from a
    whole one; the package's own record can, without reading a byte."""
    out = []
    for rel, expected in sorted(sizes.items()):
        try:
            found = (path / rel).stat().st_size
        except FileNotFoundError:
            continue  # the bag check already reports it missing
        if expected is not None and found != expected:
            out.append(f"{rel}: size is {found} bytes (accepted: {expected} bytes)")
    return out


def report_path(db: Database, settings: Settings, *, actor: str | None, package_id: str) -> Path:
    with db.read() as s:
        path = _built_bag(s, settings, actor, package_id) / "report.html"
    if not path.is_file():
        raise NotFound(
            f"{package_id} has no report.html at {path}",
            [Detail("missing file", field="report", value=str(path))],
        )
    return path


def report_data(
    db: Database, settings: Settings, *, actor: str | None, package_id: str
) -> dict[str, Any]:
    """The data the report shows (files, libraries, tables, charts), as it embeds it."""
    text = report_path(db, settings, actor=actor, package_id=package_id).read_text("utf-8")
    start = text.find(_DATA_START)
    end = text.find("</script>", start)
    if start < 0 or end < 0:
        raise NotFound(
            f"{package_id}'s report.html holds no report data (made by an older Steward?)",
            [Detail("no data block", field="report", value=package_id)],
        )
    found: dict[str, Any] = json.loads(text[start + len(_DATA_START) : end])
    return found


_DATA_START = '<script type="application/json" id="report-data">'


class BuildFinished(Payload):
    file_count: int
    total_size: int
    keep_until: str | None = None
    payload_oxum: str | None = None


PACKAGE = register(
    Kind(
        workflow=domain.WORKFLOW,
        model=Package,
        project=domain.project,
        label="package",
        id_field="package",
        prefix="pkg",
        view=PackageView,
        # Staff, reviewers and viewers of a project see its packages; requesters do not.
        policy=Policy(readers=READERS),
        filters=FilterSpec(
            contains={"name": "name"},
            ranges={"created": "created_at", "completed": "completed_at"},
        ),
        commands={
            "retry": REASON,
            "abort": REASON,
            "delete": REASON,
            "expire": REASON,
            "comment": COMMENT,
            **job_commands(BuildFinished),
        },
        docs="packages.md",
    )
)
KIND = PACKAGE  # the engine's name for it (the build and the shares use packages.KIND)
PackageFilter = PACKAGE.filter
