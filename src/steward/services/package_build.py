"""Building a package: claim it, copy and hash its files into a bag, then mark it built.

The build runs outside any transaction (it can take hours); a lease says who is building.
Whatever goes wrong — a bad source file, a full disk, Ctrl-C — the package ends ``failed``
with the reason, never stuck in ``building``; after a kill -9 the next ``build`` takes the
package over and the bag builder's journal skips every file already done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from steward.config import Settings
from steward.db.models import Package, PackageFile
from steward.db.session import Database
from steward.domain import packages as domain
from steward.domain.workflow import Context
from steward.errors import Detail, Forbidden, InvalidTransition, ValidationFailed
from steward.jobs import outbox, runner
from steward.packaging import bag, report
from steward.services import ledger, packages
from steward.services.access import audited
from steward.services.packages import KIND, PackageView, bag_dir, load, view, visible
from steward.timeutil import utcnow


@dataclass
class BuildProgress:
    """Callbacks the CLI turns into a progress bar; all optional."""

    start: Callable[[int, int], None] | None = None  # (total bytes, total files)
    advance: Callable[[int, int], None] | None = None  # (bytes, files) since the last call


def _context(s: Session, actor: str | None, row: Package) -> Context:
    return visible(s, actor, row.id)[1]


JOB = runner.LongJob(
    kind=KIND,
    owner_field="builder",
    running="building",
    failable=("pending", "building"),
    noun="build",
    done_by="built",
    context=_context,
    action="package.build",
)


def failed(package_id: str, reason: str | None) -> InvalidTransition:
    """What building a failed package answers: it needs ``retry`` first."""
    return InvalidTransition(
        f"{package_id} failed ({reason}); `steward package retry {package_id}` builds it "
        "again, keeping the files already done",
        [Detail("failed", field="state", value="failed", accepted="pending, building")],
    )


def _claim(db: Database, *, actor: str | None, package_id: str) -> PackageView:
    """Move pending → building, or take over a building package whose builder is gone."""
    with db.transaction() as s:
        row, ctx = visible(s, actor, package_id)
        if row.state == "built":
            return view(row)
        if row.state == "failed":
            raise failed(row.id, row.failure_reason)
        runner.claim(s, JOB, row, ctx)
        s.refresh(row)
        return view(row)


def _entries(db: Database, package_id: str) -> tuple[list[PackageFile], Package]:
    with db.read() as s:
        files = list(
            s.scalars(
                select(PackageFile)
                .where(PackageFile.package_id == package_id)
                .order_by(PackageFile.relpath)
            )
        )
        return files, load(s, package_id)


def _report_input(
    pkg: Package, files: list[PackageFile], built: list[bag.BuiltFile]
) -> report.ReportInput:
    by_path = {"data/" + b.relpath: b for b in built}
    report_files = []
    for f in files:
        b = by_path[f.relpath]
        report_files.append(
            report.ReportFile(
                path=f.relpath,
                size=b.size,
                sha256=b.sha256,
                md5=b.md5,
                sample_id=f.sample_id,
                library_id=f.library_id,
                subject_id=f.subject_id,
                project_id=f.project_code,
                data_type=f.data_type,
                run_id=f.run_id,
                lane=f.lane,
                workflow_name=f.workflow_name,
                source_uri=f.source_uri,
                storage_class=f.storage_class,
            )
        )
    return report.ReportInput(
        package_name=pkg.name,
        package_id=pkg.id,
        created_by=pkg.created_by,
        created_at=pkg.created_at,
        checksum_algorithms=("sha256", "md5"),
        mode=pkg.mode,
        files=report_files,
        libraries=[report.ReportLibrary(**lib) for lib in pkg.libraries],
        libraries_without_files=[],  # the report finds them from ``libraries`` and ``files``
        warnings=list(pkg.warnings),
    )


def _entry(f: PackageFile) -> bag.BagEntry:
    return bag.BagEntry(
        relpath=f.relpath.removeprefix("data/"),
        source_uri=f.source_uri,
        size=f.size,
        sha256=f.sha256,
        md5=f.md5,
        metadata={
            "sample_id": f.sample_id,
            "library_id": f.library_id,
            "subject_id": f.subject_id,
            "project_id": f.project_code,
            "data_type": f.data_type,
            "run_id": f.run_id,
            "lane": f.lane or "",
            "workflow_name": f.workflow_name or "",
        },
    )


def build(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    package_id: str,
    progress: BuildProgress | None = None,
) -> PackageView:
    """Build (or finish building) a package; returns it built, or raises after marking failed."""
    with audited(db, actor=actor, action="build", subject_kind=domain.KIND, subject_id=package_id):
        pkg = _claim(db, actor=actor, package_id=package_id)
    if pkg.state == "built":
        return pkg
    progress = progress or BuildProgress()

    def stopped(state: str) -> None:
        if state in ("aborted", "deleted"):
            packages.remove_files(settings, package_id)  # the abort left that to us

    with runner.work(
        db,
        JOB,
        package_id,
        actor=actor,
        on_start=progress.start,
        on_advance=progress.advance,
        on_stopped=stopped,
    ) as job:
        files, row = _entries(db, package_id)
        job.start(sum(f.size or 0 for f in files), len(files))
        target = bag_dir(settings, package_id)
        built = bag.build_payload(
            target,
            [_entry(f) for f in files],
            mode=pkg.mode,  # type: ignore[arg-type]
            s3=settings.s3_config(),
            workers=settings.workers or None,
            on_progress=job.advance,
            should_stop=job.should_stop,
        )
        if job.stop_reason(fresh=True):
            raise bag.BuildCancelled(f"{package_id} was stopped while its bag was finished")
        html = report.render_report(_report_input(row, files, built))
        summary = bag.finish_bag(
            target,
            bag.BagInfo(
                name=pkg.name,
                package_id=pkg.id,
                source_organisation=settings.organisation,
                created_by=pkg.created_by,
                created_at=pkg.created_at,
                description=pkg.description,
            ),
            built,
            tag_files={"report.html": html.encode()},
            fetch=pkg.mode == "fetch",
        )
        problems = bag.validate_bag(target, full=False)
        if problems:
            raise ValidationFailed("the finished bag is not complete", problems)
        return _finish(
            db,
            actor=actor,
            package_id=package_id,
            built=built,
            summary=summary,
            keep_days=settings.package_keep_days,
        )


def _finish(
    db: Database,
    *,
    actor: str | None,
    package_id: str,
    built: list[bag.BuiltFile],
    summary: Any,
    keep_days: int,
) -> PackageView:
    with db.transaction() as s:
        row, ctx = visible(s, actor, package_id)
        # ORM bulk UPDATE by primary key: one executemany, not a statement per file.
        s.execute(
            update(PackageFile),
            [
                {
                    "package_id": package_id,
                    "relpath": "data/" + b.relpath,
                    "size": b.size,
                    "sha256": b.sha256,
                    "md5": b.md5,
                }
                for b in built
            ],
        )
        ledger.record(
            s,
            kind=KIND,
            row=row,
            command="finish",
            ctx=ctx,
            data={
                "file_count": len(built),
                "total_size": sum(b.size for b in built),
                "keep_until": (utcnow() + timedelta(days=keep_days)).isoformat(),
                "payload_oxum": getattr(summary, "payload_oxum", None),
            },
        )
        s.refresh(row)
        return view(row)


def request_build(db: Database, *, actor: str | None, package_id: str) -> tuple[PackageView, str]:
    """Queue the package's build for a worker (``--no-wait``); returns it and the action id.

    Asking again while that build is queued or running is the same action, so a double click
    never builds twice."""
    with (
        audited(db, actor=actor, action="build", subject_kind=domain.KIND, subject_id=package_id),
        db.transaction() as s,
    ):
        row, ctx = visible(s, actor, package_id)
        allowed = domain.WORKFLOW.available(row.state, ctx)
        if row.state not in domain.ACTIVE or not {"start", "resume"} & set(allowed):
            if row.state in domain.ACTIVE:
                raise Forbidden(
                    f"{ctx.actor} may not build {row.id}: that needs the steward or admin role",
                    [Detail("needs steward or admin", field="role")],
                )
            raise InvalidTransition(
                f"{row.id} is {row.state}; only a pending (or interrupted) package is queued",
                [Detail("cannot build", field="state", value=row.state, accepted="pending")],
            )
        action_id = outbox.request(
            s,
            subject_kind=domain.KIND,
            subject_id=row.id,
            project_id=row.project_id,
            action=JOB.action,
            payload={},
            actor=ctx.actor,
        )
        return view(row), action_id


def build_queued(
    db: Database, settings: Settings, *, actor: str | None, package_id: str, again: bool
) -> PackageView:
    """A worker's build: like :func:`build`, but when ``again`` (a later try of the same
    action) a package the earlier try left failed continues instead of being refused."""
    if again:
        with db.transaction() as s:
            row, ctx = visible(s, actor, package_id)
            if row.state == "failed":
                runner.retry(s, JOB, row, ctx)
    return build(db, settings, actor=actor, package_id=package_id)
