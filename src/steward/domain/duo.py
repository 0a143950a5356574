"""Data Use Ontology codes: the conditions attached to controlled data, validated on input.

The list ships with the package (``steward/data/duo.csv``) so validation works offline.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from steward.errors import Detail

DUO_ID = re.compile(r"^DUO:\d{7}$")


@dataclass(frozen=True)
class DuoTerm:
    id: str
    shorthand: str
    label: str


@cache
def terms() -> dict[str, DuoTerm]:
    text = files("steward.data").joinpath("duo.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return {r["id"]: DuoTerm(r["id"], r["shorthand"], r["label"]) for r in rows}


def normalise(
    codes: list[str], *, field: str = "duo_codes", row: int | None = None
) -> tuple[list[str], list[Detail]]:
    """Accept ``DUO:0000042`` or its shorthand ``GRU``; return canonical ids and problems."""
    by_short = {t.shorthand.upper(): t.id for t in terms().values()}
    out: list[str] = []
    problems: list[Detail] = []
    for raw in codes:
        code = raw.strip()
        if not code:
            continue
        if code.upper() in by_short:
            canon = by_short[code.upper()]
        elif DUO_ID.match(code.upper()):
            canon = code.upper()
            if canon not in terms():
                problems.append(
                    Detail(
                        "unknown DUO code",
                        field=field,
                        row=row,
                        value=raw,
                        accepted="see `steward duo list`",
                    )
                )
                continue
        else:
            problems.append(
                Detail(
                    "malformed DUO code",
                    field=field,
                    row=row,
                    value=raw,
                    accepted="DUO:NNNNNNN (7 digits) or a shorthand such as GRU, HMB, NPU",
                )
            )
            continue
        if canon not in out:
            out.append(canon)
    return out, problems
