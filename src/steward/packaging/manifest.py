"""Sample manifests (+ an optional workflow-output manifest) → one checked list of files.

The seed never validated its manifests, so a typo surfaced hours later as a broken package.
Here a manifest is read and checked completely before anything is built: every problem is a
:class:`~steward.errors.Detail` naming the file, line and column and what would be accepted, and
all of them come back in one :class:`~steward.errors.ValidationFailed`.

What is checked: supported file kind, UTF-8 text, readable CSV (no unclosed quotes, no ragged
rows), required columns (by any accepted spelling), required values, data types, lanes, sizes
and checksums as written, paths (see :mod:`steward.packaging.manifest_paths` for the rule),
duplicate files and rows, a library belonging to one sample/subject/project, every workflow
library being in the sample manifest, and — through ``stat`` — that each file exists, has the
size written, and (when storage knows it) the md5 written. Checksums of local files are *not*
computed here; the build verifies them while copying.

The public names of the ``manifest_*`` modules and of :mod:`steward.packaging.layout` are
re-exported here; callers import from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from steward.errors import Detail, ValidationFailed
from steward.packaging.layout import DEFAULT_LAYOUT, PLACEHOLDERS, plan_layout, sanitise_component
from steward.packaging.manifest_columns import (
    DEFAULT_ALIASES,
    WORKFLOW_RUN_ALIASES,
    merge_aliases,
    resolve_columns,
)
from steward.packaging.manifest_files import check_files as _check_files
from steward.packaging.manifest_ids import check_ids, near_miss, shown, visible
from steward.packaging.manifest_model import (
    DATA_TYPES,
    SECTIONS,
    FileFacts,
    Manifest,
    ManifestRow,
    Source,
    Stat,
    section_of,
)
from steward.packaging.manifest_paths import Roots, local_path, local_stat
from steward.packaging.manifest_read import ACCEPTED_FILES, read_sheet
from steward.packaging.manifest_rows import (
    Parsed,
    check_duplicates,
    check_libraries,
    join_workflow,
    parse_rows,
    some,
)

__all__ = [
    "ACCEPTED_FILES",
    "DATA_TYPES",
    "DEFAULT_ALIASES",
    "DEFAULT_LAYOUT",
    "PLACEHOLDERS",
    "SECTIONS",
    "WORKFLOW_RUN_ALIASES",
    "FileFacts",
    "Manifest",
    "ManifestRow",
    "Stat",
    "filter_manifest",
    "load_manifest",
    "local_path",
    "local_stat",
    "plan_layout",
    "sanitise_component",
    "section_of",
]


def load_manifest(
    samples: Path,
    workflow: Path | None = None,
    *,
    aliases: Mapping[str, Sequence[str] | str] | None = None,
    base_dir: Path | None = None,
    allowed_roots: Sequence[str | Path] = (),
    stat: Stat | None = local_stat,
    check_files: bool = True,
    workers: int = 32,
    strict_ids: bool = False,
    confined_by: str | None = None,
) -> Manifest:
    """Read, join and check the manifests; raise one ``ValidationFailed`` listing every problem.

    Relative paths resolve against ``base_dir``, or else each manifest's own folder. ``stat``
    looks files up (the services pass one built on the storage adapter, which knows S3);
    ``check_files=False`` skips existence and size checks entirely. ``aliases`` adds header
    spellings: ``{"library_id": ["lims_library"]}``. Ids that only look alike (letter case,
    invisible characters) are warnings, or problems with ``strict_ids``. ``confined_by`` (the
    setting naming them) opens only ``allowed_roots`` to the manifest — not its own folder —
    and resolves relative paths against ``base_dir`` alone (see ``manifest_paths``).
    """
    table = merge_aliases(aliases)
    problems: list[Detail] = []
    warnings: list[Detail] = []
    kinds: list[tuple[Source, Path]] = [("samples", samples)]
    if workflow is not None:
        kinds.append(("workflow", workflow))
    same_name = workflow is not None and workflow.name == samples.name
    parsed: dict[str, list[Parsed]] = {"samples": [], "workflow": []}
    labels: dict[str, str] = {}
    readable: dict[str, bool] = {}
    for kind, path in kinds:
        label = str(path) if same_name else path.name
        labels[kind] = label
        sheet = read_sheet(path, problems, warnings, label=label)
        cols = resolve_columns(sheet, kind, table, problems, warnings) if sheet.header else None
        readable[kind] = sheet.complete and cols is not None
        if cols is not None:
            base = base_dir if confined_by else base_dir or path.parent
            roots = Roots.make(base, allowed_roots, confined_by=confined_by)
            parsed[kind] = parse_rows(sheet, cols, kind, roots, problems)

    check_ids(
        parsed["samples"],
        parsed["workflow"],
        strict=strict_ids,
        problems=problems,
        warnings=warnings,
    )
    everything = parsed["samples"] + parsed["workflow"]
    check_duplicates(everything, problems)
    libraries = check_libraries(parsed["samples"], problems)
    if readable["samples"]:
        # when the sample file could not be read through, its libraries are not all known,
        # and "library not in the sample manifest" would be a false accusation
        join_workflow(parsed["workflow"], libraries, labels["samples"], problems)
    if check_files:
        _check_files(everything, stat, workers, problems)
    if problems:
        raise _failure(problems, [labels[k] for k in ("samples", "workflow") if k in labels])
    rows = tuple(p.row for p in everything if p.row.uri)
    return Manifest(rows, tuple(warnings), tuple(p.row for p in parsed["samples"]))


def _failure(problems: list[Detail], labels: list[str]) -> ValidationFailed:
    """One error for everything, sorted by file and line, its message counting per file."""
    order = {label: i for i, label in enumerate(labels)}

    def label_of(d: Detail) -> str:
        name = d.field or ""
        return next((lb for lb in labels if name == lb or name.startswith(lb + ":")), "")

    problems = sorted(problems, key=lambda d: (order.get(label_of(d), len(labels)), d.row or 0))
    n = len(problems)
    noun = "problem" if n == 1 else "problems"
    if len(labels) == 1:
        text = f"{labels[0]} has {n} {noun}"
    else:
        counts = Counter(label_of(d) for d in problems)
        per_file = ", ".join(f"{label}: {counts[label]}" for label in labels if counts[label])
        text = f"the manifests have {n} {noun} ({per_file})"
    return ValidationFailed(text + "; nothing was built", problems)


def filter_manifest(
    m: Manifest,
    *,
    projects: Sequence[str] = (),
    samples: Sequence[str] = (),
    libraries: Sequence[str] = (),
    runs: Sequence[str] = (),
    data_types: Sequence[str] = (),
) -> Manifest:
    """Keep the rows every given filter allows (an empty filter allows everything).

    A value that matches nothing is an error naming it and listing what exists, and so is a
    selection without any file: a typo must not quietly produce an empty package. A run
    selects the sample rows of that run and the workflow outputs of the libraries sequenced in
    it, as well as workflow rows whose own (workflow) run it is.
    """
    every = (*m.rows, *m.listed)
    wanted = {
        "project": ({v.strip() for v in projects}, m.projects),
        "sample": ({v.strip() for v in samples}, m.samples),
        "library": ({v.strip() for v in libraries}, m.libraries),
        "run": ({v.strip() for v in runs}, m.runs),
    }
    types = {v.strip().lower() for v in data_types}
    problems: list[Detail] = []
    for name, (values, existing) in wanted.items():
        for value in sorted(values - set(existing)):
            twin = near_miss(value, existing)
            hint = f" (did you mean {visible(twin)}?)" if twin is not None else ""
            problems.append(
                Detail(
                    f"no {name} {value!r} in the manifest{hint}",
                    field=name,
                    value=value,
                    accepted=some(shown(v) for v in existing),
                )
            )
    for value in sorted(types - set(m.data_types)):
        known = value in DATA_TYPES
        problems.append(
            Detail(
                f"no {value} files in the manifest" if known else f"unknown data type {value!r}",
                field="data_type",
                value=value,
                accepted=", ".join(m.data_types if known else DATA_TYPES),
            )
        )
    if problems:
        raise ValidationFailed("a filter matches nothing in the manifest", problems)

    by_project, by_sample, by_library, by_run = (wanted[k][0] for k in wanted)
    run_libraries = {r.library_id for r in every if r.source == "samples" and r.run_id in by_run}

    def in_scope(r: ManifestRow) -> bool:
        return (
            (not by_project or r.project_id in by_project)
            and (not by_sample or r.sample_id in by_sample)
            and (not by_library or r.library_id in by_library)
            and (
                not by_run
                or r.run_id in by_run
                or (r.source == "workflow" and r.library_id in run_libraries)
            )
        )

    rows = tuple(r for r in m.rows if in_scope(r) and (not types or r.data_type in types))
    if not rows:
        asked = {
            "project": projects,
            "sample": samples,
            "library": libraries,
            "run": runs,
            "data_type": data_types,
        }
        raise ValidationFailed(
            "no file matches all the filters together",
            [
                Detail("selects nothing with the others", field=k, value=", ".join(v))
                for k, v in asked.items()
                if v
            ]
            or [Detail("the manifest lists no files")],
        )
    return Manifest(rows, m.warnings, tuple(r for r in m.listed if in_scope(r)))
