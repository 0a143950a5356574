"""``steward dataset overview``: the Datasets page as one HTML file, until Steward has a web UI.

A thin surface over :mod:`steward.services.dataset_overview`: the list's filters as
``steward dataset list`` takes them, the target refused before anything is read (a folder
that does not exist, a file already there without ``--force``), then the page written whole
or not at all. It reads the database itself (with ``--server`` it stops with exit code 2).
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
from steward.outfiles import check_target
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
    if STATE.remote is not None:
        raise STATE.local_only()
    places.refuse_steward_file(STATE.settings, output, field="output")
    check_target(output, overwrite=force)  # refused before the database is read
    flt = _filter(
        project, state, None, source, stage, tech, organism, curator, title, duplicates,
        problems, changed_from, changed_to,
    )  # fmt: skip
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
    if STATE.json:
        render.emit_json(
            {
                "output": str(written),
                "datasets": len(data.datasets),
                "events": data.events,
                "every": data.series.every,
                "counts": data.counts,
            }
        )
    else:
        STATE.out.print(
            f"Wrote the overview of {len(data.datasets)} dataset(s) to {written} "
            f"(open it in a browser; it works offline)"
        )
