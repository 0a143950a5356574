"""Terminal output: Rich tables for people, JSON for scripts, one error renderer."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from rich.table import Table as RichTable
from rich.text import Text

from steward.cli.state import STATE
from steward.errors import Detail, StewardError, ValidationFailed
from steward.packaging.report import human_size
from steward.redact import redact, redact_tree
from steward.services.timeline import TimelineEntry
from steward.tables import Column, Table
from steward.timeutil import format_duration, format_time

WIDE = 260
"""At this terminal width and above, tables show every column."""


def cell(value: Any, col: Column, tz: ZoneInfo) -> str:
    if value is None:
        return "-"
    if col.kind == "time":
        assert isinstance(value, datetime)
        return format_time(value, tz)
    if col.kind == "duration":
        return format_duration(float(value))
    if col.kind == "list":
        return ", ".join(value)
    if isinstance(value, bool):
        return "yes" if value else ""
    return str(value)


def show_table(table: Table, *, limit_width: Sequence[str] = ()) -> None:
    """``table`` on screen (or as JSON with ``--json``), saying when it holds only the first
    rows of a longer report."""
    st = STATE
    if st.json:
        emit_json(list(table.records(st.tz)))
        return
    rt = RichTable(
        title=table.title,
        caption=table.caption or None,
        show_lines=False,
        header_style="bold",
        title_justify="left",
        caption_justify="left",
    )
    shown = [
        i
        for i, c in enumerate(table.columns)
        if not table.brief or st.out.width >= WIDE or c.name in table.brief
    ]
    for i in shown:
        col = table.columns[i]
        numeric = col.kind in ("int", "float", "duration")
        rt.add_column(
            col.title or col.name,
            justify="right" if numeric else "left",
            overflow="ellipsis" if col.name in limit_width else "fold",
            no_wrap=col.name in limit_width or col.name in ("id", "request"),
            max_width=40 if col.name in limit_width else None,
        )
    rows, size = table.rows, table.size
    for row in rows:
        # Text, not markup: a value (a title, a path) is shown as it is, brackets and all.
        rt.add_row(*(Text(cell(row[i], table.columns[i], st.tz)) for i in shown))
    st.out.print(rt)
    hidden = len(table.columns) - len(shown)
    note = f"; {hidden} more column(s) in --json, --format csv/xlsx" if hidden else ""
    count = f"{size:,} row(s)"
    if len(rows) < size:
        count = (
            f"the first {len(rows):,} of {size:,} rows (--limit 0 shows all; "
            "--format csv/json/xlsx --output FILE writes all)"
        )
    st.out.print(f"[dim]{count}; times in {st.tz.key}{note}[/dim]")


def done(view: Any, verb: str) -> None:
    """What a command that changed a tracked subject answers: the subject (``--json``) or
    one line saying what happened and where it stands now."""
    if STATE.json:
        emit_json(view)
    else:
        STATE.out.print(f"{view.id} {verb}: now [bold]{view.state}[/bold] (version {view.version})")


def state_for(state: str, seconds: float | None) -> str:
    """A subject's state and how long it has been in it ("submitted for 3d 4h")."""
    return state if seconds is None else f"{state} for {format_duration(seconds)}"


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def refuse_csv_as_json(fmt: str, output: object) -> None:
    """``--json`` promises JSON on stdout: CSV there would break every script reading it."""
    if STATE.json and fmt == "csv" and output is None:
        raise ValidationFailed(
            "--json prints JSON: give --format json, or --format csv without --json (or with "
            "--output FILE)",
            [Detail("csv on stdout with --json", field="format", value=fmt, accepted="json")],
        )


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), ensure_ascii=False, indent=1) + "\n")


def kv_table(pairs: Iterable[tuple[str, Any]]) -> RichTable:
    t = RichTable(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k, v in pairs:
        t.add_row(k, Text("-" if v in (None, "", []) else str(v)))
    return t


def show_error(exc: StewardError) -> None:
    """The one place an error reaches the terminal; credentials are masked here once more,
    whatever the code that raised it did."""
    if STATE.json:
        problem = redact_tree(exc.as_problem())
        sys.stdout.write(json.dumps(problem, ensure_ascii=False, indent=1) + "\n")
        return
    STATE.err.print(f"[bold red]error:[/bold red] {redact(exc.message)}", highlight=False)
    for d in exc.details[:200]:
        STATE.err.print(f"  - {redact(str(d))}", highlight=False, markup=False)
    if len(exc.details) > 200:
        STATE.err.print(f"  … and {len(exc.details) - 200} more", highlight=False)


def size(value: int | None) -> str:
    """Bytes as people read them, in the same (decimal) units as the package report."""
    return "-" if value is None else human_size(value)


def show_timeline(timeline: Sequence[TimelineEntry]) -> None:
    show_table(
        Table(
            "timeline",
            [
                Column("#", "int"),
                Column("at", "time"),
                Column("actor"),
                Column("event"),
                Column("from"),
                Column("to"),
                Column("time in previous state", "duration"),
                Column("note"),
            ],
            [
                (
                    e.seq,
                    e.at,
                    e.actor,
                    e.type,
                    e.from_state or "",
                    e.to_state,
                    e.time_in_previous_state,
                    ("OUT OF ORDER: dated before the event it follows. " * e.out_of_order)
                    + (e.reason or ""),
                )
                for e in timeline
            ],
        ),
        limit_width=("note",),
    )
