"""``steward package …``: build data packages from manifests, check and inspect them.

Against a server (``--server``) the same commands go through its API
(:mod:`steward.remote.packages`): manifests are uploaded, builds run on the server's worker
while the command shows their progress, and reports are downloaded to this machine.
"""

from __future__ import annotations

import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel

from steward.cli import backend, render
from steward.cli import options as o
from steward.cli.progress import bar
from steward.cli.state import STATE
from steward.errors import Detail, StewardError
from steward.jobs.service import ActionView
from steward.outfiles import write_output
from steward.packaging.manifest import DEFAULT_LAYOUT
from steward.remote import packages as remote
from steward.remote.client import Client
from steward.services import package_build, packages, places
from steward.services.packages import PackageSpec, PackageView
from steward.tables import Column, Table
from steward.timeutil import format_time

app = typer.Typer(
    help="Data packages: a manifest becomes a BagIt/RO-Crate bag with an HTML report.",
    no_args_is_help=True,
)

PackageId = Annotated[str, typer.Argument(help="Package id (pkg_…).")]
Reason = Annotated[str | None, typer.Option("--reason", "-r", help="Why (kept in the log).")]
Multi = list[str] | None


@dataclass
class _Count:
    """Files the build reported finished, for the message after Ctrl-C."""

    total: int | None = None
    done: int = 0


def _build(package_id: str, action_id: str | None = None) -> PackageView:
    """Build with a progress bar; after Ctrl-C, say what happened and how to continue.

    Against a server the server's worker builds (``action_id``: the build already queued)."""
    client = STATE.remote
    if client is not None:
        return _build_there(client, package_id, action_id)
    count = _Count()
    try:
        with bar("building") as (start, advance):

            def started(nbytes: int, nfiles: int) -> None:
                count.total = nfiles
                start(nbytes, nfiles)

            def advanced(nbytes: int, nfiles: int) -> None:
                count.done += nfiles
                advance(nbytes, nfiles)

            return package_build.build(
                STATE.db,
                STATE.settings,
                actor=STATE.actor,
                package_id=package_id,
                progress=package_build.BuildProgress(start=started, advance=advanced),
            )
    except KeyboardInterrupt:
        _interrupted(package_id, count)
        raise typer.Exit(130) from None


def _build_there(client: Client, package_id: str, action_id: str | None) -> PackageView:
    """Queue the build (unless it is) and follow it until it ends, as the local build shows
    it; a built package is answered as it is and a failed one needs ``retry``, as here."""
    if action_id is None:
        found = remote.view(client, package_id=package_id)
        if found.state == "built":
            return found
        if found.state == "failed":
            raise package_build.failed(package_id, found.failure_reason)
        _, action_id = remote.request_build(client, package_id=package_id)

    def idle(job: ActionView) -> None:
        STATE.err.print(
            f"waiting for a worker to take {job.id} (the server's `steward serve` runs one "
            "unless told not to; else `steward worker` there)",
            markup=False, highlight=False,
        )  # fmt: skip

    try:
        with bar("building") as (start, advance):
            progress = package_build.BuildProgress(start=start, advance=advance)
            return remote.follow_build(client, package_id, action_id, progress=progress,
                                       idle=idle)  # fmt: skip
    except KeyboardInterrupt:
        message = (
            f"stopped waiting (Ctrl-C); the server goes on building {package_id}: "
            f"`steward jobs show {action_id}` follows it, `steward jobs cancel {action_id}` "
            "stops it"
        )
        if STATE.json:
            render.show_error(
                StewardError(
                    message,
                    [Detail("interrupted", field="package", value=package_id,
                            accepted="building")],
                )
            )  # fmt: skip
        else:
            STATE.err.print(message, markup=False, highlight=False)
        raise typer.Exit(130) from None


def _interrupted(package_id: str, count: _Count) -> None:
    """Ctrl-C: what was done, that nothing is corrupt, and the command that continues."""
    try:
        view = packages.get(STATE.db, STATE.settings, actor=STATE.actor, package_id=package_id)
        state, mode = view.package.state, view.package.mode
    except StewardError:
        state, mode = "unknown", "copy"
    verb = {"copy": "copied", "link": "linked", "fetch": "read"}.get(mode, "copied")
    done = (
        f"{count.done} of {count.total} file(s) were {verb} and verified"
        if count.total is not None
        else "no file was done yet"
    )
    if state == "failed":
        then = (
            f"{done}, and they are kept. Nothing is corrupt: a file appears in the bag only "
            "once it is complete and verified, and the bag is not marked finished. "
            f"{package_id} is now failed; `steward package retry {package_id}` continues "
            "where it stopped."
        )
    elif state == "built":
        then = f"{package_id} had already been built; nothing was lost."
    else:
        then = f"{done}. {package_id} is {state}; `steward package show {package_id}` says more."
    message = "interrupted (Ctrl-C) during the build: " + then
    if STATE.json:
        render.show_error(
            StewardError(
                message,
                [Detail("interrupted", field="package", value=package_id, accepted=state)],
            )
        )
    else:
        STATE.err.print(message, markup=False, highlight=False)


def _warn(lines: list[str]) -> None:
    """Manifest warnings on stderr, so stdout keeps only the result."""
    for line in lines:
        STATE.err.print(f"[yellow]warning:[/yellow] {escape(line)}", highlight=False)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Package name: letters, digits, '-', '_', '.'.")],
    manifest: Annotated[
        Path, typer.Option("--manifest", "-m", help="Sample manifest (CSV, TSV or XLSX).")
    ],
    project: Annotated[str, typer.Option("--project", "-p", help="Steward project it belongs to.")],
    workflow_manifest: Annotated[
        Path | None,
        typer.Option(help="Manifest of workflow outputs, joined to the samples on library_id."),
    ] = None,
    data_type: Annotated[
        Multi,
        typer.Option(
            "--data-type",
            "-t",
            help="Only these data types: fastq, bam, cram, vcf, secondary, other (repeatable).",
        ),
    ] = None,
    only_project: Annotated[
        Multi, typer.Option("--only-project", help="Only rows of this manifest project_id.")
    ] = None,
    sample: Annotated[
        Multi, typer.Option("--sample", help="Only this sample (repeatable).")
    ] = None,
    library: Annotated[
        Multi, typer.Option("--library", help="Only this library (repeatable).")
    ] = None,
    run: Annotated[Multi, typer.Option("--run", help="Only this run (repeatable).")] = None,
    layout: Annotated[
        str,
        typer.Option(
            help="Where each file goes under data/; placeholders: project_id, data_type, section, "
            "run_id, library_id, sample_id, subject_id, lane, workflow_name, file."
        ),
    ] = DEFAULT_LAYOUT,
    mode: Annotated[
        str,
        typer.Option(
            help="copy: files copied into the bag; link: hard links (same file system); "
            "fetch: a holey bag whose fetch.txt points at the sources (nothing copied)."
        ),
    ] = "copy",
    description: Annotated[str, typer.Option(help="Free text kept with the package.")] = "",
    base_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder relative paths in the manifest are read from (default: its own). "
            "With --server: a folder on the server, inside its api_source_roots (without "
            "it, relative paths are refused there)."
        ),
    ] = None,
    allow_root: Annotated[
        Multi,
        typer.Option(
            help="Also let the manifest name local files inside this folder (judged after "
            "following symbolic links); by default only the manifest's folder (or --base-dir) "
            "is allowed. An s3://bucket/prefix instead limits s3:// files to that prefix (S3 "
            "files are otherwise not limited). Repeatable. With --server the manifest may "
            "only name files in the server's api_source_roots; this narrows them.",
        ),
    ] = None,
    build: Annotated[
        bool, typer.Option(help="Build straight away (--no-build only records the request).")
    ] = True,
    wait: Annotated[
        bool,
        typer.Option(
            help="--wait (the default): build in this process, showing progress (with "
            "--server: the server's worker builds, the command shows its progress). "
            "--no-wait: queue the build and print the package id at once; `steward worker` "
            "builds it."
        ),
    ] = True,
    strict_ids: Annotated[
        bool | None,
        typer.Option(
            "--strict-ids/--lenient-ids",
            help="Refuse (--strict-ids) or only warn about (--lenient-ids) manifest ids that "
            "differ only in letter case or by invisible characters. Default: the manifest_ids "
            "setting (warn).",
        ),
    ] = None,
) -> None:
    """Check a manifest and build its package; nothing is written while any row has a problem.

    Running the same command again continues the same package (no duplicates): a build whose
    process died picks up where it stopped; a failed one (Ctrl-C too) needs `package retry`.
    With --server the manifests are uploaded from this machine; the files they name are read
    on the server.
    """
    spec = PackageSpec(
        name=name,
        manifest=manifest,
        workflow_manifest=workflow_manifest,
        projects=tuple(only_project or ()),
        samples=tuple(sample or ()),
        libraries=tuple(library or ()),
        runs=tuple(run or ()),
        data_types=tuple(data_type or ()),
        layout=layout,
        mode=mode,
        description=description,
        base_dir=base_dir,
        allowed_roots=tuple(allow_root or ()),
        strict_ids=strict_ids,
    )
    client = STATE.remote
    action_id: str | None = None
    if client is not None:
        made = remote.create(client, project=project, spec=spec, build=build)
        view, new, action_id, warned = made.package, made.created, made.action_id, made.warnings
    else:
        view, new = packages.create(
            STATE.db, STATE.settings, actor=STATE.actor, project=project, spec=spec
        )
        warned = []
    if not STATE.json:
        verb = "accepted" if new else "already exists"
        STATE.out.print(
            f"{view.id} {verb}: {view.file_count} file(s), {render.size(view.total_size)}"
        )
        _warn(warned if client else packages.warnings(STATE.db, actor=STATE.actor,
                                                       package_id=view.id))  # fmt: skip
    if build and not wait and view.state in ("pending", "building"):
        if action_id is None:  # against a server it is queued already
            view, action_id = package_build.request_build(
                STATE.db, actor=STATE.actor, package_id=view.id
            )
        if STATE.json:
            render.emit_json({"package": view, "action_id": action_id})
        else:
            STATE.out.print(
                f"{view.id} queued ({action_id}): `steward worker` builds it; "
                f"`steward jobs show {action_id}` follows it"
            )
        return
    if build and view.state in ("pending", "building", "failed"):  # failed: says to retry
        view = _build(view.id, action_id)
    render.done(view, "created" if new else "ready")


@app.command("build")
def build_(package_id: PackageId) -> None:
    """Build a pending package, or finish one whose builder stopped (crash, kill, reboot)."""
    render.done(_build(package_id), "built")


@app.command()
def retry(package_id: PackageId) -> None:
    """Build a failed package again; files already copied and verified are kept."""
    client = STATE.remote
    if client is not None:
        remote.act(client, package_id=package_id, command="retry")
    else:
        packages.act(
            STATE.db, STATE.settings, actor=STATE.actor, package_id=package_id, command="retry"
        )
    render.done(_build(package_id), "built")


@app.command("list")
def list_(
    project: o.Project = None,
    name: Annotated[str | None, typer.Option(help="Only names containing this text.")] = None,
    state: o.States = None,
    created_from: o.CreatedFrom = None,
    created_to: o.CreatedTo = None,
    completed_from: o.CompletedFrom = None,
    completed_to: o.CompletedTo = None,
    limit: o.Limit = None,
    sort: o.Sort = "created",
) -> None:
    """List packages; every filter combines with the others."""
    flt = o.filter_of(
        packages.PACKAGE,
        project=project,
        state=state,
        limit=limit,
        name=name,
        created_from=created_from,
        created_to=created_to,
        completed_from=completed_from,
        completed_to=completed_to,
    )
    views = backend.listed(
        packages.PACKAGE, flt, sort,
        lambda: packages.list_packages(STATE.db, actor=STATE.actor, flt=flt, sort=sort),
    )  # fmt: skip
    if STATE.json:
        render.emit_json(views)
        return
    render.show_table(
        Table(
            "packages",
            [
                Column("id"),
                Column("project"),
                Column("name"),
                Column("state"),
                Column("mode"),
                Column("files", "int"),
                Column("size"),
                Column("created", "time"),
                Column("completed", "time"),
                Column("created by"),
            ],
            [
                (
                    v.id,
                    v.project_id,
                    v.name,
                    v.state,
                    v.mode,
                    v.file_count,
                    render.size(v.total_size),
                    v.created_at,
                    v.completed_at,
                    v.created_by,
                )
                for v in views
            ],
        )
    )


@app.command()
def show(package_id: PackageId) -> None:
    """A package's fields, contents by data type and its timeline."""
    client = STATE.remote
    detail = (
        remote.get(client, package_id=package_id)
        if client is not None
        else packages.get(STATE.db, STATE.settings, actor=STATE.actor, package_id=package_id)
    )
    if STATE.json:
        render.emit_json(detail)
        return
    p, tz = detail.package, STATE.tz
    STATE.out.print(
        Panel(
            render.kv_table(
                [
                    ("id", p.id),
                    ("name", p.name),
                    ("project", p.project_id),
                    ("state", render.state_for(p.state, detail.current_state_for)),
                    ("failure", p.failure_reason),
                    ("mode", p.mode),
                    ("layout", p.layout),
                    ("filters", ", ".join(f"{k}={','.join(v)}" for k, v in p.filters.items())),
                    ("files", p.file_count),
                    ("size", render.size(p.total_size)),
                    ("bag", detail.bag_path if p.state == "built" else None),
                    ("created", f"{format_time(p.created_at, tz)} by {p.created_by}"),
                    ("completed", format_time(p.completed_at, tz) if p.completed_at else None),
                    ("kept until", format_time(p.keep_until, tz) if p.keep_until else None),
                    ("version", p.version),
                    ("you may now", ", ".join(detail.available_actions) or "nothing"),
                ]
            ),
            title=p.id,
            title_align="left",
        )
    )
    render.show_table(
        Table(
            "contents",
            [Column("data type"), Column("files", "int"), Column("size")],
            [
                (t, n, render.size(detail.bytes_by_data_type.get(t, 0)))
                for t, n in detail.files_by_data_type.items()
            ],
        )
    )
    if detail.warnings:
        STATE.out.print("[bold yellow]warnings[/bold yellow] (from the manifest and its files):")
        for line in detail.warnings:
            STATE.out.print(f"  - {line}", markup=False, highlight=False)
    render.show_timeline(detail.timeline)


@app.command()
def files(package_id: PackageId) -> None:
    """Every file of a package: where it sits in the bag, its source and checksums."""
    client = STATE.remote
    rows = (
        remote.files(client, package_id=package_id)
        if client is not None
        else packages.files(STATE.db, actor=STATE.actor, package_id=package_id)
    )
    if STATE.json:
        render.emit_json(rows)
        return
    render.show_table(
        Table(
            "files",
            [
                Column("path"),
                Column("size"),
                Column("sha256"),
                Column("sample"),
                Column("library"),
                Column("data type"),
                Column("source"),
            ],
            [
                (
                    f.relpath,
                    render.size(f.size),
                    f.sha256,
                    f.sample_id,
                    f.library_id,
                    f.data_type,
                    f.source_uri,
                )
                for f in rows
            ],
            brief=("path", "size", "sample", "data type"),
        )
    )


@app.command()
def validate(
    package_id: PackageId,
    full: Annotated[
        bool,
        typer.Option(
            "--full/--fast",
            help="--fast: every file present with its size, no extras, Payload-Oxum; "
            "--full: also every checksum.",
        ),
    ] = False,
) -> None:
    """Check a built bag against its manifests; every problem is listed. Exit 1 if any.

    With --server the server checks the bag it keeps (this machine has none)."""
    client = STATE.remote
    result = (
        remote.validate(client, package_id=package_id, full=full)
        if client is not None
        else packages.validate(
            STATE.db, STATE.settings, actor=STATE.actor, package_id=package_id, full=full
        )
    )
    if STATE.json:
        render.emit_json(result)
    elif result.problems:
        STATE.out.print(f"[bold red]{len(result.problems)} problem(s)[/bold red] in {package_id}:")
        for d in result.problems:
            STATE.out.print(f"  - {d}", markup=False, highlight=False)
    else:
        pending = f"; {result.fetch_pending} file(s) to fetch" if result.fetch_pending else ""
        STATE.out.print(
            f"{package_id}: valid ({'full' if full else 'fast'} check of {result.files} file(s), "
            f"{render.size(result.bytes)}{pending})"
        )
    if result.problems:
        raise typer.Exit(1)


@app.command()
def report(
    package_id: PackageId,
    open_: Annotated[bool, typer.Option("--open", help="Open it in your web browser.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Also copy it here (a file in an existing folder). With --server it is "
            "downloaded here; by default to STEWARD_HOME/reports/PACKAGE/report.html on this "
            "machine.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --output file if it exists.")
    ] = False,
) -> None:
    """Where the package's report.html is (it works offline); --open shows it."""
    client = STATE.remote
    if client is not None:
        html = remote.report(client, package_id=package_id)
        if output is None:  # Steward's own place on this machine: the latest copy
            path = write_output(
                STATE.settings.home / "reports" / package_id / "report.html", html,
                overwrite=True, parents=True,
            )  # fmt: skip
        else:
            path = write_output(output, html, overwrite=force)
    else:
        path = packages.report_path(
            STATE.db, STATE.settings, actor=STATE.actor, package_id=package_id
        )
        if output is not None:
            places.refuse_steward_file(STATE.settings, output, field="output")
            path = write_output(output, path.read_bytes(), overwrite=force)
    if STATE.json:
        render.emit_json({"report": str(path)})
    else:
        STATE.out.print(str(path))
    if open_:
        webbrowser.open(path.as_uri())


def _act(
    package_id: str, command: str, verb: str, reason: str | None = None, text: str | None = None
) -> None:
    view = backend.acted(
        packages.PACKAGE,
        package_id,
        command,
        lambda: packages.act(
            STATE.db,
            STATE.settings,
            actor=STATE.actor,
            package_id=package_id,
            command=command,
            reason=reason,
            text=text,
        ),
        reason=reason,
        text=text,
    )
    render.done(view, verb)


@app.command()
def abort(package_id: PackageId, reason: Reason = None) -> None:
    """Stop a pending, building or failed package for good; its partial files are removed."""
    _act(package_id, "abort", "aborted", reason=reason)


@app.command()
def delete(package_id: PackageId, reason: Reason = None) -> None:
    """Remove a package's files (refused while it is building); its history is kept."""
    _act(package_id, "delete", "deleted", reason=reason)


@app.command()
def comment(package_id: PackageId, text: Annotated[str, typer.Argument(help="The note.")]) -> None:
    """Add a note to a package's timeline."""
    _act(package_id, "comment", "noted", text=text)


@app.command("expire-due")
def expire_due() -> None:
    """Expire built packages past their keep-until date and remove their files (schedulable)."""
    done = packages.expire_due(STATE.db, STATE.settings, actor=STATE.actor)
    if STATE.json:
        render.emit_json({"expired": done})
    else:
        STATE.out.print(
            f"Expired {len(done)} package(s)" + (": " + ", ".join(done) if done else "")
        )
