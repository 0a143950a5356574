"""Reading manifest files (CSV, TSV, tab-separated TXT, XLSX) into lines of text cells.

Everything here reports problems as details with the file's name and the line, and keeps
going: a user fixing a LIMS export wants the whole list at once. Values are only stripped here;
what they mean is checked in :mod:`steward.packaging.manifest_rows`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from steward.errors import Detail
from steward.packaging.manifest_text import decode

SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t", ".xlsx": None}
ACCEPTED_FILES = "CSV (.csv), TSV (.tsv, .tab, tab-separated .txt) or Excel (.xlsx)"


@dataclass
class Record:
    line: int
    cells: list[str]


@dataclass
class Sheet:
    """A manifest file as lines of stripped text cells, header first."""

    label: str
    header: list[str] = field(default_factory=list)
    header_line: int = 1
    records: list[Record] = field(default_factory=list)
    complete: bool = True
    """False when the file could not be read to its end; checks needing every row are skipped."""


def detail(
    label: str,
    column: str | None,
    message: str,
    *,
    row: int | None = None,
    value: str | None = None,
    accepted: str | None = None,
) -> Detail:
    """A detail whose field names the file, so two manifests' problems are told apart."""
    field_name = f"{label}:{column}" if column else label
    return Detail(message, field=field_name, row=row, value=value, accepted=accepted)


def read_sheet(
    path: Path, problems: list[Detail], warnings: list[Detail], *, label: str | None = None
) -> Sheet:
    label = label or path.name
    sheet = Sheet(label)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        problems.append(
            detail(
                label,
                None,
                f"unsupported kind of file: {suffix or path.name!r}",
                value=suffix or path.name,
                accepted=ACCEPTED_FILES,
            )
        )
        sheet.complete = False
        return sheet
    try:
        if suffix == ".xlsx":
            _read_xlsx(path, sheet, problems, warnings)
        else:
            _read_text(path, path.read_bytes(), SUFFIXES[suffix] or ",", sheet, problems)
    except FileNotFoundError:
        problems.append(detail(label, None, f"no such file: {path}", value=str(path)))
        sheet.complete = False
        return sheet
    except OSError as exc:
        problems.append(detail(label, None, f"cannot read the file: {exc.strerror or exc}"))
        sheet.complete = False
        return sheet
    if not sheet.header and sheet.complete:
        problems.append(detail(label, None, "the file is empty", row=1))
        sheet.complete = False
    elif sheet.complete and not sheet.records:
        problems.append(
            detail(label, None, "the file has a header but no rows", row=sheet.header_line)
        )
    return sheet


def _read_text(
    path: Path, raw: bytes, delimiter: str, sheet: Sheet, problems: list[Detail]
) -> None:
    decoded = decode(raw, sheet.label, problems)
    if not decoded.usable:
        sheet.complete = False
        return
    text, bad_lines = decoded.text, decoded.bad_lines
    if bad_lines:
        # the rows on those lines are unknown: "header but no rows" or "library not in the
        # sample manifest" would blame the file for what its encoding hid
        sheet.complete = False
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    previous = 0
    rows: list[tuple[int, int, list[str]]] = []
    try:
        for cells in reader:
            rows.append((previous + 1, reader.line_num, cells))
            previous = reader.line_num
    except csv.Error as exc:
        problems.append(
            detail(
                sheet.label,
                None,
                f"cannot read this line: {exc} (is the file truncated or a quote unclosed?)",
                row=previous + 1,
            )
        )
        sheet.complete = False
    for start, end, cells in rows:
        if any(n in bad_lines for n in range(start, end + 1)):
            if not sheet.header:
                sheet.complete = False
                return
            continue
        stripped = [c.strip() for c in cells]
        if not any(stripped):
            continue
        if not sheet.header:
            sheet.header, sheet.header_line = stripped, start
            other = "," if delimiter == "\t" else "\t"
            if len(stripped) == 1 and other in stripped[0]:
                sep = "commas" if other == "," else "tabs"
                problems.append(
                    detail(
                        sheet.label,
                        None,
                        f"the header is separated by {sep}, not by the separator this kind "
                        f"of file uses ({'tab' if delimiter == chr(9) else 'comma'})",
                        row=start,
                        accepted=ACCEPTED_FILES,
                    )
                )
                sheet.complete = False
                return
            continue
        sheet.records.append(Record(start, stripped))


def _cell_text(value: object) -> str:
    """Spreadsheet cells as the text a user typed: 1234.0 → "1234" (sizes, lanes)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip()


def _read_xlsx(path: Path, sheet: Sheet, problems: list[Detail], warnings: list[Detail]) -> None:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, EOFError) as exc:
        problems.append(
            detail(
                sheet.label, None, f"not a readable Excel workbook ({exc})", accepted=ACCEPTED_FILES
            )
        )
        sheet.complete = False
        return
    try:
        if not book.worksheets:
            return
        ws = book.worksheets[0]
        if len(book.worksheets) > 1:
            warnings.append(
                detail(
                    sheet.label,
                    None,
                    f"only the first sheet ({ws.title!r}) was read; "
                    f"{len(book.worksheets) - 1} other sheet(s) ignored",
                )
            )
        ws.reset_dimensions()  # some writers record wrong sizes, which would cut rows off
        for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = [_cell_text(v) for v in values]
            if not any(cells):
                continue
            if not sheet.header:
                sheet.header, sheet.header_line = cells, number
            else:
                sheet.records.append(Record(number, cells))
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError) as exc:
        problems.append(detail(sheet.label, None, f"the workbook is damaged ({exc})"))
        sheet.complete = False
    finally:
        book.close()
    # openpyxl does not pad short rows in read-only mode without known dimensions
    width = len(sheet.header)
    for rec in sheet.records:
        if len(rec.cells) < width:
            rec.cells.extend([""] * (width - len(rec.cells)))
