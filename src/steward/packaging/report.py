"""The package report: one HTML file a recipient can open anywhere, offline, and trust.

Everything the page needs is inlined — our CSS and script, plotly.js from the installed
``plotly`` package, and the package's data as JSON — and a Content-Security-Policy forbids every
network request, so the report works on an air-gapped machine and cannot tell anyone it was
opened. Python only aggregates (summary, warnings, charts); the browser renders the tables a page
at a time from the embedded JSON, so a package of 100,000 files stays usable.

Every value from a manifest is untrusted: HTML is autoescaped by Jinja2, the JSON block has
``<``, ``>`` and ``&`` escaped, the script only ever sets ``textContent``, chart labels are
entity-escaped for Plotly's own markup, and CSV cells are guarded against formula injection.
"""

from __future__ import annotations

import pkgutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

from markupsafe import Markup

from steward import html
from steward.errors import NotFound, StewardError, StorageDenied
from steward.tables import atomic_writer
from steward.timeutil import as_utc, format_time, zone

PACKAGE = "steward.packaging"
"""Where this page's templates live."""

FASTQ_TYPES = frozenset({"fastq", "fastq_ora", "ora"})
"""Data types shown under FASTQ; every other type is secondary analysis (bam, cram, vcf, …)."""

COLD_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE", "ARCHIVE"})
"""Storage classes whose objects must be restored before anyone can read them (S3 Glacier
Flexible Retrieval and Deep Archive, Azure's Archive tier). GLACIER_IR and the infrequent-access
classes are readable at once, so flagging them would only teach people to ignore warnings."""

EXAMPLES = 20
"""Paths or ids listed under each warning; the highlighted table rows hold the rest."""

TOP_SAMPLES = 50
"""Bars in the size-per-sample chart; thousands of bars help nobody read it."""

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


@dataclass(frozen=True, slots=True)
class ReportFile:
    path: str  # relative path in the bag, e.g. data/P1/fastq/RUN1/L1/x.fastq.gz
    size: int
    sha256: str
    md5: str | None
    sample_id: str
    library_id: str
    subject_id: str
    project_id: str
    data_type: str
    run_id: str
    lane: str | None
    workflow_name: str | None
    source_uri: str
    storage_class: str | None


@dataclass(frozen=True, slots=True)
class ReportLibrary:
    library_id: str
    sample_id: str
    subject_id: str
    project_id: str


@dataclass(frozen=True)
class ReportInput:
    package_name: str
    package_id: str
    created_by: str
    created_at: datetime  # UTC
    checksum_algorithms: tuple[str, ...]
    mode: str  # copy | link | fetch
    files: Sequence[ReportFile]
    libraries: Sequence[ReportLibrary]
    libraries_without_files: Sequence[str]
    warnings: Sequence[str] = ()
    timezone: str = "UTC"


def render_report(data: ReportInput) -> str:
    """The whole report as one HTML document."""
    tz = zone(data.timezone)
    scan = _scan(data.files)
    empty_libraries = _libraries_without_files(data, scan)
    library_rows = _library_rows(data, scan, empty_libraries)
    charts = _charts(scan)
    payload = {
        "package": data.package_name,
        "files": {
            "fields": [*FILE_FIELDS, "section"],
            "rows": [
                [
                    f.path,
                    f.size,
                    f.sha256,
                    f.md5,
                    f.sample_id,
                    f.library_id,
                    f.subject_id,
                    f.project_id,
                    f.data_type,
                    f.run_id,
                    f.lane,
                    f.workflow_name,
                    f.source_uri,
                    f.storage_class,
                    warning,
                    section,
                ]
                for f, warning, section in zip(
                    data.files, scan.warnings, scan.sections, strict=True
                )
            ],
        },
        "libraries": {"fields": list(_LIBRARY_FIELDS), "rows": library_rows},
        "tables": {t.id: t.as_json() for t in _TABLES},
        "charts": charts,
    }
    script = html.asset(PACKAGE, "report.js")
    plotly = _plotly_js()
    created = as_utc(data.created_at)
    return (
        html.environment(PACKAGE)
        .get_template("report.html.j2")
        .render(
            data=data,
            created_iso=created.isoformat().replace("+00:00", "Z"),
            created_text=f"{format_time(created, tz)} {data.timezone}",
            summary=_summary(data, scan, empty_libraries),
            warnings=_warnings(data, scan, empty_libraries),
            tables=_table_views(scan, library_rows),
            charts=charts,
            data_json=Markup(html.json_for_script(payload)),
            css=Markup(html.asset(PACKAGE, "report.css")),
            script=Markup(script),
            plotly_js=Markup(plotly),
            plotly_version=_plotly_version(),
            csp=html.content_security_policy(script, plotly),
        )
    )


def write_report(data: ReportInput, path: Path) -> None:
    """Render and write the report; the file is complete or absent, never half-written."""
    html = render_report(data)
    try:
        with atomic_writer(path) as out:
            out.write(html)
    except FileNotFoundError as exc:
        raise NotFound(f"cannot write the report to {path}: {exc.strerror}") from None
    except PermissionError as exc:
        raise StorageDenied(f"cannot write the report to {path}: {exc.strerror}") from None
    except OSError as exc:
        raise StewardError(f"cannot write the report to {path}: {exc.strerror or exc}") from None


def section_of(data_type: str) -> str:
    return "fastq" if data_type.lower() in FASTQ_TYPES else "secondary"


def human_size(n: int) -> str:
    """Decimal units (kB = 1000 B) with three significant digits, like the report's script."""
    if n < 1000:
        return f"{n} B"
    value, unit = float(n), 0
    while value >= 999.5 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    digits = 0 if value >= 99.95 else 1 if value >= 9.995 else 2
    return f"{value:.{digits}f} {_UNITS[unit]}"


def is_cold(storage_class: str | None) -> bool:
    return storage_class is not None and storage_class.upper() in COLD_STORAGE_CLASSES


# ---- tables ----------------------------------------------------------------------------------

FILE_FIELDS = (
    "path",
    "size",
    "sha256",
    "md5",
    "sample_id",
    "library_id",
    "subject_id",
    "project_id",
    "data_type",
    "run_id",
    "lane",
    "workflow_name",
    "source_uri",
    "storage_class",
    "warning",
)
"""Columns of every file table's CSV download, in order: what recipients' scripts will read."""

_LIBRARY_FIELDS = (
    "library_id",
    "sample_id",
    "subject_id",
    "project_id",
    "files",
    "size",
    "warning",
)


@dataclass(frozen=True)
class _Column:
    key: str
    label: str
    kind: str = "text"  # text | path | hash | size | int | warning


@dataclass(frozen=True)
class _Table:
    """One interactive table: which rows it shows (source + section), and how."""

    id: str
    title: str
    source: str  # "files" | "libraries"
    section: str | None
    columns: tuple[_Column, ...]
    csv: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "section": self.section,
            "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in self.columns],
            "csv": list(self.csv),
        }


_PROJECT, _SUBJECT, _SAMPLE, _LIBRARY = (
    _Column("project_id", "Project"),
    _Column("subject_id", "Subject"),
    _Column("sample_id", "Sample"),
    _Column("library_id", "Library"),
)
_PATH, _SIZE, _STORAGE, _WARNING = (
    _Column("path", "Path", "path"),
    _Column("size", "Size", "size"),
    _Column("storage_class", "Storage class"),
    _Column("warning", "Warning", "warning"),
)
_TABLES = (
    _Table(
        "metadata",
        "Libraries",
        "libraries",
        None,
        (
            _PROJECT,
            _SUBJECT,
            _SAMPLE,
            _LIBRARY,
            _Column("files", "Files", "int"),
            _SIZE,
            _WARNING,
        ),
        _LIBRARY_FIELDS,
    ),
    _Table(
        "fastq",
        "FASTQ files",
        "files",
        "fastq",
        (
            _PROJECT,
            _SUBJECT,
            _SAMPLE,
            _LIBRARY,
            _Column("run_id", "Run"),
            _Column("lane", "Lane"),
            _PATH,
            _SIZE,
            _STORAGE,
            _WARNING,
        ),
        FILE_FIELDS,
    ),
    _Table(
        "secondary",
        "Secondary analysis files",
        "files",
        "secondary",
        (
            _PROJECT,
            _SUBJECT,
            _SAMPLE,
            _LIBRARY,
            _Column("data_type", "Data type"),
            _Column("workflow_name", "Workflow"),
            _PATH,
            _SIZE,
            _STORAGE,
            _WARNING,
        ),
        FILE_FIELDS,
    ),
    _Table(
        "files",
        "All files",
        "files",
        None,
        (
            _PROJECT,
            _SAMPLE,
            _LIBRARY,
            _Column("data_type", "Data type"),
            _PATH,
            _SIZE,
            _STORAGE,
            _Column("sha256", "SHA-256", "hash"),
            _WARNING,
        ),
        FILE_FIELDS,
    ),
)


@dataclass
class _Scan:
    """Everything the report aggregates, gathered in one pass over the files (100,000 files
    is a normal package; several passes cost seconds)."""

    files: Sequence[ReportFile]
    warnings: list[str] = field(default_factory=list)  # per file, "" when all is well
    sections: list[str] = field(default_factory=list)  # per file: fastq | secondary
    total: int = 0
    cold: list[ReportFile] = field(default_factory=list)
    empty: list[ReportFile] = field(default_factory=list)
    library_files: Counter[str] = field(default_factory=Counter)
    library_size: Counter[str] = field(default_factory=Counter)
    sample_size: Counter[str] = field(default_factory=Counter)
    subjects: set[str] = field(default_factory=set)
    type_files: Counter[str] = field(default_factory=Counter)
    type_size: Counter[str] = field(default_factory=Counter)
    project_type_size: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    section_projects: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    section_types: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    section_warned: Counter[str] = field(default_factory=Counter)


def _scan(files: Sequence[ReportFile]) -> _Scan:
    scan = _Scan(files)
    sections: dict[str, str] = {}
    colds: dict[str | None, bool] = {}
    for f in files:
        data_type, size = f.data_type, f.size
        section = sections.get(data_type)
        if section is None:
            section = sections[data_type] = section_of(data_type)
        cold = colds.get(f.storage_class)
        if cold is None:
            cold = colds[f.storage_class] = is_cold(f.storage_class)
        warning = ""
        if cold or size == 0:
            warning = _file_warning(f)
            scan.section_warned[section] += 1
            if cold:
                scan.cold.append(f)
            if size == 0:
                scan.empty.append(f)
        scan.warnings.append(warning)
        scan.sections.append(section)
        scan.total += size
        scan.library_files[f.library_id] += 1
        scan.library_size[f.library_id] += size
        scan.sample_size[f.sample_id] += size
        scan.subjects.add(f.subject_id)
        scan.type_files[data_type] += 1
        scan.type_size[data_type] += size
        scan.project_type_size[data_type][f.project_id] += size
        scan.section_projects[section][f.project_id] += 1
        scan.section_types[section][data_type] += 1
    return scan


@dataclass(frozen=True)
class _TableView:
    """What the template needs to lay out one table: its tabs and whether to show it at all."""

    id: str
    title: str
    rows: int
    warned: int
    project_tabs: list[tuple[str, int]]
    type_tabs: list[tuple[str, int]]


def _table_views(scan: _Scan, library_rows: list[list[Any]]) -> dict[str, _TableView]:
    """Tabs appear only when a table holds several projects (or several data types)."""
    views = {}
    for table in _TABLES:
        if table.source == "libraries":
            projects = Counter(str(row[3]) for row in library_rows)
            types: Counter[str] = Counter()
            warned = sum(1 for row in library_rows if row[-1])
        elif table.section is None:
            projects = sum(scan.section_projects.values(), Counter())
            types = scan.type_files
            warned = sum(scan.section_warned.values())
        else:
            projects = scan.section_projects[table.section]
            types = scan.section_types[table.section]
            warned = scan.section_warned[table.section]
        views[table.id] = _TableView(
            id=table.id,
            title=table.title,
            rows=len(library_rows) if table.source == "libraries" else projects.total(),
            warned=warned,
            project_tabs=_tabs(projects),
            type_tabs=_tabs(types),
        )
    return views


def _tabs(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items()) if len(counts) > 1 else []


def _file_warning(f: ReportFile) -> str:
    reasons = []
    if is_cold(f.storage_class):
        reasons.append(f"archived ({f.storage_class}): restore before reading")
    if f.size == 0:
        reasons.append("empty file (0 bytes)")
    return "; ".join(reasons)


def _libraries_without_files(data: ReportInput, scan: _Scan) -> list[str]:
    """The caller's list plus any manifest library that no file in the package belongs to."""
    found = dict.fromkeys(data.libraries_without_files)
    found.update(dict.fromkeys(lib.library_id for lib in data.libraries))
    return [lib for lib in found if lib not in scan.library_files]


def _library_rows(data: ReportInput, scan: _Scan, empty_libraries: list[str]) -> list[list[Any]]:
    empty = set(empty_libraries)
    return [
        [
            lib.library_id,
            lib.sample_id,
            lib.subject_id,
            lib.project_id,
            scan.library_files[lib.library_id],
            scan.library_size[lib.library_id],
            "no files in this package" if lib.library_id in empty else "",
        ]
        for lib in data.libraries
    ]


# ---- summary and warnings --------------------------------------------------------------------


@dataclass(frozen=True)
class _Fact:
    label: str
    value: str
    title: str | None = None


@dataclass(frozen=True)
class _Warning:
    kind: str  # cold | empty | no-files | other: a CSS class and a test hook
    message: str
    examples: tuple[str, ...] = ()
    more: int = 0


def _summary(data: ReportInput, scan: _Scan, empty_libraries: list[str]) -> list[_Fact]:
    projects = sorted(
        (
            {p for section in scan.section_projects.values() for p in section}
            | {lib.project_id for lib in data.libraries}
        )
        - {""}
    )
    samples = set(scan.sample_size) | {lib.sample_id for lib in data.libraries}
    subjects = scan.subjects | {lib.subject_id for lib in data.libraries}
    types = sorted(scan.type_files.items())
    manifest_libraries = {lib.library_id for lib in data.libraries}
    return [
        _Fact("Files", f"{len(scan.files):,}"),
        _Fact("Total size", human_size(scan.total), f"{scan.total:,} bytes"),
        _Fact(f"Projects ({len(projects)})", ", ".join(projects) or "none"),
        _Fact(
            f"Data types ({len(types)})",
            ", ".join(f"{t} ({n:,})" for t, n in types) or "none",
        ),
        _Fact("Subjects", f"{len(subjects - {''}):,}"),
        _Fact("Samples", f"{len(samples - {''}):,}"),
        _Fact(
            "Libraries",
            f"{len(manifest_libraries):,} in the manifest, {len(empty_libraries):,} without files",
        ),
        _Fact("Checksums", ", ".join(data.checksum_algorithms) or "none"),
        _Fact("Mode", data.mode),
        _Fact("Created by", data.created_by),
    ]


def _warnings(data: ReportInput, scan: _Scan, empty_libraries: list[str]) -> list[_Warning]:
    found = []
    if scan.cold:
        n = len(scan.cold)
        classes = Counter(str(f.storage_class) for f in scan.cold)
        found.append(
            _Warning(
                "cold",
                f"{n:,} {_plural(n, 'file is', 'files are')} in archive storage "
                f"({', '.join(f'{c}: {k:,}' for c, k in sorted(classes.items()))}) and must be "
                f"restored before {_plural(n, 'it', 'they')} can be read.",
                *_examples(f.path for f in scan.cold),
            )
        )
    if scan.empty:
        n = len(scan.empty)
        found.append(
            _Warning(
                "empty",
                f"{n:,} {_plural(n, 'file is', 'files are')} empty (0 bytes).",
                *_examples(f.path for f in scan.empty),
            )
        )
    if empty_libraries:
        n = len(empty_libraries)
        found.append(
            _Warning(
                "no-files",
                f"{n:,} {_plural(n, 'library has', 'libraries have')} no files in this package.",
                *_examples(empty_libraries),
            )
        )
    found.extend(_Warning("other", text) for text in data.warnings)
    return found


def _examples(items: Iterable[str]) -> tuple[tuple[str, ...], int]:
    items = list(items)
    return tuple(items[:EXAMPLES]), max(0, len(items) - EXAMPLES)


def _plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


# ---- charts ----------------------------------------------------------------------------------


def _charts(scan: _Scan) -> list[dict[str, Any]]:
    """Plotly figures as plain dicts (the ``plotly`` Python objects are far slower to build)."""
    if not scan.files:
        return []
    by_sample: Counter[str] = Counter()
    for sample, size in scan.sample_size.items():
        by_sample[sample or "(no sample)"] += size
    return [
        _sample_chart(by_sample),
        _type_chart(scan.type_files, scan.type_size),
        _project_chart(scan.project_type_size),
    ]


def _sample_chart(by_sample: Counter[str]) -> dict[str, Any]:
    ranked = sorted(by_sample.items(), key=lambda item: (-item[1], item[0]))
    shown = ranked[:TOP_SAMPLES]
    scope = (
        f"all {len(ranked):,} samples"
        if len(ranked) <= TOP_SAMPLES
        else f"the largest {TOP_SAMPLES} of {len(ranked):,} samples"
    )
    largest, smallest = ranked[0], ranked[-1]
    caption = (
        f"Size per sample, largest first ({scope}). Largest: {largest[0]} "
        f"({human_size(largest[1])}); smallest: {smallest[0]} ({human_size(smallest[1])})."
    )
    return _bar_chart(
        "chart-samples",
        "Size per sample",
        caption,
        [
            {
                "type": "bar",
                "x": [_plotly_text(s) for s, _ in shown],
                "y": [size for _, size in shown],
                "customdata": [human_size(size) for _, size in shown],
                "hovertemplate": "%{x}<br>%{customdata}<extra></extra>",
            }
        ],
        x_title="Sample",
        y_title="Size",
        y_size=True,
    )


def _type_chart(count: Counter[str], size: Counter[str]) -> dict[str, Any]:
    types = sorted(count, key=lambda t: (-count[t], t))
    caption = "Files per data type: " + "; ".join(
        f"{t}: {count[t]:,} files, {human_size(size[t])}" for t in types
    )
    return _bar_chart(
        "chart-types",
        "Files per data type",
        caption + ".",
        [
            {
                "type": "bar",
                "x": [_plotly_text(t) for t in types],
                "y": [count[t] for t in types],
                "customdata": [human_size(size[t]) for t in types],
                "hovertemplate": "%{x}: %{y:,} files<br>%{customdata}<extra></extra>",
            }
        ],
        x_title="Data type",
        y_title="Files",
        y_size=False,
    )


def _project_chart(project_type: defaultdict[str, Counter[str]]) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    for per_project in project_type.values():
        totals.update(per_project)
    projects = sorted(totals, key=lambda p: (-totals[p], p))
    caption = "Size per project, stacked by data type: " + "; ".join(
        f"{p or '(no project)'}: {human_size(totals[p])}" for p in projects
    )
    traces = [
        {
            "type": "bar",
            "name": _plotly_text(data_type),
            "x": [_plotly_text(p) for p in projects],
            "y": [per_project.get(p, 0) for p in projects],
            "customdata": [human_size(per_project.get(p, 0)) for p in projects],
            "hovertemplate": f"%{{x}}<br>{_plotly_text(data_type)}: %{{customdata}}<extra></extra>",
        }
        for data_type, per_project in sorted(project_type.items())
    ]
    chart = _bar_chart(
        "chart-projects",
        "Size per project",
        caption + ".",
        traces,
        x_title="Project",
        y_title="Size",
        y_size=True,
    )
    chart["layout"]["barmode"] = "stack"
    chart["layout"]["showlegend"] = True
    return chart


def _bar_chart(
    chart_id: str,
    title: str,
    caption: str,
    traces: list[dict[str, Any]],
    *,
    x_title: str,
    y_title: str,
    y_size: bool,
) -> dict[str, Any]:
    y_axis: dict[str, Any] = {"title": {"text": y_title}, "rangemode": "tozero"}
    if y_size:
        y_axis.update(tickformat="~s", ticksuffix="B")
    return {
        "id": chart_id,
        "title": title,
        "caption": caption,
        "data": traces,
        "layout": {
            "xaxis": {"title": {"text": x_title}, "type": "category", "automargin": True},
            "yaxis": y_axis,
            "margin": {"t": 20, "r": 10},
            "showlegend": False,
            "height": 360,
        },
    }


def _plotly_text(text: str) -> str:
    """Plotly renders a subset of HTML (links, bold…) in labels and decodes entities, so
    entity-escaping shows a manifest value literally instead of as markup."""
    return escape(text, quote=False)


# ---- assembly --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    """plotly.js from the installed ``plotly`` package, read the way ``get_plotlyjs`` does (that
    module has no type information, and importing it pulls in all of plotly's Python side)."""
    raw = pkgutil.get_data("plotly", "package_data/plotly.min.js")
    if raw is None:  # pragma: no cover - only with an exotic loader
        raise StewardError("plotly.js is missing from the installed plotly package")
    return html.inline_safe(raw.decode("utf-8"), "plotly.min.js")


def _plotly_version() -> str:
    head = _plotly_js()[:200]
    marker = "plotly.js v"
    start = head.find(marker)
    return head[start + len(marker) :].split()[0] if start >= 0 else "unknown"
