"""Identifiers that look alike but are not: letter case, characters nobody sees, Unicode forms.

"L1" and "l1", or "L1" and "L1" followed by a zero-width space, look like one library in a
spreadsheet, but Steward compares ids exactly, so they are two: two folders in the bag, two rows
in the report, and a workflow row whose library "is not in the sample manifest" although it is
plainly there. Such look-alikes, and ids holding a character nobody can see (zero-width
space, no-break space, byte-order mark, other Unicode format or control characters), are
warnings by default and problems when ids are checked strictly (``--strict-ids`` or the
``manifest_ids = "refuse"`` setting): a LIMS whose ids really differ only in case keeps
working, and a consortium that wants clean ids can insist on them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from steward.errors import Detail
from steward.packaging.manifest_read import detail

if TYPE_CHECKING:  # manifest_rows uses the helpers here for its own hints
    from steward.packaging.manifest_rows import Parsed

ID_COLUMNS = ("project_id", "subject_id", "sample_id", "library_id", "run_id")
_NOUNS = {
    "project_id": "projects",
    "subject_id": "subjects",
    "sample_id": "samples",
    "library_id": "libraries",
    "run_id": "runs",
}
STRICT_HINT = 'refused because ids are checked strictly (--strict-ids, manifest_ids = "refuse")'


def _is_invisible(c: str) -> bool:
    return c != " " and (c.isspace() or unicodedata.category(c) in ("Cf", "Cc", "Zl", "Zp"))


def invisible(value: str) -> list[str]:
    """Names of the characters in ``value`` nobody can see: ``U+200B ZERO WIDTH SPACE``."""
    found = dict.fromkeys(c for c in value if _is_invisible(c))
    return [f"U+{ord(c):04X} {unicodedata.name(c, 'control character')}" for c in found]


def visible(value: str) -> str:
    """``value`` quoted, with every invisible character written as ``<U+200B>``."""
    return "'" + "".join(f"<U+{ord(c):04X}>" if _is_invisible(c) else c for c in value) + "'"


def _without_invisible(value: str) -> str:
    kept = "".join(" " if c.isspace() else c for c in value if c.isspace() or not _is_invisible(c))
    return " ".join(kept.split())


def fold(value: str) -> str:
    """What a person reading the id sees: no invisible characters, one Unicode form, one case."""
    return unicodedata.normalize("NFKC", _without_invisible(value)).casefold()


def how_they_differ(a: str, b: str) -> str:
    """Why two ids with the same :func:`fold` are not equal, in words."""
    reasons = []
    names = list(dict.fromkeys(invisible(a) + invisible(b)))
    if names:
        reasons.append("characters nobody can see (" + ", ".join(names) + ")")
    plain_a, plain_b = _without_invisible(a), _without_invisible(b)
    form_a, form_b = unicodedata.normalize("NFKC", plain_a), unicodedata.normalize("NFKC", plain_b)
    if plain_a != plain_b and form_a == form_b:
        reasons.append("Unicode form (accents written differently, or full-width letters)")
    if form_a != form_b:
        reasons.append("letter case")
    return " and ".join(reasons)


def shown(value: str) -> str:
    """``value`` as is, or :func:`visible` when it holds an invisible character."""
    return visible(value) if invisible(value) else value


def near_miss(value: str, candidates: Iterable[str]) -> str | None:
    """A candidate that only looks like ``value``, for "did you mean" hints."""
    key = fold(value)
    return next((c for c in candidates if c != value and fold(c) == key), None)


def _lines(lines: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:5])
    more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    return ("line " if len(lines) == 1 else "lines ") + shown + more


def check_ids(
    samples: Sequence[Parsed],
    workflow: Sequence[Parsed],
    *,
    strict: bool,
    problems: list[Detail],
    warnings: list[Detail],
) -> None:
    """Look-alike ids within a column of a manifest, and ids with invisible characters."""
    out = problems if strict else warnings
    groups: list[tuple[str, bool, Sequence[Parsed]]] = [(c, True, samples) for c in ID_COLUMNS]
    # a workflow row's sample, subject and project come from its library's sample row, and a
    # library id there that only looks like one in the sample manifest is refused by the join
    groups += [("library_id", False, workflow), ("run_id", True, workflow)]
    for column, twins, rows in groups:
        spellings: dict[str, dict[str, list[int]]] = {}
        for p in rows:
            value = getattr(p.row, column)
            if value:
                spellings.setdefault(fold(value), {}).setdefault(value, []).append(p.row.line)
        label = rows[0].label if rows else ""
        for variants in spellings.values():
            if twins and len(variants) > 1:
                out.append(_twins(label, column, variants, strict))
                continue
            for value, lines in variants.items():
                names = invisible(value)
                if names:
                    out.append(_hidden(label, column, value, lines, names, strict))


def _twins(label: str, column: str, variants: dict[str, list[int]], strict: bool) -> Detail:
    (first, _), *others = variants.items()
    listed = [f"{visible(v)} ({_lines(lines)})" for v, lines in variants.items()]
    how = " and ".join(dict.fromkeys(how_they_differ(first, v) for v, _ in others))
    message = f"{column} {', '.join(listed[:-1])} and {listed[-1]} differ only by {how}; " + (
        STRICT_HINT if strict else f"they are kept as different {_NOUNS[column]}"
    )
    second, second_lines = others[0]
    return detail(
        label,
        column,
        message,
        row=second_lines[0],
        value=visible(second),
        accepted=f"one spelling for each of the {_NOUNS[column]}, e.g. {visible(first)}",
    )


def _hidden(
    label: str, column: str, value: str, lines: list[int], names: list[str], strict: bool
) -> Detail:
    message = (
        f"{column} {visible(value)} ({_lines(lines)}) contains characters nobody can see: "
        + ", ".join(names)
    )
    if strict:
        message += f"; {STRICT_HINT}"
    return detail(
        label,
        column,
        message,
        row=lines[0],
        value=visible(value),
        accepted="ids of visible characters only, e.g. " + visible(_without_invisible(value)),
    )
