"""``steward report …``: tracking table, change log, time in state and SLA breaches."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from steward.cli import options as o
from steward.cli import render
from steward.cli.state import STATE
from steward.errors import Detail, ValidationFailed
from steward.outfiles import open_output
from steward.remote import operations as remote
from steward.services import places
from steward.services import reports as svc
from steward.services.kinds import Filter
from steward.services.requests import RequestFilter
from steward.tables import FORMATS, Table, is_binary

SCREEN_ROWS = 500
"""Rows a report shows on screen by default: a million-row change log belongs in a file."""

app = typer.Typer(
    help="Reports over access requests, derived from the event log.", no_args_is_help=True
)


def _export(name: str, flt: Filter, fmt: str, output: Path, force: bool) -> int:
    """Write the whole report to ``output``: checked first (an existing folder, no file in
    the way unless --force, not inside a package's bag), complete or absent, umask's mode."""
    places.refuse_steward_file(STATE.settings, output, field="output")
    client = STATE.remote
    with open_output(output, binary=is_binary(fmt), overwrite=force) as out:
        if client is not None:
            return remote.write_report(client, name, flt=flt, fmt=fmt, out=out, tz=STATE.tz)
        return svc.write_report(
            STATE.db, name, actor=STATE.actor, flt=flt, fmt=fmt, out=out, tz=STATE.tz
        )


def _table(name: str, flt: Filter, limit: int | None) -> Table:
    client = STATE.remote
    if client is None:
        return svc.REPORTS[name](STATE.db, actor=STATE.actor, flt=flt, limit=limit)
    return remote.report_table(client, name, flt=flt, tz=STATE.tz).first(limit)


def _run(
    name: str,
    flt: Filter,
    fmt: str,
    output: Path | None,
    limit: int,
    force: bool = False,
) -> None:
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"unknown format {fmt!r}",
            [Detail("unknown format", field="format", value=fmt, accepted=", ".join(FORMATS))],
        )
    if fmt != "table" and output is None and fmt == "xlsx":
        raise ValidationFailed(
            "xlsx needs --output FILE", [Detail("required for xlsx", field="output")]
        )
    if output is not None:
        rows = _export(name, flt, "csv" if fmt == "table" else fmt, output, force)
        if STATE.json:
            render.emit_json({"report": name, "rows": rows, "output": str(output)})
        else:
            STATE.out.print(f"Wrote {rows} row(s) to {output}")
        return
    render.refuse_csv_as_json(fmt, output)
    if fmt == "csv":
        client = STATE.remote
        if client is None:
            svc.print_report_csv(STATE.db, name, actor=STATE.actor, flt=flt, tz=STATE.tz)
        else:
            remote.write_report(client, name, flt=flt, fmt="csv", out=sys.stdout, tz=STATE.tz)
        return
    screen = None if STATE.json or fmt == "json" or not limit else limit
    table = _table(name, flt, screen)
    if fmt == "json":
        from steward.tables import write_json

        write_json(table, sys.stdout, STATE.tz)
        return
    render.show_table(table, limit_width=("title", "intended_use", "reason"))


def _command(name: str, doc: str) -> None:
    def handler(
        project: o.Project = None,
        state: o.States = None,
        requester: o.Requester = None,
        reviewer: o.Reviewer = None,
        created_from: o.CreatedFrom = None,
        created_to: o.CreatedTo = None,
        decided_from: o.DecidedFrom = None,
        decided_to: o.DecidedTo = None,
        fmt: Annotated[
            str, typer.Option("--format", "-f", help="table, csv, json or xlsx.")
        ] = "table",
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                help="Write to this new file (atomically) instead of the screen; its folder "
                "must exist.",
            ),
        ] = None,
        limit: Annotated[
            int,
            typer.Option(
                "--limit",
                min=0,
                help="On screen, show at most this many rows (0: all). Files, CSV and JSON "
                "always hold every row.",
            ),
        ] = SCREEN_ROWS,
        force: Annotated[
            bool, typer.Option("--force", help="Replace the --output file if it exists.")
        ] = False,
    ) -> None:
        flt = o.request_filter(
            project, state, requester, reviewer, created_from, created_to, decided_from, decided_to
        )
        _run(name, flt, fmt, output, limit, force)

    handler.__doc__ = doc
    app.command(name)(handler)


_command("tracking", "One row per request: latest state, people, datasets, total duration.")
_command("changelog", "One row per transition with the time spent in the state it left.")
_command("time-in-state", "Per state: count, median, p90, max, SLA target and breaches.")
_command("sla", "Requests sitting in a state longer than its SLA right now.")


def print_demo_reports(*, project: str) -> None:
    flt = RequestFilter(project=project)
    render.show_table(
        svc.tracking_table(STATE.db, actor=STATE.actor or "coord-sam", flt=flt),
        limit_width=("title", "intended_use"),
    )
    render.show_table(svc.time_in_state(STATE.db, actor=STATE.actor or "coord-sam", flt=flt))
    render.show_table(
        svc.sla_breaches(STATE.db, actor=STATE.actor or "coord-sam", flt=flt),
        limit_width=("title",),
    )
