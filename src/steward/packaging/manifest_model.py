"""What a checked manifest holds: one row per file to share, plus the libraries it lists.

Kept apart from the reading and checking code so the layout planner, the bag builder and the
report can depend on these types without pulling in CSV/XLSX parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from steward.errors import Detail

DATA_TYPES = ("fastq", "bam", "cram", "vcf", "secondary", "other")
SECTIONS = ("fastq", "secondary", "other")
"""The report's sections, in the order it shows them (the seed's FASTQ / Secondary tabs)."""

_SECTION_OF = {
    "fastq": "fastq",
    "bam": "secondary",
    "cram": "secondary",
    "vcf": "secondary",
    "secondary": "secondary",
    "other": "other",
}

Source = Literal["samples", "workflow"]


def section_of(data_type: str) -> str:
    """The report section a data type belongs to ("other" for anything unknown)."""
    return _SECTION_OF.get(data_type, "other")


@dataclass(frozen=True)
class FileFacts:
    """What storage says about one file; compared with what the manifest claims."""

    size: int
    storage_class: str | None = None
    md5: str | None = None
    """Lowercase hex, only when the store is sure it is the content's md5 (a plain S3 ETag)."""


Stat = Callable[[str], FileFacts | None]
"""Look one normalised URI up; ``None`` when there is no such file. May raise ``StewardError``,
``OSError`` or ``ValueError``; the loader turns those into a detail on the row."""


@dataclass(frozen=True)
class ManifestRow:
    """One row of a manifest after checking, with values normalised.

    ``uri`` is ``s3://bucket/key`` or an absolute ``file:///…`` URI (percent-encoded as RFC 8089
    says; turn it back into a path with :func:`steward.packaging.manifest_paths.local_path`).
    Rows of the sample manifest that name no file (blank uri and data_type: "this library
    exists, but has no files yet") have ``uri == ""`` and appear only in ``Manifest.listed``.
    Workflow rows take sample, subject and project from their library's sample row; their
    ``run_id`` is the workflow (portal/analysis) run.
    """

    source: Source
    line: int
    sample_id: str
    library_id: str
    subject_id: str
    project_id: str
    data_type: str
    run_id: str = ""
    lane: str | None = None
    uri: str = ""
    file_name: str = ""
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    workflow_name: str | None = None
    storage_class: str | None = None
    """From storage (e.g. ``GLACIER``), so the report can highlight archived files."""
    extra: dict[str, str] = field(default_factory=dict, hash=False)
    """Columns the loader does not know, kept for the report."""

    @property
    def section(self) -> str:
        return section_of(self.data_type)

    @property
    def where(self) -> str:
        """``samples line 4`` — how messages point at this row."""
        return f"{self.source} line {self.line}"


def _sorted_unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v}))


@dataclass(frozen=True)
class Manifest:
    """Checked file rows (sample and workflow files), ready to lay out and package.

    ``listed`` holds every sample-manifest row within the current filters' scope (project,
    sample, library, run), with or without files, so libraries whose files were all filtered
    out (or that never had any) can be highlighted instead of silently vanishing.
    """

    rows: tuple[ManifestRow, ...]
    warnings: tuple[Detail, ...] = ()
    listed: tuple[ManifestRow, ...] = ()

    @property
    def projects(self) -> tuple[str, ...]:
        return _sorted_unique(r.project_id for r in (*self.rows, *self.listed))

    @property
    def samples(self) -> tuple[str, ...]:
        return _sorted_unique(r.sample_id for r in (*self.rows, *self.listed))

    @property
    def subjects(self) -> tuple[str, ...]:
        return _sorted_unique(r.subject_id for r in (*self.rows, *self.listed))

    @property
    def libraries(self) -> tuple[str, ...]:
        return _sorted_unique(r.library_id for r in (*self.rows, *self.listed))

    @property
    def runs(self) -> tuple[str, ...]:
        return _sorted_unique(r.run_id for r in (*self.rows, *self.listed))

    @property
    def data_types(self) -> tuple[str, ...]:
        present = {r.data_type for r in self.rows}
        return tuple(t for t in DATA_TYPES if t in present)

    @property
    def libraries_without_files(self) -> tuple[str, ...]:
        with_files = {r.library_id for r in self.rows}
        return _sorted_unique(r.library_id for r in self.listed if r.library_id not in with_files)

    @property
    def total_size(self) -> int:
        """Bytes in all rows whose size is known (every row, once files were checked)."""
        return sum(r.size or 0 for r in self.rows)

    def by_section(self) -> dict[str, tuple[ManifestRow, ...]]:
        return {s: tuple(r for r in self.rows if r.section == s) for s in SECTIONS}
