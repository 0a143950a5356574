"""``steward crawl``: find datasets in every source, decide their stages, show what changed.

``steward crawl`` runs a crawl (a progress bar on a terminal, then the summary), or with
``--no-wait`` queues it for ``steward worker``; ``crawl sources`` says whether each source
answers; ``crawl list``/``crawl show`` are past, queued and running crawls; ``crawl schedule``
registers periodic crawls the worker runs. The sources come from ``--sources FILE`` (TOML, YAML
or JSON) or steward.toml's ``[crawl]``. With ``--server`` every command works through the
server's API, and the server crawls only its own configured sources: ``--sources`` is refused,
``crawl`` queues a crawl for the server's worker (and waits for it unless ``--no-wait``),
``--dry-run`` runs only where the database is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from steward.cli import backend, render
from steward.cli.state import STATE
from steward.crawl.config import CrawlConfig, load_crawl_config
from steward.errors import Detail, ValidationFailed
from steward.remote import crawls as remote_crawls
from steward.remote.client import Client
from steward.services import crawl, crawl_jobs, crawl_schedules, crawls
from steward.services.crawl_summary import COUNTS, CrawlSummary, ProgressHook
from steward.services.crawl_summary import Progress as Step
from steward.tables import Column, Table
from steward.timeutil import format_time

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
Full = Annotated[
    bool,
    typer.Option(
        "--full",
        help="Examine every file. Without it, a folder that kept its modification time since "
        "the last crawl is not listed file by file (adding, removing or renaming a file "
        "changes it); the metadata files and manifests are examined every time. Only a data "
        "file rewritten in place under the same name waits for a --full crawl.",
    ),
]


def _config(path: Path | None) -> CrawlConfig:
    if STATE.remote is not None:
        raise STATE.local_only()
    if path is not None:
        return load_crawl_config(path)
    return crawl.configured(STATE.settings)


def _server(sources: Path | None) -> Client | None:
    """The server ``--server`` names (``None``: crawl here). A server crawls only its own
    configured sources — a caller never makes it read paths or URLs of their choosing — so
    ``--sources`` with ``--server`` is refused."""
    return backend.server_of(sources, does="crawls", here="crawl these sources here")


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
        bool,
        typer.Option(
            "--dry-run", help="List, read and decide, but write nothing (never queued: runs here)."
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            help="--wait (the default): crawl in this process, showing progress. --no-wait: "
            "queue the crawl and print its id at once; `steward worker` runs it, `crawl show "
            "ID` and `jobs show` follow it. The queued crawl keeps the sources without "
            "secrets: credentials (*_env) are read from the worker's environment."
        ),
    ] = True,
    full: Full = False,
) -> None:
    """Crawl every source: new datasets, moves between stages, missing and reappeared
    datasets, duplicates and unreadable files, as events; then the summary.

    Two crawls of the same sources never run at once: while one runs, another is refused
    (exit 1) naming it. A crawl stopped at any point (Ctrl-C, kill -9) and run again ends as
    one uninterrupted crawl would.

    With --server the server's worker crawls the server's own configured sources (--sources
    is refused): the crawl is queued, then followed until it ends (Ctrl-C stops the waiting,
    not the crawl), or with --no-wait only queued."""
    if ctx.invoked_subcommand is not None:
        return
    client = _server(sources)
    if client is not None:
        _through(client, dry_run=dry_run, wait=wait, full=full)
        return
    config = _config(sources)
    if not wait and not dry_run:
        _queued(crawl_jobs.queue(STATE.db, actor=STATE.actor, config=config, full=full))
        return
    with _progress() as hook:
        summary = crawl.run_crawl(
            STATE.db,
            STATE.settings,
            actor=STATE.actor,
            config=config,
            dry_run=dry_run,
            progress=hook,
            environ=os.environ,
            full=full,
        )
    _show(summary)
    if summary.status == "failed":
        raise typer.Exit(1)


def _queued(queued: crawl_jobs.Queued) -> None:
    if STATE.json:
        render.emit_json(queued)
        return
    STATE.out.print(
        f"{queued.crawl_id} queued ({queued.action_id}): `steward worker` runs it; "
        f"`steward crawl show {queued.crawl_id}` follows it, `steward jobs cancel "
        f"{queued.action_id}` stops it",
        markup=False,
        highlight=False,
    )


def _through(client: Client, *, dry_run: bool, wait: bool, full: bool) -> None:
    """``steward --server URL crawl``: the server's worker crawls the server's sources. With
    --no-wait the crawl is queued and its ids printed; else this waits for it, showing its
    progress, then its summary (Ctrl-C stops the waiting, not the crawl)."""
    if dry_run:
        raise ValidationFailed(
            "--dry-run does not run against a server: a dry run lists the sources in this "
            "process; run it where the database is, or queue a real crawl with --no-wait",
            [Detail("not with --server", field="--dry-run", accepted="no --dry-run")],
        )
    queued = remote_crawls.queue(client, full=full)
    if not wait:
        _queued(queued)
        return
    if not STATE.json:
        STATE.err.print(
            f"{queued.crawl_id} queued on {client.server} ({queued.action_id}); waiting for "
            f"the server's worker to run it. Ctrl-C stops waiting, not the crawl (`steward "
            f"jobs cancel {queued.action_id}` stops it)",
            markup=False,
            highlight=False,
        )
    try:
        detail = _follow(client, queued.crawl_id)
    except KeyboardInterrupt:
        STATE.err.print(
            f"stopped waiting; {queued.crawl_id} goes on on the server (`steward crawl show "
            f"{queued.crawl_id}` follows it, `steward jobs cancel {queued.action_id}` stops it)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(130) from None
    _show(detail.summary)
    if detail.summary.status in ("failed", "cancelled", "interrupted"):
        raise typer.Exit(1)


STILL_QUEUED = 30.0
"""Seconds a crawl followed through a server may wait to start before the command says so."""


def _follow(client: Client, crawl_id: str) -> crawls.CrawlDetail:
    """Ask the server how far the crawl is (more and more rarely, up to every 2 s) until it
    ends, showing its progress on a terminal."""
    pause, began, hinted = 0.2, time.monotonic(), False
    with _progress() as hook:
        while True:
            detail = remote_crawls.show_crawl(client, crawl_id=crawl_id)
            if detail.summary.status not in crawls.LIVE:
                return detail
            job = detail.job
            if job is not None and job.phase:
                hook(Step(job.phase, job.source, job.done or 0, job.total))
            elif not hinted and time.monotonic() - began > STILL_QUEUED:
                hinted = True  # a server without a worker would keep us here: say so, once
                STATE.err.print(
                    f"{crawl_id} has not started after {STILL_QUEUED:.0f} s: the server's worker "
                    "is busy or not running (`steward crawl show` says why it waits). Ctrl-C "
                    "stops waiting, not the crawl; --no-wait only queues it",
                    markup=False,
                    highlight=False,
                )
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _show(summary: CrawlSummary, job: crawls.CrawlJob | None = None) -> None:
    if STATE.json:
        render.emit_json(
            {**summary.as_json(), "job": job} if job is not None else summary.as_json()
        )
        return
    what = "dry run (nothing written)" if summary.dry_run else summary.id
    if summary.status in crawls.LIVE:
        _show_live(summary, job)
        return
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
        STATE.err.print(f"[bold red]the crawl stopped:[/bold red] {escape(summary.error)}")


def _show_live(summary: CrawlSummary, job: crawls.CrawlJob | None) -> None:
    """A queued or running crawl: where it is, and how to follow or stop it."""
    pairs: list[tuple[str, object]] = [
        ("status", summary.status),
        (
            "queued" if summary.status == "queued" else "started",
            format_time(summary.started_at, STATE.tz),
        ),
        ("started by", summary.started_by),
        ("sources", ", ".join(s.name for s in summary.sources)),
    ]
    if job is not None:
        pairs += [
            ("now", job.describe()),
            ("schedule", job.schedule),
            ("job", f"{job.action_id} ({job.action_state}, {job.attempts} tries)"
             if job.action_id else None),
            ("time left", f"~{round(job.eta_seconds)}s" if job.eta_seconds else None),
        ]  # fmt: skip
        if job.action_id:
            pairs.append(("stop it", f"steward jobs cancel {job.action_id}"))
    STATE.out.print(Panel(render.kv_table(pairs), title=summary.id))


@app.command("sources")
def sources_(sources: SourcesFile = None) -> None:
    """Each source of the config and whether it can be listed now (and if not, why)."""
    client = _server(sources)
    if client is not None:
        checks = remote_crawls.check_sources(client)
    else:
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
    """Crawls, newest first, with their main counts; a queued or running one with how far
    it is or why it waits, a scheduled one with its schedule."""
    rows = backend.run(crawls.list_crawls, limit=limit)
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
                Column("schedule"),
                Column("progress"),
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
                    r.schedule,
                    r.progress,
                )
                for r in rows
            ],
        ),
        limit_width=("progress",),
    )


@app.command("show")
def show(crawl_id: Annotated[str, typer.Argument(help="The crawl's id (crl_…).")]) -> None:
    """One crawl's summary, as `steward crawl` showed it at its end; for a queued or running
    crawl, how far it is (or why it waits), and how to stop it."""
    detail = backend.run(crawls.show_crawl, crawl_id=crawl_id)
    _show(detail.summary, detail.job)


schedule_app = typer.Typer(
    help="Periodic crawls that `steward worker` queues and runs: add, list, remove.",
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule")


def _schedule_table(views: list[crawl_schedules.ScheduleView]) -> None:
    render.show_table(
        Table(
            "crawl schedules",
            [
                Column("name"),
                Column("every"),
                Column("full"),
                Column("sources"),
                Column("next run", "time"),
                Column("last run", "time"),
                Column("last crawl"),
                Column("last status"),
                Column("created_by"),
                Column("last error"),
            ],
            [
                (
                    v.name,
                    v.every,
                    "yes" if v.full else "",
                    ", ".join(v.sources),
                    v.next_run_at,
                    v.last_run_at,
                    v.last_crawl_id,
                    v.last_crawl_status,
                    v.created_by,
                    (v.last_error or "").splitlines()[0] if v.last_error else "",
                )
                for v in views
            ],
        ),
        limit_width=("last error", "sources"),
    )


@schedule_app.command("add")
def schedule_add(
    every: Annotated[
        str,
        typer.Option(
            "--every",
            help="How often: a number and a unit (m, h, d), e.g. 30m, 8h, 1d; from 5m to 365d.",
        ),
    ],
    name: Annotated[
        str | None,
        typer.Argument(
            help="The schedule's name (default: the sources file's name without its suffix, "
            "or `default` for steward.toml's sources)."
        ),
    ] = None,
    sources: SourcesFile = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Change the schedule of that name (interval, sources)."),
    ] = False,
    full: Full = False,
) -> None:
    """Crawl these sources every --every, on the worker: the first crawl at its next look
    (within seconds of `steward worker` running), then one each interval.

    The sources are kept with the schedule as they are now (editing the file later changes
    nothing; `add --replace` does), without secrets: credentials stay in environment
    variables, named by the *_env fields and read by the worker. While a crawl of any of the
    sources is queued or running, the turn is skipped and tried again five minutes later.
    The crawls run as you; `crawl list` shows them with the schedule's name."""
    interval = crawl_schedules.parse_every(every)
    chosen = name or (sources.stem if sources is not None else "default")
    client = _server(sources)
    if client is not None:
        view = remote_crawls.add_schedule(
            client, name=chosen, every=every, full=full, replace=replace
        )
    else:
        view = crawl_schedules.add(
            STATE.db,
            actor=STATE.actor,
            name=chosen,
            every=interval,
            config=_config(sources),
            replace=replace,
            full=full,
        )
    if STATE.json:
        render.emit_json(view)
        return
    STATE.out.print(
        f"crawl schedule {view.name}: every {view.every}, sources {', '.join(view.sources)}; "
        "the worker queues the first crawl at its next look (`steward worker`), then one every "
        f"{view.every}",
        markup=False,
        highlight=False,
    )


@schedule_app.command("list")
def schedule_list() -> None:
    """The periodic crawls you may see, with when each runs next and how its last one ended."""
    views = backend.run(crawl_schedules.list_)
    if STATE.json:
        render.emit_json(views)
        return
    _schedule_table(views)


@schedule_app.command("remove")
def schedule_remove(
    name: Annotated[str, typer.Argument(help="The schedule's name (`crawl schedule list`).")],
) -> None:
    """Stop a periodic crawl. A crawl it already queued still runs (`steward jobs cancel`
    stops it)."""
    view = backend.run(crawl_schedules.remove, name=name)
    if STATE.json:
        render.emit_json(view)
        return
    STATE.out.print(f"crawl schedule {view.name} removed", markup=False, highlight=False)
