"""``steward dataset …``: the datasets the crawl keeps, named by accession (or ``ds_`` id).

Hand-written rather than generated (:mod:`steward.cli.generic`): people know a dataset by its
accession, and ``show`` gives its metadata, places, files and problems besides the timeline.
Against a server (``--server``) list, history and the commands go through the generated
``/api/v1/datasets`` endpoints; ``show`` then has what the API gives (no places or files).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel

from steward.cli import backend, render
from steward.cli import options as o
from steward.cli.state import STATE
from steward.errors import Detail, ValidationFailed
from steward.remote import subjects as remote
from steward.remote.client import Client
from steward.services import dataset_views, datasets, subjects
from steward.services.datasets import DATASET, DatasetView
from steward.services.kinds import Filter
from steward.services.timeline import History
from steward.tables import FORMATS, Column, Table, write_table
from steward.timeutil import format_time

app = typer.Typer(
    help="Datasets found by `steward crawl`: list, show, history, comment. States and who may "
    "do what: `steward workflow show dataset`.",
    no_args_is_help=True,
)

Ref = Annotated[str, typer.Argument(help="The dataset's accession (E-MTAB-1234) or id (ds_…).")]
InProject = Annotated[
    str | None,
    typer.Option("--project", "-p", help="The project, when two hold the same accession."),
]


def _remote_id(client: Client, ref: str, project: str | None) -> str:
    """The id of the dataset ``ref`` names, asked of the server."""
    from steward.ids import looks_like_id

    if looks_like_id(ref):
        return ref
    found = remote.list_(client, DATASET, flt=DATASET.filter(project=project, accession=ref))
    if len(found) == 1:
        return str(found[0].id)
    if not found:
        from steward.services.access import not_found

        raise not_found("dataset", "dataset", ref)
    projects = ", ".join(v.project_id for v in found)
    raise ValidationFailed(
        f"{ref} is a dataset of several projects ({projects}): name one with --project",
        [Detail("ambiguous accession", field="dataset", value=ref, accepted=projects)],
    )


Source = Annotated[str | None, typer.Option(help="Only datasets found in this source now.")]
Stage = Annotated[
    str | None,
    typer.Option(
        help="Only datasets found in this stage now (any of its places), whichever stage won: "
        "a dataset loading and still in incoming has --stage incoming, --state loading."
    ),
]
Tech = Annotated[str | None, typer.Option(help="Only datasets with this technology.")]
Organism = Annotated[
    str | None, typer.Option(help="Only datasets whose organism contains this text.")
]
Curator = Annotated[
    str | None, typer.Option(help="Only datasets whose curator contains this text.")
]
Title = Annotated[str | None, typer.Option(help="Only datasets whose title contains this text.")]
Duplicates = Annotated[
    bool, typer.Option("--duplicates", help="Only duplicates of another dataset.")
]
Problems = Annotated[bool, typer.Option("--problems", help="Only datasets with problems.")]
ChangedFrom = Annotated[
    str | None, typer.Option(help="Changed on or after this date/time (YYYY-MM-DD, in --tz).")
]
ChangedTo = Annotated[
    str | None, typer.Option(help="Changed on or before this date (whole day included).")
]
View = Annotated[
    str | None,
    typer.Option(
        help="track: the ingested datasets (every state but external, missing included) and "
        "where each is found now; discover: the external ones, with the ingested datasets "
        'that are the same experiment ("already ingested"; with --server, by the server\'s '
        "accession mappings)."
    ),
]
Force = Annotated[bool, typer.Option("--force", help="Replace the file (or object) if it exists.")]


def _filter(
    project: str | None,
    state: list[str] | None,
    limit: int | None,
    source: str | None,
    stage: str | None,
    tech: str | None,
    organism: str | None,
    curator: str | None,
    title: str | None,
    duplicates: bool,
    problems: bool,
    changed_from: str | None,
    changed_to: str | None,
) -> Filter:
    return o.filter_of(
        DATASET,
        project=project,
        state=state,
        limit=limit,
        source=source,
        stage=stage.strip().lower() if stage else None,
        tech=tech,
        organism=organism,
        curator=curator,
        title=title,
        duplicates="yes" if duplicates else None,
        problems="yes" if problems else None,
        changed_from=changed_from,
        changed_to=changed_to,
    )


def _table(flt: Filter, sort: str, view: str | None) -> tuple[Table, list[DatasetView] | None]:
    """The rows asked for: a view or the plain list, here or through the API (a view
    through a server is decided with the server's accession mappings)."""
    if view is not None:
        dataset_views.check_view(view)
        if STATE.remote is not None:  # the server's rows, with its accession mappings
            from steward.remote import dataset_tracker

            table = dataset_tracker.view_table(
                STATE.remote, view=view, flt=flt, sort=sort, tz=STATE.tz
            )
            return table, None
        mappings = dataset_views.configured_mappings(STATE.settings)
        table = dataset_views.view_table(
            STATE.db, actor=STATE.actor, view=view, flt=flt, sort=sort, mappings=mappings
        )
        return table, None
    views: list[DatasetView] = backend.listed(
        DATASET,
        flt,
        sort,
        lambda: subjects.list_(STATE.db, DATASET, actor=STATE.actor, flt=flt, sort=sort),
    )
    return dataset_views.plain_table(views), views


@app.command("list")
def list_(
    project: o.Project = None,
    state: o.States = None,
    source: Source = None,
    stage: Stage = None,
    tech: Tech = None,
    organism: Organism = None,
    curator: Curator = None,
    title: Title = None,
    duplicates: Duplicates = False,
    problems: Problems = False,
    changed_from: ChangedFrom = None,
    changed_to: ChangedTo = None,
    limit: o.Limit = None,
    sort: o.Sort = "created",
    view: View = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table (the screen), csv, json or xlsx.")
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this new file (whole or not at all) instead of the screen; its "
            "folder must exist. Required for xlsx.",
        ),
    ] = None,
    force: Force = False,
) -> None:
    """List the datasets you may see; every filter combines with the others.

    Without --view, the columns of the plain list; --view track or discover for the
    tracker's views (as `steward dataset export` writes them)."""
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"unknown format {fmt!r}",
            [Detail("unknown format", field="format", value=fmt, accepted=", ".join(FORMATS))],
        )
    if fmt == "xlsx" and output is None:
        raise ValidationFailed(
            "xlsx needs --output FILE",
            [Detail("required for xlsx", field="output", accepted="--output overview.xlsx")],
        )
    flt = _filter(
        project, state, limit, source, stage, tech, organism, curator, title, duplicates,
        problems, changed_from, changed_to,
    )  # fmt: skip
    table, views = _table(flt, sort, view)
    if output is not None:
        written = "csv" if fmt == "table" else fmt
        dataset_views.export(
            table, str(output), fmt=written, tz=STATE.tz, settings=STATE.settings, force=force
        )
        if STATE.json:
            render.emit_json({"rows": len(table.rows), "output": str(output), "format": written})
        else:
            STATE.out.print(f"Wrote {len(table.rows)} dataset(s) to {output}")
        return
    render.refuse_csv_as_json(fmt, output)
    if fmt in ("csv", "json"):
        write_table(table, fmt, sys.stdout, STATE.tz)
        return
    if STATE.json and views is not None:
        render.emit_json(views)  # the plain list's --json: every field of each dataset
        return
    render.show_table(table, limit_width=("title",))


@app.command()
def export(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="A new file (overview.xlsx) or an S3 object (s3://bucket/overview.xlsx); "
            "the format follows its extension (.csv, .json, .xlsx) unless --format.",
        ),
    ],
    view: View = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="csv, json or xlsx (default: from --to)."),
    ] = None,
    force: Force = False,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            help="The S3 service for an s3:// --to (default: s3_endpoint in the settings, "
            "else AWS_ENDPOINT_URL). Keys come from the settings or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, never from the command line."
        ),
    ] = None,
    project: o.Project = None,
    state: o.States = None,
    source: Source = None,
    stage: Stage = None,
    tech: Tech = None,
    organism: Organism = None,
    curator: Curator = None,
    title: Title = None,
    duplicates: Duplicates = False,
    problems: Problems = False,
    changed_from: ChangedFrom = None,
    changed_to: ChangedTo = None,
    sort: o.Sort = "created",
) -> None:
    """Write the datasets (a view, or the plain list) to a file or an S3 object for a team
    that wants a shared sheet: every matching row, whole or not at all, never over an
    existing one without --force, and no secret in it.

    steward dataset export --view discover --to s3://team/overview.xlsx --project atlas"""
    written = dataset_views.format_of(to, fmt)
    flt = _filter(
        project, state, None, source, stage, tech, organism, curator, title, duplicates,
        problems, changed_from, changed_to,
    )  # fmt: skip
    table = _table(flt, sort, view)[0]
    where = dataset_views.export(
        table,
        to,
        fmt=written,
        tz=STATE.tz,
        settings=STATE.settings,
        force=force,
        endpoint_url=endpoint_url,
    )
    if STATE.json:
        render.emit_json({"rows": len(table.rows), "to": where, "format": written})
    else:
        STATE.out.print(f"Wrote {len(table.rows)} dataset(s) to {where} ({written})")


def _problem(p: dict[str, Any]) -> str:
    rest = {k: v for k, v in p.items() if k != "kind"}
    return f"{p.get('kind')}: " + ", ".join(f"{k}={v}" for k, v in rest.items())


@app.command()
def show(
    dataset: Ref,
    project: InProject = None,
    files: Annotated[
        int, typer.Option(min=0, help="Show at most this many of its files (0: all).")
    ] = 50,
) -> None:
    """A dataset in full: metadata, places, files, problems and timeline."""
    client = STATE.remote
    if client is not None:
        view, found = remote.detail(client, DATASET, _remote_id(client, dataset, project))
        if STATE.json:
            render.emit_json({"dataset": view, **found})
            return
        _panel(view, History.model_validate(found), list(found["allowed_actions"]))
        render.show_timeline(History.model_validate(found).timeline)
        return
    detail = datasets.detail(
        STATE.db, actor=STATE.actor, dataset=dataset, project=project, files=files or None
    )
    if STATE.json:
        render.emit_json(detail)
        return
    _panel(detail.dataset, detail.history, detail.available_actions)
    _metadata(detail.dataset.fields)
    render.show_table(
        Table(
            "places",
            [
                Column("source"),
                Column("stage"),
                Column("location"),
                Column("present"),
                Column("complete"),
                Column("first seen", "time"),
                Column("last seen", "time"),
            ],
            [
                (
                    x.source,
                    x.stage,
                    x.location,
                    x.present,
                    x.complete,
                    x.first_seen_at,
                    x.last_seen_at,
                )
                for x in detail.locations
            ],
        ),
        limit_width=("location",),
    )
    render.show_table(
        Table(
            "files",
            [
                Column("source"),
                Column("path"),
                Column("size"),
                Column("outcome"),
                Column("first seen", "time"),
                Column("last seen", "time"),
            ],
            [
                (f.source, f.path, render.size(f.size), f.outcome, f.first_seen_at, f.last_seen_at)
                for f in detail.files
            ],
            total=detail.files_total if detail.files_total > len(detail.files) else None,
        ),
        limit_width=("path",),
    )
    render.show_timeline(detail.history.timeline)


def _panel(view: DatasetView, history: History, allowed: list[str]) -> None:
    tz = STATE.tz
    rows = [
        ("accession", view.accession),
        ("id", view.id),
        ("project", view.project_id),
        ("state", render.state_for(view.state, history.current_state_for)),
        ("title", view.title),
        ("experiment type", view.experiment_type),
        ("organism", ", ".join(view.organism)),
        ("curator", view.curator),
        ("technologies", ", ".join(view.technologies)),
        ("secondary accessions", ", ".join(view.secondary_accessions)),
        ("duplicate of", view.duplicate_of),
        ("problems", "\n".join(_problem(p) for p in view.problems)),
        ("last seen", format_time(view.last_seen_at, tz) if view.last_seen_at else None),
        ("missing since", format_time(view.missing_since, tz) if view.missing_since else None),
        ("you may now", ", ".join(allowed) or "nothing"),
    ]
    STATE.out.print(Panel(render.kv_table(rows), title=view.accession, title_align="left"))


def _metadata(fields: dict[str, Any]) -> None:
    if not fields:
        return
    pairs = [
        (k, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
        for k, v in sorted(fields.items())
    ]
    STATE.out.print(Panel(render.kv_table(pairs), title="metadata", title_align="left"))


@app.command()
def history(dataset: Ref, project: InProject = None) -> None:
    """A dataset's timeline, with the time it spent in each stage."""
    client = STATE.remote
    if client is not None:
        found = remote.detail(client, DATASET, _remote_id(client, dataset, project))[1]
        timeline = History.model_validate(found)
    else:
        timeline = datasets.history(STATE.db, actor=STATE.actor, dataset=dataset, project=project)
    if STATE.json:
        render.emit_json(
            {
                "timeline": timeline.timeline,
                "time_in_state": timeline.time_in_state,
                "current_state_for": timeline.current_state_for,
            }
        )
        return
    render.show_timeline(timeline.timeline)
    render.show_table(
        Table(
            "time in each state",
            [Column("state"), Column("time", "duration")],
            list(timeline.time_in_state.items()),
        )
    )


def _act(dataset: str, project: str | None, command: str, **payload: Any) -> DatasetView:
    client = STATE.remote
    if client is not None:
        sid = _remote_id(client, dataset, project)
        view: DatasetView = remote.act(client, DATASET, subject_id=sid, command=command, **payload)
        return view
    with STATE.db.read() as s:
        sid = datasets.resolve(s, STATE.actor, dataset, project=project)
    found: DatasetView = subjects.act(
        STATE.db, DATASET, actor=STATE.actor, subject_id=sid, command=command, payload=payload
    )
    return found


@app.command()
def comment(
    dataset: Ref,
    text: Annotated[str, typer.Argument(help="The note.")],
    project: InProject = None,
) -> None:
    """Add a note to a dataset's timeline."""
    render.done(_act(dataset, project, "comment", text=text), "commented")


@app.command()
def withdraw(
    dataset: Ref,
    reason: Annotated[str | None, typer.Option(help="Why it is gone for good.")] = None,
    project: InProject = None,
) -> None:
    """Stop tracking a missing dataset that is gone for good (stewards and admins)."""
    payload = {"reason": reason} if reason else {}
    render.done(_act(dataset, project, "withdraw", **payload), "withdrawn")


from steward.cli import dataset_checks as _checks  # noqa: E402,F401  (registers verify, files, duplicates)
from steward.cli import dataset_overview as _overview  # noqa: E402,F401  (registers overview)
