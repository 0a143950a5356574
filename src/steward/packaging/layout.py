"""Where each manifest row's file goes inside a package's ``data/`` folder.

The layout is a template such as ``{project_id}/{data_type}/{run_id}/{library_id}/{file}``.
Values come from manifests, so they are untrusted: each path component is sanitised so that no
value can add folders, climb out (``..``), hide a file (leading dot), carry control or
bidirectional-override characters (other white space becomes a plain space), or use names
Windows cannot store — recipients unpack packages on every kind of machine — or contain ``%``,
which common BagIt tools misread in manifests. A component that comes out empty (``{run_id}``
of a VCF with no run) is dropped rather than replaced by a placeholder, so the path stays
readable.
Two rows landing on one path — even differing only in letter case, which macOS and Windows
cannot tell apart — or a file landing where another row needs a folder is an error naming
both rows.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator

from steward.errors import Detail, ValidationFailed
from steward.packaging.manifest_model import Manifest, ManifestRow

DEFAULT_LAYOUT = "{project_id}/{data_type}/{run_id}/{library_id}/{file}"
PLACEHOLDERS = (
    "project_id",
    "subject_id",
    "sample_id",
    "library_id",
    "data_type",
    "section",
    "run_id",
    "lane",
    "workflow_name",
    "file",
)
MAX_COMPONENT_BYTES = 255
# "%" too: RFC 8493 writes it as "%25" in manifests, which bagit-python 1.9 and bdbag 1.8 do
# not decode, so they would reject the bag (bagit-python issue #157).
_UNSAFE = re.compile(r'[/\\:*?"<>|%]')
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{i}" for d in ("COM", "LPT") for i in range(10)}

Piece = tuple[str, str | None]  # literal text, then a placeholder (or None)


def sanitise_component(text: str) -> str:
    """One safe path component, or ``""`` when nothing is left (the caller drops it)."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(
        " " if c.isspace() else "_" if unicodedata.category(c) in _UNSAFE_CATEGORIES else c
        for c in text
    )
    text = _UNSAFE.sub("_", text).strip()
    if not text:
        return ""
    if text.startswith("."):
        text = "_" + text[1:]
    text = text.rstrip(". ") or "_"  # Windows drops trailing dots and spaces
    if text.split(".", 1)[0].upper() in _RESERVED:
        text = "_" + text
    return text


def parse_template(template: str) -> list[list[Piece]]:
    """The template's components, each as pieces; every problem in one ``ValidationFailed``."""
    problems: list[Detail] = []
    accepted = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    components: list[list[Piece]] = []
    if not template.strip():
        problems.append(Detail("the layout is empty", field="layout", accepted=DEFAULT_LAYOUT))
    elif template.startswith("/"):
        problems.append(
            Detail("the layout must be relative to data/", field="layout", value=template)
        )
    for text in template.split("/"):
        pieces: list[Piece] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            problems.append(Detail(f"unreadable braces: {exc}", field="layout", value=text))
            continue
        for literal, name, spec, conversion in parsed:
            if name is not None and name not in PLACEHOLDERS:
                problems.append(
                    Detail(
                        f"unknown placeholder {{{name}}}",
                        field="layout",
                        value=name,
                        accepted=accepted,
                    )
                )
            elif spec or conversion:
                problems.append(
                    Detail(
                        "placeholders take no format or conversion",
                        field="layout",
                        value=f"{{{name}{'!' + conversion if conversion else ''}"
                        f"{':' + spec if spec else ''}}}",
                        accepted=accepted,
                    )
                )
            pieces.append((literal, name))
        if text.strip() in (".", ".."):
            problems.append(Detail(f"{text!r} is not a folder name", field="layout"))
        components.append(pieces)
    if not problems and not any(name for c in components for _, name in c):
        problems.append(
            Detail(
                "the layout has no placeholder, so every file would land on one path",
                field="layout",
                value=template,
                accepted=accepted,
            )
        )
    if problems:
        raise ValidationFailed(f"the layout {template!r} cannot be used", problems)
    return components


def _values(row: ManifestRow) -> dict[str, str]:
    return {
        "project_id": row.project_id,
        "subject_id": row.subject_id,
        "sample_id": row.sample_id,
        "library_id": row.library_id,
        "data_type": row.data_type,
        "section": row.section,
        "run_id": row.run_id,
        "lane": row.lane or "",
        "workflow_name": row.workflow_name or "",
        "file": row.file_name,
    }


def render(components: list[list[Piece]], row: ManifestRow) -> str:
    values = _values(row)
    parts = []
    for pieces in components:
        # values are cleaned before joining so that no value can add a "/" of its own
        text = "".join(
            lit + (_UNSAFE.sub("_", values[name]) if name else "") for lit, name in pieces
        )
        part = sanitise_component(text)
        if part:
            parts.append(part)
    return "/".join(parts)


def _folders(path: str) -> Iterator[str]:
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def plan_layout(m: Manifest, template: str = DEFAULT_LAYOUT) -> list[tuple[ManifestRow, str]]:
    """Each row with its path relative to ``data/``, in row order; raise on any clash."""
    components = parse_template(template)
    plan = [(row, render(components, row)) for row in m.rows]
    problems: list[Detail] = []
    files: dict[str, tuple[ManifestRow, str]] = {}
    folders: dict[str, ManifestRow] = {}
    for row, path in plan:
        if not path:
            problems.append(
                Detail(
                    f"{row.where}: the layout gives this file no path", field="layout", row=row.line
                )
            )
            continue
        long = [p for p in path.split("/") if len(p.encode()) > MAX_COMPONENT_BYTES]
        if long:
            problems.append(
                Detail(
                    f"{row.where}: a name longer than {MAX_COMPONENT_BYTES} bytes",
                    field="layout",
                    row=row.line,
                    value=long[0][:80] + "…",
                )
            )
        key = path.casefold()
        if key in files:
            other, other_path = files[key]
            how = "" if other_path == path else f" (as {other_path!r}; only letter case differs)"
            problems.append(
                Detail(
                    f"{row.where} and {other.where} would both be stored at {path!r}{how}",
                    field="layout",
                    row=row.line,
                    value=path,
                )
            )
            continue
        files[key] = (row, path)
        for folder in _folders(key):
            folders.setdefault(folder, row)
    for key, (row, path) in files.items():
        if key in folders:
            other = folders[key]
            problems.append(
                Detail(
                    f"{row.where} would be stored at {path!r}, a folder {other.where} needs",
                    field="layout",
                    row=row.line,
                    value=path,
                )
            )
    if problems:
        raise ValidationFailed(
            f"the layout {template!r} does not give every file its own path", problems
        )
    return plan
