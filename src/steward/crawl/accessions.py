"""Accessions: recognising them where a source keeps them, and knowing when two are one.

A source says what its accessions look like (a regular expression such as
``^E-[A-Z]{4}-\\d+$``) and where the accession is written: the name of a folder (``dir``), the
name of a file chosen by a glob (``file``, e.g. ``*.idf.txt``: ``E-MTAB-1.idf.txt`` is
``E-MTAB-1``), or a field of a JSON record (``field``, a dotted path such as ``meta.acc``). When
the pattern has a group named ``accession`` (or exactly one group) that group is the
accession, so ``^(?P<accession>E-\\w+-\\d+)_v\\d+$`` reads ``E-MTAB-1`` from ``E-MTAB-1_v2``.

The same experiment is often known under several accessions: ArrayExpress imported GEO series
as ``E-GEOD-n`` (GEO's ``GSEn``). A mapping is a pair of templates, ``E-GEOD-{n}`` ↔ ``GSE{n}``,
read in both directions; ``{n}`` stands for digits, ``{x:REGEX}`` for what REGEX matches. The
duplicate check compares every form of every accession a dataset has (its own and its secondary
accessions from the metadata), so neither the direction of a mapping nor which accession a site
chose as primary matters.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

FoundIn = Literal["dir", "file", "field"]
FOUND_IN: tuple[FoundIn, ...] = ("dir", "file", "field")
DuplicateReason = Literal["secondary-accession", "mapping"]
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::((?:[^{}]|\{[^{}]*\})+))?\}")
"""``{n}`` or ``{n:REGEX}``; REGEX may hold one level of braces (``{n:[0-9]{6}}``)."""


@dataclass(frozen=True)
class AccessionRule:
    """What a source's accessions look like and where each is written."""

    pattern: re.Pattern[str]
    found_in: FoundIn = "dir"
    file_glob: str | None = None
    """With ``found_in="file"``: which file names carry an accession (``*.idf.txt``)."""
    field: str | None = None
    """With ``found_in="field"``: the dotted path of the accession in each JSON record."""

    def accession_in(self, text: str) -> str | None:
        """The accession ``text`` holds, or None when the pattern does not match it."""
        match = self.pattern.search(text)
        if match is None:
            return None
        groups = match.groupdict()
        if "accession" in groups:
            value = groups["accession"]
        elif self.pattern.groups == 1:
            value = match.group(1)
        else:
            value = match.group(0)
        return value or None

    def accession_in_file_name(self, name: str) -> str | None:
        """For ``found_in="file"``: the accession of a file chosen by the glob, else None.

        The name without the glob's fixed ending is tried first (``E-MTAB-1.idf.txt`` with
        ``*.idf.txt`` → ``E-MTAB-1``), so an anchored pattern need not spell the ending out;
        then the whole name.
        """
        if self.file_glob is None or not fnmatchcase(name, self.file_glob):
            return None
        suffix = _fixed_suffix(self.file_glob)
        if suffix and name.endswith(suffix) and len(name) > len(suffix):
            found = self.accession_in(name[: -len(suffix)])
            if found:
                return found
        return self.accession_in(name)

    def accession_in_record(self, record: Mapping[str, Any]) -> str | None:
        """For ``found_in="field"``: the accession of a JSON record, else None."""
        value = value_at(record, self.field or "accession")
        if isinstance(value, bool) or not isinstance(value, str | int):
            return None
        return self.accession_in(str(value))


def _fixed_suffix(glob: str) -> str:
    """``*.idf.txt`` → ``.idf.txt``: the literal text after the glob's last wildcard."""
    cut = max(glob.rfind(c) for c in "*?]")
    return glob[cut + 1 :] if cut >= 0 else ""


def belongs_to(name: str, accession: str) -> bool:
    """A sibling file of a ``found_in="file"`` dataset: its name is the accession, or starts
    with it followed by a character that cannot continue an accession (``E-MTAB-1.sdrf.txt``,
    ``E-MTAB-1_raw.fq`` belong to ``E-MTAB-1``; ``E-MTAB-10.idf.txt`` does not)."""
    if not name.startswith(accession):
        return False
    rest = name[len(accession) :]
    return not rest or not rest[0].isalnum()


def value_at(record: Any, path: str) -> Any:
    """The value at a dotted path (``meta.accession``) in nested JSON objects, or None."""
    current = record
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


class MappingError(ValueError):
    """A mapping whose templates cannot be read or do not correspond."""


def _template_regex(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    out, names, last = [], [], 0
    for match in _PLACEHOLDER.finditer(template):
        out.append(re.escape(template[last : match.start()]))
        name, regex = match.group(1), match.group(2) or "[0-9]+"
        if name in names:
            raise MappingError(f"{template!r}: {{{name}}} appears twice")
        try:
            re.compile(regex)
        except re.error as exc:
            raise MappingError(
                f"{template!r}: {{{name}:…}} is not a valid expression: {exc}"
            ) from None
        out.append(f"(?P<{name}>{regex})")
        names.append(name)
        last = match.end()
    if "{" in template[last:] or "}" in template[last:]:
        raise MappingError(f"{template!r}: a '{{' or '}}' that is not a placeholder")
    out.append(re.escape(template[last:]))
    return re.compile("".join(out)), tuple(names)


@dataclass(frozen=True)
class AccessionMapping:
    """Two spellings of the same accession, e.g. ``E-GEOD-{n}`` ↔ ``GSE{n}``."""

    left: str
    right: str
    _left: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _right: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        left, left_names = _template_regex(self.left)
        right, right_names = _template_regex(self.right)
        if set(left_names) != set(right_names):
            raise MappingError(
                f"{self.left!r} and {self.right!r} must use the same placeholders "
                f"({', '.join(sorted(left_names)) or 'none'} vs "
                f"{', '.join(sorted(right_names)) or 'none'})"
            )
        object.__setattr__(self, "_left", left)
        object.__setattr__(self, "_right", right)

    def other(self, accession: str) -> str | None:
        """The accession's spelling on the other side of the mapping, if it matches a side."""
        sides = ((self._left, self.right, self._right), (self._right, self.left, self._left))
        for pattern, template, other in sides:
            match = pattern.fullmatch(accession)
            if match:
                # the other side's placeholders may be stricter ({n:[0-9]{6}}): check it fits
                result = _fill(template, match.groupdict())
                return result if other.fullmatch(result) else None
        return None

    def __str__(self) -> str:
        return f"{self.left} ↔ {self.right}"


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


DEFAULT_MAPPINGS: tuple[AccessionMapping, ...] = (AccessionMapping("E-GEOD-{n}", "GSE{n}"),)


def forms(accession: str, mappings: Iterable[AccessionMapping]) -> frozenset[str]:
    """The accession and every spelling the mappings lead to (followed transitively)."""
    rules = tuple(mappings)
    seen, todo = {accession}, [accession]
    while todo and len(seen) < 64:  # a cycle of mappings cannot run away
        current = todo.pop()
        for rule in rules:
            other = rule.other(current)
            if other is not None and other not in seen:
                seen.add(other)
                todo.append(other)
    return frozenset(seen)


@dataclass(frozen=True, order=True)
class DuplicatePair:
    """Two datasets that are one experiment, and the accession form they share."""

    first: str
    second: str
    via: str
    reason: DuplicateReason


def secondary_duplicates(
    datasets: Iterable[tuple[str, Iterable[str]]],
    mappings: Iterable[AccessionMapping] = DEFAULT_MAPPINGS,
) -> list[DuplicatePair]:
    """Pairs of datasets (by primary accession) that share an accession in any form.

    ``datasets`` gives each primary accession with its secondary accessions. A pair is a
    ``secondary-accession`` duplicate when an accession written in one is written in the other
    as-is, a ``mapping`` duplicate when only a mapping makes them equal. Each pair is reported
    once, first < second.
    """
    rules = tuple(mappings)
    literal: dict[str, set[str]] = defaultdict(set)
    mapped: dict[str, set[str]] = defaultdict(set)
    for primary, secondaries in datasets:
        own = {primary, *secondaries}
        for accession in own:
            literal[accession].add(primary)
            for form in forms(accession, rules):
                mapped[form].add(primary)
    pairs: dict[tuple[str, str], DuplicatePair] = {}
    passes: tuple[tuple[dict[str, set[str]], DuplicateReason], ...] = (
        (literal, "secondary-accession"),
        (mapped, "mapping"),
    )
    for index, reason in passes:
        for form, primaries in sorted(index.items()):
            ordered = sorted(primaries)
            for i, first in enumerate(ordered):
                for second in ordered[i + 1 :]:
                    pairs.setdefault(
                        (first, second),
                        DuplicatePair(first, second, form, reason),
                    )
    return sorted(pairs.values())
