"""``steward dataset overview``: the Datasets page as one HTML file, until Steward has a web UI.

A thin surface over :mod:`steward.services.dataset_overview`: the list's filters as
``steward dataset list`` takes them, the target refused before anything is read (a folder
that does not exist, a file already there without ``--force``), then the page written whole
or not at all. With ``--server`` the server renders the page (``GET /api/v1/datasets/overview``)
and it is written here the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from steward.cli import options as o
from steward.cli import render
from steward.cli.datasets import (
    ChangedFrom,
    ChangedTo,
    Curator,
    Duplicates,
    Force,
    Organism,
    Problems,
    Source,
    Stage,
    Tech,
    Title,
    _filter,
    app,
)
from steward.cli.state import STATE
from steward.outfiles import check_target, write_output
from steward.remote import dataset_tracker as remote_tracker
from steward.services import dataset_overview, dataset_views, places


@app.command()
def overview(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The HTML file to write (a new file in an existing folder; --force to "
            "replace one). It opens offline in any browser and fetches nothing.",
            dir_okay=False,
        ),
    ],
    force: Force = False,
    every: Annotated[
        str | None,
        typer.Option(
            help="One bar per day or per week in the chart (default: days, or weeks when the "
            "history is longer than 120 days). Days and weeks are those of --tz."
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
) -> None:
    """Write the datasets overview: a chart of datasets per state over time, the track and
    discover tables (sortable, with the list's filters in the page), and each dataset's
    history — one self-contained HTML file, for the datasets you may see.

    The filters choose which datasets the file holds (as in `steward dataset list`); the page
    narrows them further as you read it. Times and the chart's days are in --tz.

    steward dataset overview -o overview.html --project atlas --tz Europe/Helsinki"""
    places.refuse_steward_file(STATE.settings, output, field="output")
    check_target(output, overwrite=force)  # refused before the database is read
    flt = _filter(
        project, state, None, source, stage, tech, organism, curator, title, duplicates,
        problems, changed_from, changed_to,
    )  # fmt: skip
    client = STATE.remote
    if client is not None:  # the page the server renders, with its stages and mappings
        dataset_overview.check_every(every)
        found = remote_tracker.overview(client, flt=flt, every=every, tz=STATE.tz)
        write_output(output, found.pop("html"), overwrite=force)
        written = output
    else:
        data = dataset_overview.overview(
            STATE.db,
            actor=STATE.actor,
            flt=flt,
            tz=STATE.tz,
            stages=dataset_overview.configured_stages(STATE.settings),
            mappings=dataset_views.configured_mappings(STATE.settings),
            every=every,
        )
        written = dataset_overview.write_overview(data, output, force=force)
        found = dataset_overview.figures(data)
    if STATE.json:
        render.emit_json({"output": str(written), **found})
    else:
        STATE.out.print(
            f"Wrote the overview of {found['datasets']} dataset(s) to {written} "
            f"(open it in a browser; it works offline)"
        )
