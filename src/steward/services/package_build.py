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

from steward.config import Settings
from steward.db.models import Package, PackageFile
from steward.db.session import Database
from steward.domain import packages as domain
from steward.errors import Conflict, Detail, InvalidTransition, StewardError, ValidationFailed
from steward.packaging import bag, report
from steward.services import leases, ledger, packages
from steward.services.access import audited
from steward.services.packages import KIND, PackageView, bag_dir, load, view, visible
from steward.timeutil import utcnow


@dataclass
class BuildProgress:
    """Callbacks the CLI turns into a progress bar; all optional."""

    start: Callable[[int, int], None] | None = None  # (total bytes, total files)
    advance: Callable[[int, int], None] | None = None  # (bytes, files) since the last call


def _claim(db: Database, *, actor: str | None, package_id: str) -> PackageView:
    """Move pending → building, or take over a building package whose builder is gone."""
    with db.transaction() as s:
        row, ctx = visible(s, actor, package_id)
        if row.state == "built":
            return view(row)
        if row.state == "building":
            if not leases.holder_gone(row.builder, row.lease_until):
                raise Conflict(
                    f"{row.id} is being built by {row.builder} (lease until "
                    f"{row.lease_until:%Y-%m-%d %H:%M:%S} UTC); wait, or abort it",
                    [Detail("build in progress", field="package", value=row.id)],
                )
            command = "resume"
        elif row.state == "failed":
            raise InvalidTransition(
                f"{row.id} failed ({row.failure_reason}); `steward package retry {row.id}` "
                "builds it again, keeping the files already done",
                [Detail("failed", field="state", value=row.state, accepted="pending, building")],
            )
        else:
            command = "start"
        ledger.record(s, kind=KIND, row=row, command=command, ctx=ctx, data=leases.claim("builder"))
        s.refresh(row)
        return view(row)


def _renew(db: Database, package_id: str, owner: str) -> Callable[[Any], None]:
    def renew(until: Any) -> None:
        with db.transaction() as s:
            # A Core UPDATE: the lease is not state, so it must not bump the version others
            # use for optimistic concurrency.
            s.execute(
                update(Package)
                .where(Package.id == package_id, Package.builder == owner)
                .values(lease_until=until)
                .execution_options(synchronize_session=False)
            )

    return renew


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


def _fail(db: Database, *, actor: str | None, package_id: str, reason: str) -> str:
    """Record why the build stopped — unless someone already moved the package on (abort).

    Returns the state the package is in afterwards."""
    with db.transaction() as s:
        row, ctx = visible(s, actor, package_id)
        if row.state not in ("pending", "building"):
            return row.state
        ledger.record(s, kind=KIND, row=row, command="fail", ctx=ctx, data={"reason": reason})
        return "failed"


def _reason(exc: BaseException) -> str:
    from steward.redact import redact  # kept in the ledger and shown: never a credential

    if isinstance(exc, StewardError):
        lines = [exc.message, *(str(d) for d in exc.details[:20])]
        if len(exc.details) > 20:
            lines.append(f"… and {len(exc.details) - 20} more")
        return redact("\n".join(lines))
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C) during the build"
    return redact(f"{type(exc).__name__}: {exc}")


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
    try:
        files, row = _entries(db, package_id)
        if progress.start:
            progress.start(sum(f.size or 0 for f in files), len(files))
        target = bag_dir(settings, package_id)
        with leases.renewing(_renew(db, package_id, leases.me())):
            built = bag.build_payload(
                target,
                [_entry(f) for f in files],
                mode=pkg.mode,  # type: ignore[arg-type]
                s3=settings.s3_config(),
                workers=settings.workers or None,
                on_progress=progress.advance,
                should_stop=leases.stop_when_moved(db, Package, package_id, "building"),
            )
            if leases.stop_when_moved(db, Package, package_id, "building")():
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
    except BaseException as exc:
        if _fail(db, actor=actor, package_id=package_id, reason=_reason(exc)) in (
            "aborted",
            "deleted",
        ):
            packages.remove_files(settings, package_id)  # the abort left that to us
        raise


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
