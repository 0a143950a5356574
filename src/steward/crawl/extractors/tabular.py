"""Tab-delimited text as MAGE-TAB writes it: quoted cells, comment lines, padded rows.

MAGE-TAB 1.1 (and the TSV sheets curators keep next to it) is what a spreadsheet exports as
"tab-delimited text": a cell may be wrapped in double quotes so that it can hold tabs or line
breaks; inside quotes a quote is written doubled (``""``) by spreadsheets or backslash-escaped
(``\\"``) by older tools, and both are read; a line whose first cell starts with ``#`` is a
comment; empty lines and the empty cells a spreadsheet pads rows with carry nothing. Only this
reader is needed because :mod:`csv` cannot report the line a broken quote started on, and a
broken file must say where it is broken.
"""

from __future__ import annotations

from dataclasses import dataclass

from steward.crawl.extractors.base import ExtractionFailed


@dataclass(frozen=True)
class Row:
    line: int
    """The line (1-based) the row starts on."""
    cells: tuple[str, ...]


def read_rows(text: str, *, comments: bool = True) -> list[Row]:
    """Every non-empty, non-comment row, trailing empty cells removed.

    Unquoted cells are stripped of surrounding spaces; quoted cells keep what is inside the
    quotes. An unclosed quote raises :class:`ExtractionFailed` naming its line.
    """
    rows: list[Row] = []
    cells: list[str] = []
    cell: list[str] = []
    line = row_line = 1
    i, n = 0, len(text)
    quoted_cell = False
    at_cell_start = True
    first_quoted = False  # a quoted first cell is data even when it starts with "#"

    def end_cell() -> None:
        nonlocal quoted_cell, at_cell_start
        value = "".join(cell)
        cells.append(value if quoted_cell else value.strip())
        cell.clear()
        quoted_cell, at_cell_start = False, True

    def end_row() -> None:
        nonlocal row_line
        end_cell()
        while cells and cells[-1] == "":
            cells.pop()
        is_comment = comments and bool(cells) and cells[0].startswith("#") and not first_quoted
        if cells and not is_comment:
            rows.append(Row(row_line, tuple(cells)))
        cells.clear()
        row_line = line

    while i < n:
        char = text[i]
        if at_cell_start and char == '"':
            if not cells:
                first_quoted = True
            start = line
            i += 1
            while True:
                if i >= n:
                    raise ExtractionFailed(f"line {start}: a quoted value is never closed")
                char = text[i]
                if char in '\\"' and text[i + 1 : i + 2] == '"':  # \" or "": a quote
                    cell.append('"')
                    i += 2
                elif char == '"':
                    i += 1
                    break
                else:
                    if char == "\n" or (char == "\r" and text[i + 1 : i + 2] != "\n"):
                        line += 1
                    cell.append(char)
                    i += 1
            quoted_cell, at_cell_start = True, False
            continue
        if char == "\t":
            end_cell()
        elif char in "\r\n":
            if char == "\r" and text[i + 1 : i + 2] == "\n":
                i += 1
            line += 1
            end_row()
            first_quoted = False
        else:
            if not (quoted_cell and char == " "):  # spaces after a closing quote: padding
                cell.append(char)
            at_cell_start = False
        i += 1
    if cell or cells or quoted_cell:
        end_row()
    return rows


def split_tag(tag: str) -> tuple[str, str | None]:
    """``Comment [AEExperimentType]`` → (``comment``, ``aeexperimenttype``); ``Person Last
    Name`` → (``personlastname``, None).

    MAGE-TAB tags are matched ignoring case and spaces, and the part in brackets (a comment's
    or characteristic's name) ignoring case, so spreadsheet edits do not hide a field.
    """
    head, bracket, rest = tag.partition("[")
    key = "".join(head.split()).lower()
    if not bracket:
        return key, None
    return key, rest.rsplit("]", 1)[0].strip().lower()
