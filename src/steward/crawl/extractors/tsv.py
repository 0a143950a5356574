"""TSV sheets (sample sheets, curation tables): each column's distinct values become a field.

The header names the fields (lower case, runs of spaces and punctuation as ``_``: ``Organism
Part`` → ``organism_part``), the values are the column's distinct non-empty cells in order of
first appearance, at most :data:`MAX_VALUES` of them (a note says when a column had more), so
a sheet of a million rows cannot flood a dataset's metadata. Rows with more cells than the
header are noted; their extra cells have no name and are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from steward.crawl.extractors.base import Extraction, ExtractionFailed, Extractor
from steward.crawl.extractors.tabular import read_rows

MAX_VALUES = 100
_NOT_NAME = re.compile(r"[^0-9a-z]+")


def field_name(header: str) -> str:
    return _NOT_NAME.sub("_", header.strip().lower()).strip("_")


class TsvExtractor(Extractor):
    name = "tsv"
    globs = ("*.tsv",)
    description = "TSV sheet: the distinct values of each column"

    def extract(self, text: str, *, path: str) -> Extraction:
        rows = read_rows(text)
        if not rows:
            raise ExtractionFailed("the sheet is empty: no header row")
        names = [field_name(cell) for cell in rows[0].cells]
        notes: list[str] = []
        values: dict[str, dict[str, None]] = {}
        for index, name in enumerate(names):
            if not name:
                notes.append(f"column {index + 1} has no name and is ignored")
            elif name in values:
                notes.append(f"column {index + 1} repeats {name!r}; its values are merged")
            else:
                values[name] = {}
        overflow: set[str] = set()
        for row in rows[1:]:
            if len(row.cells) > len(names):
                notes.append(
                    f"line {row.line} has {len(row.cells)} cells but the header has {len(names)}"
                )
            for name, cell in zip(names, row.cells, strict=False):
                if not name or not cell:
                    continue
                column = values[name]
                if cell not in column:
                    if len(column) < MAX_VALUES:
                        column[cell] = None
                    else:
                        overflow.add(name)
        notes.extend(
            f"column {name!r} has more than {MAX_VALUES} distinct values; the first "
            f"{MAX_VALUES} are kept"
            for name in sorted(overflow)
        )
        fields: dict[str, Any] = {k: list(v) for k, v in values.items() if v}
        return Extraction(fields, tuple(notes))
