"""Expected-files manifests: what a dataset should hold, so a crawl can say what it lacks.

Two shapes are read, both with paths relative to the manifest's own folder:

- a sheet (``manifest.tsv``/``.csv``, ``*.manifest.tsv``/``.csv``) whose header names a
  ``path`` column (or ``file``, ``filename``, ``file_name``), and optionally ``size`` (or
  ``bytes``) and a checksum (``md5``, ``sha1``, ``sha256``, ``sha512`` or ``checksum`` written
  ``ALG:HEX``);
- a BagIt payload manifest (``manifest-md5.txt``, ``manifest-sha256.txt``…: ``HEX PATH`` per
  line, RFC 8493 §2.1.3), so a bag's own manifest says which payload files it must have.

The fields carry one entry per manifest under ``expected_files:<its path>`` (several manifests
of one dataset — a bag's MD5 and SHA-256 ones — never merge into one list); the crawl takes
them out of the metadata and compares them with the files it listed
(:func:`steward.services.crawl_expected.compare`).
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from typing import Any

from steward.crawl.extractors.base import Extraction, ExtractionFailed, Extractor
from steward.crawl.extractors.tabular import read_rows

FIELD_PREFIX = "expected_files:"
_PATH = ("path", "file", "filename", "file_name")
_SIZE = ("size", "bytes", "size_bytes")
_ALGORITHMS = ("md5", "sha1", "sha256", "sha512")
_BAGIT = re.compile(r"^manifest-(md5|sha1|sha256|sha512)\.txt$", re.IGNORECASE)
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_HEX_LENGTH = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}

Expected = list[Any]
"""``[path, size or None, "alg:hex" or None]`` (JSON-ready)."""


def _inside(folder: str, path: str, line: int) -> str:
    """The path relative to the dataset, refusing one that leaves it."""
    path = path.strip().replace("\\", "/")
    if not path or path.startswith("/") or re.match(r"^[A-Za-z]:/", path):
        raise ExtractionFailed(f"line {line}: {path!r} is not a path relative to the manifest")
    joined = posixpath.normpath(posixpath.join(folder, path))
    if joined == ".." or joined.startswith("../"):
        raise ExtractionFailed(f"line {line}: {path!r} points outside the dataset")
    return joined


def _bagit(text: str, folder: str, algorithm: str) -> list[Expected]:
    out: list[Expected] = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        digest, *rest = re.split(r"[ \t]+", raw.strip(), maxsplit=1)  # RFC 8493: any LWS
        path = rest[0] if rest else ""
        if not _HEX.match(digest) or len(digest) != _HEX_LENGTH[algorithm] or not path.strip():
            raise ExtractionFailed(
                f"line {line}: expected 'CHECKSUM PATH' as BagIt writes it (a {algorithm} "
                f"checksum is {_HEX_LENGTH[algorithm]} hex digits), got {raw[:80]!r}"
            )
        # RFC 8493: a path's CR, LF and % are percent-encoded
        path = path.strip().replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")
        out.append([_inside(folder, path, line), None, f"{algorithm}:{digest.lower()}"])
    return out


def _sheet_rows(text: str, comma: bool) -> list[tuple[int, list[str]]]:
    if comma:
        reader = csv.reader(io.StringIO(text))
        return [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    return [(r.line, list(r.cells)) for r in read_rows(text)]


def _sheet(text: str, folder: str, comma: bool) -> list[Expected]:
    rows = _sheet_rows(text, comma)
    if not rows:
        raise ExtractionFailed("the manifest is empty: no header row")
    header = [c.strip().lower().replace(" ", "_") for c in rows[0][1]]
    where = {name: i for i, name in enumerate(header)}
    path_at = next((where[n] for n in _PATH if n in where), None)
    if path_at is None:
        raise ExtractionFailed(
            f"line {rows[0][0]}: no path column (accepted names: {', '.join(_PATH)}); "
            f"the header has {', '.join(header) or 'nothing'}"
        )
    size_at = next((where[n] for n in _SIZE if n in where), None)
    sums = [(a, where[a]) for a in _ALGORITHMS if a in where]
    plain = where.get("checksum")
    out: list[Expected] = []
    for line, cells in rows[1:]:

        def cell(i: int | None, cells: list[str] = cells) -> str:
            return cells[i].strip() if i is not None and i < len(cells) else ""

        path = cell(path_at)
        if not path:
            raise ExtractionFailed(f"line {line}: the path is empty")
        size: int | None = None
        if cell(size_at):
            try:
                size = int(cell(size_at))
            except ValueError:
                raise ExtractionFailed(
                    f"line {line}: size {cell(size_at)!r} is not a whole number of bytes"
                ) from None
        checksum = next((f"{a}:{cell(i).lower()}" for a, i in sums if cell(i)), None)
        if checksum is None and cell(plain):
            alg, _, digest = cell(plain).partition(":")
            if alg.lower() not in _ALGORITHMS or not _HEX.match(digest):
                raise ExtractionFailed(
                    f"line {line}: checksum {cell(plain)!r} is not ALG:HEX "
                    f"(ALG one of {', '.join(_ALGORITHMS)})"
                )
            checksum = f"{alg.lower()}:{digest.lower()}"
        out.append([_inside(folder, path, line), size, checksum])
    return out


class ExpectedFilesExtractor(Extractor):
    name = "expected-files"
    globs = (
        "manifest.tsv",
        "manifest.csv",
        "*.manifest.tsv",
        "*.manifest.csv",
        "manifest-md5.txt",
        "manifest-sha1.txt",
        "manifest-sha256.txt",
        "manifest-sha512.txt",
    )
    description = "expected-files manifest (sheet or BagIt): missing and extra files"

    def extract(self, text: str, *, path: str) -> Extraction:
        folder, _, name = path.rpartition("/")
        bag = _BAGIT.match(name)
        if bag:
            expected = _bagit(text, folder, bag.group(1).lower())
        else:
            expected = _sheet(text, folder, comma=name.lower().endswith(".csv"))
        return Extraction({f"{FIELD_PREFIX}{path}": expected})
