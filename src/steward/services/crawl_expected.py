"""A place's files against its expected-files manifests: missing, extra and wrong-sized files.

The manifests come out of the metadata (the ``expected-files`` extractor,
:mod:`steward.crawl.extractors.expected`): they are not metadata people read but the list a
dataset must match. A manifest's own file, the source's other metadata files, checksum
sidecars and BagIt tag files are never "extra": nobody lists the list in itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steward.crawl.extractors.expected import FIELD_PREFIX
from steward.crawl.model import FoundFile

EXAMPLES = 5
"""Paths named in a problem; the per-file record keeps every missing one."""
_NEVER_EXTRA = re.compile(
    r"(^|/)(bagit\.txt|bag-info\.txt|fetch\.txt|tagmanifest-\w+\.txt)$"
    r"|\.(md5|sha1|sha256|sha512)$",
    re.IGNORECASE,
)


@dataclass
class Comparison:
    problems: list[dict[str, Any]] = field(default_factory=list)
    missing: list[tuple[str, int | None, str | None]] = field(default_factory=list)
    """Expected and not found: path (relative to the place), size and checksum if given."""


def take_manifests(fields: dict[str, Any]) -> dict[str, list[list[Any]]] | None:
    """Remove the manifests from ``fields`` (in place); None when the place has none."""
    keys = [k for k in fields if k.startswith(FIELD_PREFIX)]
    if not keys:
        return None
    return {k.removeprefix(FIELD_PREFIX): fields.pop(k) for k in keys}


def _problem(kind: str, items: Sequence[str], manifests: list[str]) -> dict[str, Any]:
    return {
        "kind": kind,
        "count": len(items),
        "examples": list(items[:EXAMPLES]),
        "manifests": manifests,
    }


def compare(
    files: Sequence[FoundFile],
    manifests: Mapping[str, list[list[Any]]],
    is_metadata: Callable[[str], bool],
) -> Comparison:
    out = Comparison()
    names = sorted(manifests)
    expected: dict[str, tuple[int | None, str | None]] = {}
    for manifest in names:
        for path, size, checksum in manifests[manifest]:
            had = expected.get(path)
            expected[path] = (
                size if size is not None else (had[0] if had else None),
                checksum if had is None or had[1] is None else had[1],
            )
    listed = {f.path: f for f in files}
    for path in sorted(expected):
        if path not in listed:
            out.missing.append((path, *expected[path]))
    wrong = [
        f"{p} ({expected[p][0]} bytes expected, {listed[p].size} found)"
        for p in sorted(expected)
        if p in listed and expected[p][0] is not None and listed[p].size != expected[p][0]
    ]
    extra = [
        p
        for p in sorted(listed)
        if p not in expected
        and p not in manifests
        and not is_metadata(p)
        and not _NEVER_EXTRA.search(p)
    ]
    if out.missing:
        out.problems.append(_problem("missing-files", [m[0] for m in out.missing], names))
    if extra:
        out.problems.append(_problem("extra-files", extra, names))
    if wrong:
        out.problems.append(_problem("size-mismatch", wrong, names))
    return out
