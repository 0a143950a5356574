"""MAGE-TAB 1.1: the IDF (what the experiment is) and the SDRF (what was sampled and sequenced).

From the IDF (one tag per row, values across the row): ``Investigation Title`` → ``title``,
``Experiment Description`` → ``description``, ``Comment[AEExperimentType]`` →
``experiment_type``, the ``Person …`` rows read column by column into ``persons`` (each with
its ``Person Roles``, several per person separated by ``;``), from which ``submitters`` and
``curators`` are the names with those roles; ``Comment[SecondaryAccession]`` →
``secondary_accessions`` (also split on ``;``, since both spellings occur);
``Comment[ArrayExpressAccession]`` → ``accession``; ``Public Release Date`` → ``release_date``;
``SDRF File`` → ``sdrf_files``.

From the SDRF (a table, one row per sample path through the experiment):
``Characteristics[organism]`` → ``organism``; ``Comment[LIBRARY_STRATEGY]``, ``…SOURCE``,
``…SELECTION``, ``…LAYOUT`` → ``library_strategy`` and so on (distinct values in order of first
appearance); counts of distinct ``Source Name`` (``sources``) and ``Assay Name`` or
``Hybridization Name`` (``assays``).

Tags and column headers are matched ignoring case and spaces (``Comment [LIBRARY_LAYOUT]``); a
combined file with ``[IDF]``/``[SDRF]`` section markers is read up to ``[SDRF]`` as an IDF.
Fields with no value are left out, so "not given" and "given as empty" never differ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from steward.crawl.extractors.base import Extraction, ExtractionFailed, Extractor
from steward.crawl.extractors.tabular import read_rows, split_tag

Tag = tuple[str, str | None]
_IDF_TAGS = {
    "investigationtitle",
    "experimentdescription",
    "sdrffile",
    "personlastname",
    "mage-tabversion",
    "protocolname",
    "experimentaldesign",
    "publicreleasedate",
}
_SDRF_NODES = {"sourcename", "samplename", "extractname", "assayname", "hybridizationname"}
_LIBRARY = ("library_strategy", "library_source", "library_selection", "library_layout")
_LIST_SPLIT = re.compile(r"[;,\s]+")


def _distinct(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        value = value.strip()
        if value:
            seen.setdefault(value, None)
    return list(seen)


def read_idf(text: str) -> dict[Tag, list[str]]:
    """Tag → values (positional: empty cells kept between values, trailing ones dropped)."""
    table: dict[Tag, list[str]] = {}
    for row in read_rows(text):
        first = row.cells[0].strip()
        if first.lower() == "[idf]":
            continue
        if first.lower() == "[sdrf]":
            break
        table.setdefault(split_tag(first), []).extend(row.cells[1:])
    return table


def _first(table: dict[Tag, list[str]], tag: Tag, label: str, notes: list[str]) -> str | None:
    values = _distinct(table.get(tag, []))
    if len(values) > 1:
        notes.append(f"{label} has {len(values)} values; the first is used")
    return values[0] if values else None


def _persons(table: dict[Tag, list[str]]) -> list[dict[str, Any]]:
    columns = {
        "last_name": table.get(("personlastname", None), []),
        "first_name": table.get(("personfirstname", None), []),
        "mid_initials": table.get(("personmidinitials", None), []),
        "email": table.get(("personemail", None), []),
        "affiliation": table.get(("personaffiliation", None), []),
        "roles": table.get(("personroles", None), []),
    }
    count = max((len(values) for values in columns.values()), default=0)
    persons = []
    for i in range(count):
        cell = {k: (v[i].strip() if i < len(v) else "") for k, v in columns.items()}
        if not any(cell.values()):
            continue
        name = " ".join(
            p for p in (cell["first_name"], cell["mid_initials"], cell["last_name"]) if p
        )
        person: dict[str, Any] = {"name": name} if name else {}
        for key in ("email", "affiliation"):
            if cell[key]:
                person[key] = cell[key]
        person["roles"] = _distinct(r.lower() for r in cell["roles"].split(";"))
        persons.append(person)
    return persons


class IdfExtractor(Extractor):
    name = "mage-tab-idf"
    globs = ("*.idf.txt", "*.idf.tsv", "*.idf")
    description = "MAGE-TAB IDF: title, experiment type, people and roles, secondary accessions"

    def extract(self, text: str, *, path: str) -> Extraction:
        table = read_idf(text)
        if not any(tag in _IDF_TAGS for tag, _ in table):
            raise ExtractionFailed(
                "no MAGE-TAB IDF rows (Investigation Title, SDRF File, Person Last Name…): "
                "not an IDF"
            )
        notes: list[str] = []
        fields: dict[str, Any] = {}
        for key, tag, label in (
            ("title", ("investigationtitle", None), "Investigation Title"),
            ("description", ("experimentdescription", None), "Experiment Description"),
            ("accession", ("comment", "arrayexpressaccession"), "Comment[ArrayExpressAccession]"),
            ("release_date", ("publicreleasedate", None), "Public Release Date"),
            ("mage_tab_version", ("mage-tabversion", None), "MAGE-TAB Version"),
        ):
            value = _first(table, tag, label, notes)
            if value is not None:
                fields[key] = value
        lists = {
            "experiment_type": _distinct(table.get(("comment", "aeexperimenttype"), [])),
            "secondary_accessions": _distinct(
                part
                for value in table.get(("comment", "secondaryaccession"), [])
                for part in _LIST_SPLIT.split(value)
            ),
            "sdrf_files": _distinct(table.get(("sdrffile", None), [])),
        }
        persons = _persons(table)
        if persons:
            lists["submitters"] = _distinct(
                p.get("name", p.get("email", "")) for p in persons if "submitter" in p["roles"]
            )
            lists["curators"] = _distinct(
                p.get("name", p.get("email", "")) for p in persons if "curator" in p["roles"]
            )
        fields.update({k: v for k, v in lists.items() if v})
        if persons:
            fields["persons"] = persons
        return Extraction(fields, tuple(notes))


class SdrfExtractor(Extractor):
    name = "mage-tab-sdrf"
    globs = ("*.sdrf.txt", "*.sdrf.tsv", "*.sdrf")
    description = "MAGE-TAB SDRF: organism, library construction, numbers of sources and assays"

    def extract(self, text: str, *, path: str) -> Extraction:
        rows = read_rows(text)
        if not rows:
            raise ExtractionFailed("the file has no header row: not an SDRF")
        header = [split_tag(cell) for cell in rows[0].cells]
        if not any(key in _SDRF_NODES or key == "characteristics" for key, _ in header):
            raise ExtractionFailed(
                f"line {rows[0].line}: no Source Name, Assay Name or Characteristics[…] "
                "column: not an SDRF"
            )
        notes: list[str] = []
        wanted: dict[str, list[int]] = {
            "organism": [i for i, t in enumerate(header) if t == ("characteristics", "organism")],
            "sources": [i for i, t in enumerate(header) if t == ("sourcename", None)],
            "assays": [
                i for i, (k, _) in enumerate(header) if k in ("assayname", "hybridizationname")
            ],
        }
        for field in _LIBRARY:
            wanted[field] = [i for i, t in enumerate(header) if t == ("comment", field)]
        values: dict[str, list[str]] = {k: [] for k in wanted}
        for row in rows[1:]:
            if len(row.cells) > len(header):
                notes.append(
                    f"line {row.line} has {len(row.cells)} cells but the header has "
                    f"{len(header)}; the extra cells are ignored"
                )
            for field, columns in wanted.items():
                values[field].extend(row.cells[i] for i in columns if i < len(row.cells))
        fields: dict[str, Any] = {}
        for field in ("organism", *_LIBRARY):
            distinct = _distinct(values[field])
            if distinct:
                fields[field] = distinct
        for field in ("sources", "assays"):
            if wanted[field]:
                fields[field] = len(_distinct(values[field]))
        fields["rows"] = len(rows) - 1
        return Extraction(fields, tuple(notes))
