"""The text formats of a BagIt 1.0 bag (RFC 8493), written and read in one place.

Writing (``bag.py``) and checking (``validate.py``) share these functions so that a bag Steward
writes is exactly what Steward's validator expects, and both follow the RFC where the common
tools do not: RFC 8493 §2.1.3 requires ``%``, CR and LF in manifest and fetch paths to be
percent-encoded. ``bagit-python`` 1.9 encodes only CR and LF (its issue #157), so the reader
here accepts a literal ``%`` too when the encoded reading names no file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
PAYLOAD_DIR = "data"
BUILD_DIR = ".steward"  # build journal and temporary files; never part of a finished bag
CRATE_FILE = "ro-crate-metadata.json"  # lives in data/: the payload directory is the crate root
RESERVED_TAG_FILES = frozenset({"bagit.txt", "bag-info.txt", "fetch.txt"})
_MANIFEST_RE = re.compile(r"^(tag)?manifest-([a-z0-9]+)\.txt$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PERCENT_RE = re.compile(r"%(25|0[aA]|0[dD])")


def encode_path(path: str) -> str:
    """RFC 8493 §2.1.3: percent-encode ``%``, CR and LF (and only those) in a manifest path."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def decode_path(text: str) -> str:
    return _PERCENT_RE.sub(lambda m: {"25": "%", "0a": "\n", "0d": "\r"}[m.group(1).lower()], text)


def is_manifest(name: str) -> bool:
    return _MANIFEST_RE.match(name) is not None


def manifest_algorithm(name: str) -> tuple[bool, str] | None:
    """``("manifest-sha256.txt")`` → ``(False, "sha256")``; tag manifests give ``True``."""
    m = _MANIFEST_RE.match(name)
    return (m.group(1) == "tag", m.group(2)) if m else None


def manifest_text(entries: Iterable[tuple[str, str]]) -> str:
    """``checksum  path`` lines sorted by path (byte order of the encoded path)."""
    lines = sorted((encode_path(path), digest) for path, digest in entries)
    return "".join(f"{digest}  {path}\n" for path, digest in lines)


def fetch_url_quote(url: str) -> str:
    """Make a URL safe for a whitespace-separated fetch.txt line without double-encoding."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def fetch_text(entries: Iterable[tuple[str, int | None, str]]) -> str:
    """RFC 8493 §2.2.3 lines ``URL LENGTH FILENAME``; ``-`` when the length is unknown."""
    lines = sorted((encode_path(path), url, size) for url, size, path in entries)
    return "".join(
        f"{fetch_url_quote(url)} {'-' if size is None else size} {path}\n"
        for path, url, size in lines
    )


def bag_info_text(fields: Sequence[tuple[str, str]]) -> str:
    """``Label: value`` lines; a value's own line breaks become continuation lines (§2.2.2)."""
    out = []
    for label, value in fields:
        if not _LABEL_RE.match(label):
            raise ValueError(f"invalid bag-info label {label!r}")
        parts = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        out.append(f"{label}: {parts[0]}\n")
        out.extend(f"  {part}\n" for part in parts[1:])
    return "".join(out)


@dataclass(frozen=True)
class ParsedLine:
    number: int  # 1-based line number, for messages
    text: str


@dataclass(frozen=True)
class BagInfoParse:
    fields: list[tuple[str, str]]
    bad_lines: list[ParsedLine]

    def get(self, label: str) -> list[str]:
        return [v for k, v in self.fields if k.lower() == label.lower()]


def parse_bag_info(text: str) -> BagInfoParse:
    fields: list[tuple[str, str]] = []
    bad: list[ParsedLine] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if fields:
                label, value = fields[-1]
                fields[-1] = (label, f"{value}\n{line.strip()}")
            else:
                bad.append(ParsedLine(number, line))
            continue
        label, sep, value = line.partition(":")
        if not sep or not label.strip() or label != label.strip():
            bad.append(ParsedLine(number, line))
            continue
        fields.append((label, value.strip()))
    return BagInfoParse(fields, bad)


@dataclass(frozen=True)
class ManifestLine:
    number: int
    digest: str
    path: str  # decoded
    raw_path: str  # as written


def parse_manifest(text: str) -> tuple[list[ManifestLine], list[ParsedLine]]:
    good: list[ManifestLine] = []
    bad: list[ParsedLine] = []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.rstrip("\r")
        if not stripped.strip():
            continue
        digest, _, rest = stripped.partition(" ")
        path = rest.lstrip(" \t")
        if not digest or not path:
            bad.append(ParsedLine(number, stripped))
            continue
        good.append(ManifestLine(number, digest.lower(), decode_path(path), path))
    return good, bad


@dataclass(frozen=True)
class FetchLine:
    number: int
    url: str
    size: int | None
    path: str
    raw_path: str


def parse_fetch(text: str) -> tuple[list[FetchLine], list[ParsedLine]]:
    good: list[FetchLine] = []
    bad: list[ParsedLine] = []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.rstrip("\r")
        if not stripped.strip():
            continue
        parts = stripped.split(None, 2)
        if len(parts) != 3 or not (parts[1] == "-" or parts[1].isdigit()):
            bad.append(ParsedLine(number, stripped))
            continue
        url, size, path = parts
        good.append(
            FetchLine(number, url, None if size == "-" else int(size), decode_path(path), path)
        )
    return good, bad


def payload_oxum(sizes: Iterable[int]) -> str:
    count = 0
    total = 0
    for size in sizes:
        count += 1
        total += size
    return f"{total}.{count}"


def human_size(n: int) -> str:
    """Bag-Size in decimal units, as recipients' tools and storage consoles show sizes."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def unsafe_relpath_reason(relpath: str) -> str | None:
    """Why a payload path (relative to ``data/``) cannot be used, or ``None`` when it can."""
    if not relpath:
        return "the path is empty"
    if "\x00" in relpath:
        return "the path contains a NUL character"
    if relpath.startswith("/") or re.match(r"^[A-Za-z]:", relpath) or "\\" in relpath:
        return "the path must be relative and use '/' separators"
    parts = relpath.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "the path has an empty, '.' or '..' segment"
    if relpath == CRATE_FILE:
        return f"'{CRATE_FILE}' at the top of data/ is reserved for the RO-Crate metadata"
    return None


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def walk_files(root: Path) -> Iterator[str]:
    """Every non-directory entry under ``root`` as a '/'-separated path relative to it.

    Symbolic links are listed (not followed): a link in a payload is a problem to report."""
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            else:
                yield Path(entry.path).relative_to(root).as_posix()


def atomic_write(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write to a temporary sibling then rename: readers see the old file or the new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def tag_relpath_reason(name: str) -> str | None:
    """Why an extra tag file name cannot be used, or ``None`` when it can."""
    reason = unsafe_relpath_reason(name) if name != CRATE_FILE else None
    if reason:
        return reason
    first = name.split("/", 1)[0]
    if first in (PAYLOAD_DIR, BUILD_DIR):
        return f"tag files cannot live under {first}/"
    if name in RESERVED_TAG_FILES or is_manifest(name):
        return f"{name} is written by the bag builder itself"
    return None
