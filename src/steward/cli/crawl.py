"""``steward crawl``: find datasets in every source, decide their stages, show what changed.

``steward crawl`` runs a crawl (a progress bar on a terminal, then the summary); ``crawl
sources`` says whether each source answers; ``crawl list``/``crawl show`` are past crawls.
The sources come from ``--sources FILE`` (TOML, YAML or JSON) or steward.toml's ``[crawl]``.
Crawls read storage and write the database directly, so they run where the database is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from steward.cli import render
from steward.cli.state import STATE
from steward.crawl.config import CrawlConfig, load_crawl_config
from steward.services import crawl, crawls
from steward.services.crawl_summary import COUNTS, CrawlSummary, ProgressHook
from steward.services.crawl_summary import Progress as Step
from steward.tables import Column, Table

app = typer.Typer(
    help="Crawls: find datasets in the sources, decide each one's stage, record what changed. "
    "Without a command: run a crawl.",
    invoke_without_command=True,
)

SourcesFile = Annotated[
    Path | None,
    typer.Option(
        "--sources",
        help="The sources config (.toml, .yaml or .json); default: [crawl] in steward.toml.",
        dir_okay=False,
    ),
]


def _config(path: Path | None) -> CrawlConfig:
    if STATE.remote is not None:
        raise STATE.local_only()
    if path is not None:
        return load_crawl_config(path)
    return crawl.configured(STATE.settings)


@contextmanager
def _progress() -> Iterator[ProgressHook]:
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=STATE.err,
        disable=STATE.json or not STATE.err.is_terminal,
        transient=True,
    )
    tasks: dict[str, int] = {}

    def hook(step: Step) -> None:
        label = f"listing {step.source}" if step.phase == "listing" else "writing"
        if step.phase not in ("listing", "committed"):
            return
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=step.total)
        bar.update(tasks[label], completed=step.done, total=step.total)  # type: ignore[arg-type]

    with bar:
        yield hook


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    sources: SourcesFile = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List, read and decide, but write nothing.")
    ] = False,
) -> None:
    """Crawl every source: new datasets, moves between stages, missing and reappeared
    datasets, duplicates and unreadable files, as events; then the summary."""
    if ctx.invoked_subcommand is not None:
        return
    config = _config(sources)
    with _progress() as hook:
        summary = crawl.run_crawl(
            STATE.db,
            STATE.settings,
            actor=STATE.actor,
            config=config,
            dry_run=dry_run,
            progress=hook,
            environ=os.environ,
        )
    _show(summary)
    if summary.status == "failed":
        raise typer.Exit(1)


def _show(summary: CrawlSummary) -> None:
    if STATE.json:
        render.emit_json(summary.as_json())
        return
    what = "dry run (nothing written)" if summary.dry_run else summary.id
    STATE.out.print(
        f"[bold]{what}[/bold]: {summary.status}; {summary.datasets:,} datasets and "
        f"{summary.files:,} files in {summary.seconds:.1f} s "
        f"({summary.datasets_per_second:,.0f} datasets/s, {summary.files_per_second:,.0f} "
        f"files/s); {summary.events:,} events"
    )
    render.show_table(
        Table(
            "sources",
            [
                Column("source"),
                Column("project"),
                Column("stage"),
                Column("status"),
                Column("found", "int"),
                Column("new", "int"),
                Column("changed", "int"),
                Column("removed", "int"),
                Column("unknown", "int"),
                Column("files", "int"),
                Column("metadata read", "int"),
                Column("problems", "int"),
            ],
            [
                (
                    s.name,
                    s.project,
                    s.stage,
                    s.status,
                    s.found,
                    s.new,
                    s.changed,
                    s.removed,
                    s.unknown,
                    s.files,
                    s.metadata_files_read,
                    s.problem_count,
                )
                for s in summary.sources
            ],
        )
    )
    render.show_table(
        Table(
            "what changed",
            [Column("what"), Column("count", "int"), Column("first examples")],
            [
                (
                    name.replace("_", " "),
                    summary.counts[name].count,
                    "; ".join(summary.counts[name].examples),
                )
                for name in COUNTS
                if summary.counts[name].count
            ],
        ),
        limit_width=("first examples",),
    )
    if summary.error:
        STATE.err.print(f"[bold red]the crawl stopped:[/bold red] {summary.error}")


@app.command("sources")
def sources_(sources: SourcesFile = None) -> None:
    """Each source of the config and whether it can be listed now (and if not, why)."""
    checks = crawls.check_sources(_config(sources), environ=os.environ)
    if STATE.json:
        render.emit_json(checks)
    else:
        render.show_table(
            Table(
                "crawl sources",
                [
                    Column("source"),
                    Column("project"),
                    Column("stage"),
                    Column("url"),
                    Column("status"),
                    Column("message"),
                ],
                [(c.name, c.project, c.stage, c.url, c.status, c.message) for c in checks],
            ),
            limit_width=("message",),
        )
    if not all(c.reachable for c in checks):
        raise typer.Exit(1)


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=0, help="At most this many crawls (0: all).")] = 20,
) -> None:
    """Past crawls, newest first, with their main counts."""
    if STATE.remote is not None:
        raise STATE.local_only()
    rows = crawls.list_crawls(STATE.db, actor=STATE.actor, limit=limit)
    if STATE.json:
        render.emit_json(rows)
        return
    render.show_table(
        Table(
            "crawls",
            [
                Column("id"),
                Column("status"),
                Column("started_at", "time"),
                Column("finished_at", "time"),
                Column("started_by"),
                Column("datasets", "int"),
                Column("events", "int"),
                Column("new", "int"),
                Column("state_changes", "int"),
                Column("missing", "int"),
                Column("failed_sources", "int"),
            ],
            [
                (
                    r.id,
                    r.status,
                    r.started_at,
                    r.finished_at,
                    r.started_by,
                    r.datasets,
                    r.events,
                    r.new,
                    r.state_changes,
                    r.missing,
                    r.failed_sources,
                )
                for r in rows
            ],
        )
    )


@app.command("show")
def show(crawl_id: Annotated[str, typer.Argument(help="The crawl's id (crl_…).")]) -> None:
    """One past crawl's summary, as `steward crawl` showed it at its end."""
    if STATE.remote is not None:
        raise STATE.local_only()
    _show(crawls.show_crawl(STATE.db, actor=STATE.actor, crawl_id=crawl_id))
