"""``steward dataset verify|files|duplicates``: checking what the crawl found.

``verify`` recomputes data files' checksums against their ``.md5``/``.sha256`` sidecars (an
event on the dataset; exit code 1 when any sidecar does not match), ``files`` lists the
durable per-file record and fetches a metadata file, ``duplicates`` lists pairs of datasets
that are one (same stage twice, secondary accessions, ``--by-content`` identical files).

They read storage and the database, here or on the server ``--server`` names
(:mod:`steward.api.dataset_tracker`): a server reads storage only through its own configured
sources, so ``--sources`` with ``--server`` is refused, and ``files --get`` runs only here.
The sources config (``--sources FILE``, else ``[crawl]`` in
steward.toml, else none) says how to reach s3 sources, which files are metadata, and the
accession mappings; folder sources are found from the places the crawl recorded.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from steward.cli import backend, render
from steward.cli.datasets import InProject, Ref, app
from steward.cli.progress import bar
from steward.cli.state import STATE
from steward.crawl.config import CrawlConfig, load_crawl_config
from steward.errors import Detail, ValidationFailed
from steward.outfiles import check_target, write_output
from steward.remote import dataset_tracker
from steward.remote.client import Client
from steward.services import crawl, dataset_duplicates, dataset_files, dataset_verify, places
from steward.services.dataset_storage import HashProgress
from steward.tables import Column, Table

SourcesFile = Annotated[
    Path | None,
    typer.Option(
        "--sources",
        help="The sources config (.toml, .yaml or .json); default: [crawl] in steward.toml. "
        "Needed for s3 sources (endpoint, credentials).",
        dir_okay=False,
    ),
]


def _server(sources: Path | None) -> Client | None:
    return backend.server_of(sources, does="reads", here="use these sources here")


def _config(path: Path | None) -> CrawlConfig | None:
    """The sources config, if there is one: these commands work on folders without it."""
    if STATE.remote is not None:
        raise STATE.local_only()
    if path is not None:
        return load_crawl_config(path)
    return crawl.configured(STATE.settings) if STATE.settings.crawl else None


# ---- verify -----------------------------------------------------------------------------------
@app.command()
def verify(dataset: Ref, project: InProject = None, sources: SourcesFile = None) -> None:
    """Recompute the checksum of every data file that has a .md5/.sha256 sidecar and compare
    (stewards and admins); recorded as an event on the dataset. Exit code 1 when any sidecar
    does not match its file (mismatch, data file missing, sidecar unreadable). With --server,
    the server verifies through its own configured sources (no --sources)."""
    client = _server(sources)
    if client is not None:
        from steward.cli.datasets import _remote_id

        dataset_id = _remote_id(client, dataset, project)
        result = dataset_tracker.verify(client, dataset_id=dataset_id)
    else:
        with bar("verifying") as (start, advance):
            result = dataset_verify.verify(
                STATE.db,
                actor=STATE.actor,
                dataset=dataset,
                project=project,
                config=_config(sources),
                environ=os.environ,
                progress=HashProgress(start, advance),
            )
    if STATE.json:
        render.emit_json(dataset_verify.as_json(result))
    else:
        _show_verify(result)
    if not result.all_match:
        raise typer.Exit(1)


def _show_verify(result: dataset_verify.VerifyResult) -> None:
    verdict = "every sidecar matches" if result.all_match else "[bold red]PROBLEMS[/bold red]"
    STATE.out.print(
        f"[bold]{result.dataset}[/bold]: {verdict} — {result.checked} sidecars checked, "
        f"{result.matched} match, {result.mismatched} mismatch, {result.missing} without "
        f"their data file, {result.bad_sidecars} unreadable sidecars, {result.unreadable} "
        f"unreadable data files; {result.without_sidecar} data files have no sidecar; "
        f"{result.files_read} files ({render.size(result.bytes_read)}) read"
    )
    if result.changed_since_crawl:
        STATE.out.print(
            f"{result.changed_since_crawl} files changed since the last crawl: their checksums "
            "are stored when a crawl has seen them"
        )
    for skipped in result.skipped_sources:
        STATE.out.print(f"not verified: {skipped['why']}", markup=False)
    if result.mismatches:
        render.show_table(
            Table(
                "mismatches",
                [
                    Column("source"),
                    Column("path"),
                    Column("algorithm"),
                    Column("sidecar says"),
                    Column("file is"),
                ],
                [(m.source, m.path, m.algorithm, m.expected, m.actual) for m in result.mismatches],
            ),
            limit_width=("path",),
        )
    if result.problems:
        render.show_table(
            Table(
                "problems",
                [Column("kind"), Column("source"), Column("path"), Column("what")],
                [(p.kind, p.source, p.path, p.message) for p in result.problems],
            ),
            limit_width=("path", "what"),
        )


# ---- files ------------------------------------------------------------------------------------
@app.command()
def files(
    dataset: Ref,
    project: InProject = None,
    get: Annotated[
        str | None,
        typer.Option(
            "--get",
            metavar="PATH",
            help="Fetch this metadata file (a path as listed) to stdout, or to -o FILE.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="With --get: write the file here.", dir_okay=False),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With -o: replace an existing file.")
    ] = False,
    source: Annotated[
        str | None,
        typer.Option(help="With --get: the crawl source, when several hold the path."),
    ] = None,
    sources: SourcesFile = None,
) -> None:
    """A dataset's files from the durable record — metadata files, data files, checksum
    sidecars: path, size, checksum, outcome, first and last seen; or one metadata file
    (--get: not with --server)."""
    client = _server(sources)
    if client is not None and get is not None:
        raise ValidationFailed(
            f"--get {get} is not taken with --server: a metadata file is fetched from storage "
            "where the command runs; drop --server (the listing works through a server)",
            [Detail("not with --server", field="--get", value=get,
                    accepted="the listing (no --get) with --server")],
        )  # fmt: skip
    config = _config(sources) if client is None else None
    if get is None:
        if output is not None or source is not None:
            flag = "-o" if output is not None else "--source"
            raise ValidationFailed(
                f"{flag} goes with --get PATH (the metadata file to fetch)",
                [Detail("only with --get", field=flag, accepted="--get PATH")],
            )
        if client is not None:
            from steward.cli.datasets import _remote_id

            dataset_id = _remote_id(client, dataset, project)
            _show_files(dataset_tracker.list_files(client, dataset_id=dataset_id))
        else:
            _show_files(_list_files(dataset, project, config))
        return
    if output is not None:
        places.refuse_steward_file(STATE.settings, output, field="output")
        check_target(output, overwrite=force)
    fetched = dataset_files.fetch_metadata(
        STATE.db,
        actor=STATE.actor,
        dataset=dataset,
        path=get,
        project=project,
        source=source,
        config=config,
        environ=os.environ,
    )
    if output is not None:
        written = write_output(output, fetched.data, overwrite=force)
        if STATE.json:
            render.emit_json(
                {
                    "dataset": fetched.dataset,
                    "source": fetched.source,
                    "path": fetched.path,
                    "size": len(fetched.data),
                    "written": str(written),
                }
            )
        else:
            STATE.err.print(f"{fetched.path} ({len(fetched.data)} bytes) written to {written}")
        return
    if STATE.json:
        try:
            content, encoding = fetched.data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            content, encoding = base64.b64encode(fetched.data).decode("ascii"), "base64"
        render.emit_json(
            {
                "dataset": fetched.dataset,
                "source": fetched.source,
                "path": fetched.path,
                "size": len(fetched.data),
                "encoding": encoding,
                "content": content,
            }
        )
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(fetched.data)
    sys.stdout.buffer.flush()


def _list_files(
    dataset: str, project: str | None, config: CrawlConfig | None
) -> dataset_files.DatasetFiles:
    return dataset_files.list_files(
        STATE.db,
        actor=STATE.actor,
        dataset=dataset,
        project=project,
        config=config,
        environ=os.environ,
    )


def _show_files(found: dataset_files.DatasetFiles) -> None:
    if STATE.json:
        render.emit_json(found)
        return
    render.show_table(
        Table(
            f"files of {found.dataset}",
            [
                Column("kind"),
                Column("source"),
                Column("path"),
                Column("size"),
                Column("checksum"),
                Column("outcome"),
                Column("first seen", "time"),
                Column("last seen", "time"),
            ],
            [
                (
                    f.kind,
                    f.source,
                    f.path,
                    render.size(f.size),
                    f.checksum,
                    f.outcome,
                    f.first_seen_at,
                    f.last_seen_at,
                )
                for f in found.files
            ],
        ),
        limit_width=("path",),
    )


# ---- duplicates -------------------------------------------------------------------------------
@app.command()
def duplicates(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project's datasets.")
    ] = None,
    by_content: Annotated[
        bool,
        typer.Option(
            "--by-content",
            help="Also compare data files' checksums (reads storage; stewards and admins).",
        ),
    ] = False,
    sources: SourcesFile = None,
) -> None:
    """Pairs of datasets that are one: the same accession twice in one stage (same-stage),
    one a secondary accession of the other (secondary-accession), and with --by-content
    identical data files (same-content). With --server, as the server finds them (its
    [crawl] config; no --sources)."""
    client = _server(sources)
    if client is not None:
        found = dataset_tracker.find_duplicates(client, project=project, by_content=by_content)
    else:
        with bar("comparing") as (start, advance):
            found = dataset_duplicates.find_duplicates(
                STATE.db,
                actor=STATE.actor,
                project=project,
                by_content=by_content,
                config=_config(sources),
                environ=os.environ,
                progress=HashProgress(start, advance),
            )
    if STATE.json:
        render.emit_json(found)
        return
    render.show_table(
        Table(
            "duplicates",
            [
                Column("project"),
                Column("dataset"),
                Column("other"),
                Column("reason"),
                Column("detail"),
            ],
            [(p.project, p.dataset, p.other, p.reason, p.detail) for p in found.pairs],
        ),
        limit_width=("detail",),
    )
    content = found.content
    if content is not None:
        reused = ", ".join(f"{n} from {k}" for k, n in content.reused.items()) or "none"
        STATE.out.print(
            f"by content: {content.candidates} of {content.files} data files share a size with "
            f"another dataset's; {content.hashed_files} hashed "
            f"({render.size(content.hashed_bytes)}), checksums reused: {reused}; "
            f"{content.not_compared} could not be compared"
        )
        for problem in content.problems:
            STATE.out.print(
                f"{problem.dataset}: {problem.source}/{problem.path}: {problem.message}",
                markup=False,
            )
        for skipped in content.skipped_sources:
            STATE.out.print(f"not read: {skipped['why']}", markup=False)
