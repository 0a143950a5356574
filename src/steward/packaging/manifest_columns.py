"""Which column is which: header spellings (aliases) and the shape of each manifest kind.

Headers match case-insensitively, with spaces, dashes and dots counted as underscores, so the
same LIMS export works whether it says "Sample ID", "sample-id" or "sample_id".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from steward.errors import Detail, ValidationFailed
from steward.packaging.manifest_read import Record, Sheet, detail

DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "sample_id": ("sample", "sampleid"),
    "library_id": ("library", "libraryid", "lib_id"),
    "subject_id": ("subject", "subjectid", "participant_id", "individual_id"),
    "project_id": ("project", "projectid"),
    "data_type": ("type", "datatype", "file_type"),
    "run_id": ("sequencing_run_id", "instrument_run_id", "run", "runid", "sequencing_run"),
    "lane": ("lane_number", "lane_id"),
    "uri": ("path", "file", "file_path", "filepath", "file_uri", "s3_uri", "url", "location"),
    "size": ("size_bytes", "file_size", "filesize", "size_in_bytes", "bytes"),
    "md5": ("md5sum", "md5_checksum", "checksum_md5"),
    "sha256": ("sha256sum", "sha_256", "sha256_checksum", "checksum_sha256"),
    "workflow_name": ("workflow",),
}
"""Canonical column → other accepted header spellings. Headers match case-insensitively, with
spaces, dashes and dots counted as underscores ("Sample ID" is ``sample_id``)."""

WORKFLOW_RUN_ALIASES = (
    "portal_run_id",
    "analysis_run_id",
    "workflow_run_id",
    "run",
    "runid",
)
"""In a workflow manifest ``run_id`` is the workflow's own run; a sequencing run column there is
kept as an extra column, not confused with it."""

SAMPLE_COLUMNS = (
    "sample_id",
    "library_id",
    "subject_id",
    "project_id",
    "data_type",
    "run_id",
    "lane",
    "uri",
    "size",
    "md5",
    "sha256",
)
SAMPLE_REQUIRED = (
    "sample_id",
    "library_id",
    "subject_id",
    "project_id",
    "data_type",
    "run_id",
    "uri",
)
"""Columns a sample manifest must have (lane, size, md5 and sha256 are optional). Values may be
empty in run_id except for fastq rows, and in uri and data_type together on rows that only
list a library without files."""
WORKFLOW_COLUMNS = (
    "library_id",
    "workflow_name",
    "run_id",
    "data_type",
    "uri",
    "size",
    "md5",
    "sha256",
    "sample_id",
    "subject_id",
    "project_id",
)
WORKFLOW_REQUIRED = ("library_id", "workflow_name", "run_id", "uri")
"""A workflow row takes sample, subject and project from its library's sample row (any it has
are cross-checked); without a data type one is inferred from the file name."""


def header_key(text: str) -> str:
    """How headers and aliases are compared: "Sample-ID " and "sample_id" are the same, and so
    are headers with characters nobody can see (a zero-width space pasted from a web page, a
    byte-order mark): a header cannot be told apart from the column it looks like."""
    visible = "".join(c for c in text if unicodedata.category(c) not in ("Cf", "Cc") or c == "\t")
    key = re.sub(r"[\s\-.]+", "_", visible.strip().lower())
    return re.sub(r"_+", "_", key).strip("_")


@dataclass(frozen=True)
class Aliases:
    """Header spelling → canonical column, one table per manifest kind."""

    samples: dict[str, str]
    workflow: dict[str, str]

    def spellings(self, kind: str, column: str) -> list[str]:
        table = self.samples if kind == "samples" else self.workflow
        return [a for a, c in table.items() if c == column]


def merge_aliases(extra: Mapping[str, Sequence[str] | str] | None = None) -> Aliases:
    """Defaults plus the caller's spellings; the caller's win over a default spelling.

    A caller may say ``library_id ← sample`` for a LIMS whose "sample" column is the library, so
    that spelling leaves ``sample_id``. Errors: an unknown canonical column, a spelling the
    caller gives to two columns, or a spelling that is another column's canonical name.
    """
    problems: list[Detail] = []
    given: dict[str, str] = {}
    for column, spellings in (extra or {}).items():
        if column not in DEFAULT_ALIASES:
            problems.append(
                Detail(
                    "no such manifest column",
                    field="aliases",
                    value=column,
                    accepted=", ".join(DEFAULT_ALIASES),
                )
            )
            continue
        for spelling in [spellings] if isinstance(spellings, str) else spellings:
            key = header_key(spelling)
            if not key:
                problems.append(Detail(f"empty alias for {column}", field="aliases"))
            elif key in DEFAULT_ALIASES and key != column:
                problems.append(
                    Detail(
                        f"{spelling!r} is the name of column {key}; it cannot mean {column}",
                        field="aliases",
                        value=spelling,
                    )
                )
            elif given.get(key, column) != column:
                problems.append(
                    Detail(
                        f"alias {spelling!r} is given for both {given[key]} and {column}",
                        field="aliases",
                        value=spelling,
                    )
                )
            else:
                given[key] = column
    if problems:
        raise ValidationFailed("the column aliases are inconsistent", problems)

    def table(run_aliases: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for column, spellings in DEFAULT_ALIASES.items():
            names = run_aliases if column == "run_id" else spellings
            for spelling in (column, *names):
                out[header_key(spelling)] = column
        out.update(given)
        return out

    return Aliases(table(DEFAULT_ALIASES["run_id"]), table(WORKFLOW_RUN_ALIASES))


@dataclass
class Columns:
    """Where each canonical column is in a sheet, and the columns nobody asked for."""

    index: dict[str, int]
    extra: dict[str, int]
    headers: dict[str, str]
    """Canonical column → the header as written, for messages."""

    def value(self, rec: Record, column: str) -> str:
        i = self.index.get(column)
        return rec.cells[i] if i is not None and i < len(rec.cells) else ""


def resolve_columns(
    sheet: Sheet,
    kind: str,
    aliases: Aliases,
    problems: list[Detail],
    warnings: list[Detail],
) -> Columns | None:
    """Map the header to canonical columns; ``None`` when required ones are missing."""
    table = aliases.samples if kind == "samples" else aliases.workflow
    wanted = SAMPLE_COLUMNS if kind == "samples" else WORKFLOW_COLUMNS
    required = SAMPLE_REQUIRED if kind == "samples" else WORKFLOW_REQUIRED
    cols = Columns({}, {}, {})
    ok = True
    seen_extra: dict[str, int] = {}
    for i, name in enumerate(sheet.header):
        key = header_key(name)
        column = table.get(key)
        if not key:
            continue  # a nameless column; values in it are reported per row
        if column in wanted:
            if column in cols.index:
                ok = False
                problems.append(
                    detail(
                        sheet.label,
                        column,
                        f"columns {cols.headers[column]!r} and {name!r} both mean {column}; "
                        "keep one",
                        row=sheet.header_line,
                    )
                )
                continue
            cols.index[column], cols.headers[column] = i, name
        elif key in seen_extra:
            ok = False
            problems.append(
                detail(sheet.label, name, "this column name appears twice", row=sheet.header_line)
            )
        else:
            seen_extra[key] = i
            cols.extra[name] = i
    for column in required:
        if column not in cols.index:
            ok = False
            problems.append(
                detail(
                    sheet.label,
                    column,
                    f"missing column {column}",
                    row=sheet.header_line,
                    accepted=" or ".join(aliases.spellings(kind, column)),
                )
            )
    if cols.extra:
        warnings.append(
            detail(
                sheet.label,
                None,
                "columns kept but not used: "
                + ", ".join(cols.extra)
                + f" (they are shown in the report; the columns read are {', '.join(wanted)})",
                row=sheet.header_line,
            )
        )
    _check_widths(sheet, problems)
    return cols if ok else None


def _check_widths(sheet: Sheet, problems: list[Detail]) -> None:
    """Ragged rows mean a truncated or mis-quoted file; trailing blank cells are harmless."""
    width = len(sheet.header)
    nameless = [i for i, h in enumerate(sheet.header) if not header_key(h)]
    reported: set[int] = set()
    kept: list[Record] = []
    for rec in sheet.records:
        cells = rec.cells
        while len(cells) > width and not cells[-1]:
            cells.pop()
        if len(cells) != width:
            problems.append(
                detail(
                    sheet.label,
                    None,
                    f"{len(cells)} fields, but the header has {width}"
                    + (" (is the row truncated?)" if len(cells) < width else ""),
                    row=rec.line,
                )
            )
            continue
        for i in nameless:
            if cells[i] and i not in reported:
                reported.add(i)
                problems.append(
                    detail(
                        sheet.label,
                        f"column {i + 1}",
                        f"a value in a column without a header: {cells[i][:200]!r}",
                        row=rec.line,
                        value=cells[i],
                    )
                )
        kept.append(rec)
    sheet.records = kept
