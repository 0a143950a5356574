"""Turning manifest lines into checked rows, and the checks that need several rows at once.

Each function appends a detail per problem and keeps going; a row with a problem is still
returned, so that, say, a duplicate of a row with a bad md5 is reported too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from steward.errors import Detail
from steward.packaging.manifest_columns import Columns
from steward.packaging.manifest_ids import how_they_differ, near_miss, shown, visible
from steward.packaging.manifest_model import DATA_TYPES, ManifestRow, Source
from steward.packaging.manifest_paths import PathRejected, Roots, normalise_uri
from steward.packaging.manifest_read import Record, Sheet, detail

_HEX = {"md5": re.compile(r"[0-9a-fA-F]{32}"), "sha256": re.compile(r"[0-9a-fA-F]{64}")}
_IDENTITY = ("sample_id", "subject_id", "project_id")
_INDEX_SUFFIXES = (".bai", ".crai", ".tbi", ".csi", ".md5", ".sha256")
_INFERRED = (
    ((".bam",), "bam"),
    ((".cram",), "cram"),
    ((".vcf", ".vcf.gz", ".bcf"), "vcf"),
    ((".fastq", ".fq", ".fastq.gz", ".fq.gz", ".fastq.ora", ".ora"), "fastq"),
)


@dataclass
class Parsed:
    row: ManifestRow
    label: str
    cells: tuple[str, ...]


def some(values: Iterable[str], limit: int = 10) -> str:
    """A readable ``accepted`` list that stays short when there are thousands of values."""
    items = sorted(set(values))
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "") or "(none)"


def infer_data_type(file_name: str) -> str:
    """A workflow output's data type from its name; an index file goes with what it indexes."""
    name = file_name.lower()
    for suffix in _INDEX_SUFFIXES:
        name = name.removesuffix(suffix)
    for suffixes, data_type in _INFERRED:
        if name.endswith(suffixes):
            return data_type
    return "secondary"


def parse_rows(
    sheet: Sheet, cols: Columns, kind: Source, roots: Roots, problems: list[Detail]
) -> list[Parsed]:
    return [
        Parsed(_parse(sheet.label, rec, cols, kind, roots, problems), sheet.label, tuple(rec.cells))
        for rec in sheet.records
    ]


def _required(kind: Source, v: dict[str, str], data_type: str) -> list[str]:
    """Values that may not be empty. A sample row with neither file nor data type only lists
    its library ("known to the LIMS, no files yet"); run_id is needed for fastq only."""
    if kind == "workflow":
        return ["library_id", "workflow_name", "run_id", "uri"]
    required = ["sample_id", "library_id", "subject_id", "project_id"]
    if v.get("uri") or data_type:
        required += ["data_type", "uri"] + (["run_id"] if data_type == "fastq" else [])
    return required


def _parse(
    label: str, rec: Record, cols: Columns, kind: Source, roots: Roots, problems: list[Detail]
) -> ManifestRow:
    def bad(column: str, message: str, value: str | None = None, accepted: str = "") -> None:
        shown = None if value is None else value[:200]
        problems.append(
            detail(label, column, message, row=rec.line, value=shown, accepted=accepted or None)
        )

    v = {c: cols.value(rec, c) for c in cols.index}
    extra = {name: rec.cells[i] for name, i in cols.extra.items() if rec.cells[i]}
    for column, value in (*v.items(), *extra.items()):
        if "\x00" in value and column != "uri":  # the path check names it for uri
            # PostgreSQL cannot store it (in a column or in JSON): refuse it here, by line
            bad(column, "a NUL character (byte 0x00) in the value", value.replace("\x00", "\\0"))
    data_type = v.get("data_type", "").lower()
    for column in _required(kind, v, data_type):
        if not v.get(column):
            bad(column, f"{column} is empty", accepted="a value")

    uri = file_name = ""
    if v.get("uri"):
        try:
            uri, file_name = normalise_uri(v["uri"], roots)
        except PathRejected as exc:
            bad("uri", f"{exc.message}: {v['uri'][:200]!r}", v["uri"], exc.accepted or "")
    if kind == "workflow" and not data_type and file_name:
        data_type = infer_data_type(file_name)
    if data_type and data_type not in DATA_TYPES:
        bad(
            "data_type",
            f"unknown data type {v['data_type']!r}",
            v["data_type"],
            ", ".join(DATA_TYPES),
        )

    lane = v.get("lane") or None
    if lane is not None:
        if lane.isascii() and lane.isdigit() and int(lane) > 0:
            lane = str(int(lane))
        else:
            bad("lane", f"the lane must be a whole number from 1, not {lane!r}", lane, "1, 2, 3, …")
    size = None
    if v.get("size"):
        if v["size"].isascii() and v["size"].isdigit():
            size = int(v["size"])
        else:
            bad(
                "size",
                f"the size must be a whole number of bytes, not {v['size']!r}",
                v["size"],
                "0, 1, 2, …",
            )
    sums: dict[str, str | None] = {}
    for algo, pattern in _HEX.items():
        text = v.get(algo) or None
        if text is not None and not pattern.fullmatch(text):
            digits = 32 if algo == "md5" else 64
            bad(
                algo,
                f"{text[:80]!r} is not a {algo} checksum",
                text,
                f"{digits} hexadecimal digits",
            )
            text = None
        sums[algo] = text.lower() if text else None

    return ManifestRow(
        source=kind,
        line=rec.line,
        sample_id=v.get("sample_id", ""),
        library_id=v.get("library_id", ""),
        subject_id=v.get("subject_id", ""),
        project_id=v.get("project_id", ""),
        data_type=data_type,
        run_id=v.get("run_id", ""),
        lane=lane,
        uri=uri,
        file_name=file_name,
        size=size,
        md5=sums["md5"],
        sha256=sums["sha256"],
        workflow_name=v.get("workflow_name") if kind == "workflow" else None,
        extra=extra,
    )


def check_duplicates(parsed: Sequence[Parsed], problems: list[Detail]) -> None:
    """Identical lines within a file, and any file named twice across both manifests."""
    seen_cells: dict[tuple[str, tuple[str, ...]], Parsed] = {}
    seen_uri: dict[str, Parsed] = {}
    for p in parsed:
        first = seen_cells.setdefault((p.label, p.cells), p)
        if first is not p:
            problems.append(
                detail(p.label, None, f"this row repeats line {first.row.line}", row=p.row.line)
            )
            continue
        if not p.row.uri:
            continue
        first = seen_uri.setdefault(p.row.uri, p)
        if first is not p:
            where = f"line {first.row.line}" + (
                "" if first.label == p.label else f" of {first.label}"
            )
            problems.append(
                detail(
                    p.label,
                    "uri",
                    f"this file ({p.row.uri}) is already listed at {where}",
                    row=p.row.line,
                    value=p.row.uri,
                )
            )


def check_libraries(parsed: Sequence[Parsed], problems: list[Detail]) -> dict[str, ManifestRow]:
    """A library belongs to one sample, subject and project; returns library → first row."""
    first: dict[str, ManifestRow] = {}
    for p in parsed:
        lib = p.row.library_id
        if not lib:
            continue
        known = first.setdefault(lib, p.row)
        for column in _IDENTITY:
            mine, theirs = getattr(p.row, column), getattr(known, column)
            if mine and theirs and mine != theirs:
                problems.append(
                    detail(
                        p.label,
                        column,
                        f"library {lib} has {column} {theirs!r} at line {known.line}; "
                        f"this row says {mine!r}",
                        row=p.row.line,
                        value=mine,
                        accepted=theirs,
                    )
                )
    return first


def _look_alike(lib: str, libraries: Iterable[str]) -> str:
    """ "; 'L1' is, which differs only by letter case" — or nothing."""
    twin = near_miss(lib, libraries)
    if twin is None:
        return ""
    return f"; {visible(twin)} is, which differs only by {how_they_differ(lib, twin)}"


def join_workflow(
    parsed: Sequence[Parsed],
    libraries: dict[str, ManifestRow],
    samples_label: str,
    problems: list[Detail],
) -> None:
    """Give each workflow row its library's sample, subject and project (checking any it has)."""
    for p in parsed:
        lib = p.row.library_id
        if not lib:
            continue
        known = libraries.get(lib)
        if known is None:
            twin = _look_alike(lib, libraries)
            problems.append(
                detail(
                    p.label,
                    "library_id",
                    f"library {shown(lib)} is not in {samples_label}{twin}",
                    row=p.row.line,
                    value=lib,
                    accepted=some(shown(v) for v in libraries),
                )
            )
            continue
        for column in _IDENTITY:
            mine, theirs = getattr(p.row, column), getattr(known, column)
            if mine and mine != theirs:
                problems.append(
                    detail(
                        p.label,
                        column,
                        f"library {lib} has {column} {theirs!r} in {samples_label} "
                        f"(line {known.line}); this row says {mine!r}",
                        row=p.row.line,
                        value=mine,
                        accepted=theirs,
                    )
                )
        p.row = replace(p.row, **{c: getattr(known, c) for c in _IDENTITY})
