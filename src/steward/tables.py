"""Tabular results and their exports (CSV, JSON, XLSX), shared by every surface.

Exports are written to a temporary file beside the target and renamed into place, so a report
is either complete or absent, never half-written (the seed wiped its tables before rewriting);
they hold no secrets, so their mode follows the umask.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal
from zoneinfo import ZoneInfo

from steward.errors import Detail, ValidationFailed
from steward.outfiles import atomic_file

ColumnKind = Literal["text", "int", "float", "time", "duration", "list"]
FORMATS = ("table", "csv", "json", "xlsx")


@dataclass(frozen=True)
class Column:
    name: str
    kind: ColumnKind = "text"
    title: str | None = None

    @property
    def machine_name(self) -> str:
        return f"{self.name}_seconds" if self.kind == "duration" else self.name


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[Sequence[Any]] = field(default_factory=list)
    caption: str = ""
    brief: tuple[str, ...] = ()
    """Columns worth a narrow terminal; files and JSON always get every column."""
    total: int | None = None
    """The report's number of rows, when ``rows`` holds only the first of them (a screen's
    worth); ``None`` when ``rows`` is the whole report."""

    @property
    def size(self) -> int:
        return len(self.rows) if self.total is None else self.total

    def first(self, limit: int | None) -> Table:
        """This table cut to its first ``limit`` rows (all, when ``None``)."""
        if limit is None or len(self.rows) <= limit:
            return self
        self.total, self.rows = self.size, self.rows[:limit]
        return self

    def records(self, tz: ZoneInfo) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            yield {
                c.machine_name: _machine(v, c, tz) for c, v in zip(self.columns, row, strict=True)
            }


def _machine(value: Any, col: Column, tz: ZoneInfo) -> Any:
    if value is None:
        return None
    if col.kind == "time":
        assert isinstance(value, datetime)
        return value.astimezone(tz).isoformat()
    if col.kind == "duration":
        return round(float(value), 3)
    if col.kind == "list":
        return list(value)
    return value


@contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` whole or not at all, with the umask's mode, creating its folder.

    For files in places Steward or a caller chose (``export``, the package report); a file a
    person names on the command line goes through :func:`steward.outfiles.open_output`, which
    also refuses missing folders and existing files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, binary="b" in mode) as fh:
        yield fh


def _csv_column(col: Column, values: tuple[Any, ...], tz: ZoneInfo) -> Sequence[Any]:
    """A column's values as ``write_csv`` writes them: ``records``, with lists joined by "; "
    and nothing for ``None`` (which the csv module writes as an empty field)."""
    if col.kind == "time":
        utc = tz.key == "UTC"
        return [
            None
            if v is None
            else (v.isoformat() if utc and v.tzinfo is UTC else _machine(v, col, tz))
            for v in values
        ]
    if col.kind == "duration":
        return [None if v is None else round(float(v), 3) for v in values]
    if col.kind == "list":
        return [None if v is None else "; ".join(list(v)) for v in values]
    if list in set(map(type, values)):
        return [("; ".join(v) if isinstance(v, list) else v) for v in values]
    return values


def write_csv(table: Table, out: IO[str], tz: ZoneInfo) -> None:
    """Column by column: each column's conversion is one pass, the rows are written by the
    csv module itself."""
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL)
    names = [c.machine_name for c in table.columns]
    writer.writerow(names)
    if len(names) != len(set(names)):
        # records() keys rows by column name: a repeated name keeps only its last value
        for rec in table.records(tz):
            writer.writerow(
                [
                    "; ".join(v) if isinstance(v, list) else ("" if v is None else v)
                    for v in rec.values()
                ]
            )
        return
    width = len(names)
    for start in range(0, len(table.rows), 50_000):
        batch = table.rows[start : start + 50_000]
        if set(map(len, batch)) != {width}:
            raise ValueError(f"every row must have {width} values, one per column")
        columns = zip(*batch, strict=True)
        converted = [
            _csv_column(c, values, tz) for c, values in zip(table.columns, columns, strict=True)
        ]
        writer.writerows(zip(*converted, strict=True))


def write_json(table: Table, out: IO[str], tz: ZoneInfo) -> None:
    json.dump(list(table.records(tz)), out, ensure_ascii=False, indent=1)
    out.write("\n")


def _xlsx_cell(value: Any, col: Column, tz: ZoneInfo) -> Any:
    if value is None:
        return None
    if col.kind == "time":
        return value.astimezone(tz).replace(tzinfo=None)  # Excel has no zones
    if col.kind == "list":
        return "; ".join(value)
    if col.kind == "duration":
        return round(float(value), 3)
    return value


def write_xlsx(table: Table, out: IO[bytes], tz: ZoneInfo) -> None:
    from openpyxl import Workbook

    # Convert every cell before openpyxl starts spooling to its own temporary file, so bad
    # data fails here and leaves no partial copy of the report anywhere.
    rows = [
        [_xlsx_cell(v, c, tz) for c, v in zip(table.columns, row, strict=True)]
        for row in table.rows
    ]
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=table.title[:31] or "report")
    ws.append([c.machine_name for c in table.columns])
    for cells in rows:
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    out.write(buf.getvalue())


WRITERS: dict[str, tuple[str, Callable[[Table, Any, ZoneInfo], None]]] = {
    "csv": ("w", write_csv),
    "json": ("w", write_json),
    "xlsx": ("wb", write_xlsx),
}


def check_format(fmt: str) -> None:
    if fmt not in WRITERS:
        raise ValidationFailed(
            f"cannot write {fmt!r} to a file",
            [Detail("unknown format", field="format", value=fmt, accepted=", ".join(WRITERS))],
        )


def is_binary(fmt: str) -> bool:
    """Whether ``fmt`` is written to a binary file (XLSX) rather than UTF-8 text."""
    check_format(fmt)
    return "b" in WRITERS[fmt][0]


def write_table(table: Table, fmt: str, out: IO[Any], tz: ZoneInfo) -> None:
    """``table`` as ``fmt`` to an open file (text for CSV and JSON, binary for XLSX)."""
    check_format(fmt)
    WRITERS[fmt][1](table, out, tz)


def export(table: Table, fmt: str, path: Path, tz: ZoneInfo) -> Path:
    check_format(fmt)
    mode, writer = WRITERS[fmt]
    with atomic_writer(path, mode) as fh:
        writer(table, fh, tz)
    return path
