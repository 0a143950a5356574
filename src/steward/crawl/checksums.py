"""Checksums of data files: sidecars (SODAR's ``file.bam.md5``), the stored form, S3 ETags.

A sidecar is a text file named after its data file plus ``.md5`` or ``.sha256``, holding the
hex digest, optionally followed by white space and the file name as ``md5sum``/``sha256sum``
write it (``d41d8…  file.bam``, ``*file.bam`` in binary mode, a leading ``\\`` when the name
was escaped), or as BSD tools do (``MD5 (file.bam) = d41d8…``). Hex is read in either case
and kept in lower case.

A checksum is stored (``dataset_files.checksum``) as ``ALGORITHM:HEX`` — ``md5:d41d8…`` or
``sha256:e3b0…`` — one format whatever it came from. An S3 ETag is the MD5 of the object only
when the object was uploaded in one part (a multipart ETag ends in ``-N``) and is 32 hex digits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

ALGORITHMS = {"md5": 32, "sha256": 64}
"""Algorithm → length of its hex digest; also the sidecar suffixes (``.md5``, ``.sha256``)."""
PREFERRED = "md5"
"""What content comparison hashes with when it has to choose: S3 ETags and most sidecars
are MD5, so an MD5 is the checksum most often already known."""
SIDECAR_LIMIT = 64 << 10
"""A "sidecar" larger than this is not a checksum file."""
CHUNK = 1 << 20

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_BSD = re.compile(r"^(?P<alg>MD5|SHA256) ?\((?P<name>.*)\) ?= ?(?P<digest>\S+)$", re.IGNORECASE)
"""``MD5 (file.bam) = HEX``: how BSD's and macOS's ``md5 -r``-less tools write it."""


class SidecarError(ValueError):
    """A sidecar that cannot be read as a checksum of its data file (the message says why)."""


def sidecar_of(path: str) -> tuple[str, str] | None:
    """``(data file path, algorithm)`` when ``path`` is a checksum sidecar, else None."""
    lower = path.lower()
    for algorithm in ALGORITHMS:
        suffix = f".{algorithm}"
        if lower.endswith(suffix) and len(path) > len(suffix) and not path.endswith("/" + suffix):
            return path[: -len(suffix)], algorithm
    return None


def _name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


def parse_sidecar(data: bytes, data_path: str, algorithm: str) -> str:
    """The lower-case hex digest a sidecar holds for ``data_path``; :class:`SidecarError`
    when it holds none, a malformed one, or only digests of other files."""
    if len(data) > SIDECAR_LIMIT:
        raise SidecarError(f"{len(data)} bytes: too large to be a checksum file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SidecarError("not UTF-8 text") from None
    want = ALGORITHMS[algorithm]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SidecarError("empty: no checksum in it")
    found: list[tuple[str, str | None]] = []
    for number, line in enumerate(lines, 1):
        line = line.removeprefix("\\")
        bsd = _BSD.match(line)
        if bsd:
            digest, name = bsd.group("digest"), bsd.group("name") or None
        else:
            digest, _, rest = line.partition(" ")
            if "\t" in digest:
                digest, _, rest = line.partition("\t")
            name = rest.strip().removeprefix("*").strip() or None
        if len(digest) != want or not _HEX.match(digest):
            shown = digest if len(digest) <= 80 else digest[:80] + "…"
            raise SidecarError(
                f"line {number}: {shown!r} is not an {algorithm} checksum "
                f"({want} hexadecimal digits)"
            )
        found.append((digest.lower(), name))
    mine = _name(data_path)
    named = [d for d, n in found if n is not None and _name(n) == mine]
    if named:
        return named[0]
    unnamed = [d for d, n in found if n is None]
    if len(found) == 1 and unnamed:
        return unnamed[0]
    others = ", ".join(sorted({_name(n) for _, n in found if n is not None}))
    raise SidecarError(f"it names {others}, not {mine}")


def stored(algorithm: str, digest: str) -> str:
    """The checksum as ``dataset_files.checksum`` keeps it: ``md5:HEX``."""
    return f"{algorithm}:{digest.lower()}"


def parse_stored(value: str | None) -> tuple[str, str] | None:
    """``(algorithm, hex)`` of a stored checksum, or None when there is none (or it is not
    in the stored form)."""
    if not value:
        return None
    algorithm, _, digest = value.partition(":")
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS or len(digest) != ALGORITHMS[algorithm]:
        return None
    if not _HEX.match(digest):
        return None
    return algorithm, digest.lower()


def etag_md5(etag: str | None) -> str | None:
    """The MD5 an S3 ETag is, when it is a plain one (single-part upload), else None."""
    if not etag:
        return None
    value = etag.strip().strip('"')
    if len(value) != ALGORITHMS["md5"] or not _HEX.match(value):
        return None  # a multipart ETag (HEX-N), or something else altogether
    return value.lower()


@dataclass(frozen=True)
class Digests:
    values: dict[str, str]
    """Algorithm → lower-case hex."""
    size: int
    """Bytes read."""


def digest_stream(
    stream: BinaryIO,
    algorithms: Iterable[str],
    advance: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> Digests:
    """Every algorithm's digest of ``stream``, read once in chunks (``advance`` hears each
    chunk's size, for a progress bar)."""
    hashers = {a: hashlib.new(a) for a in dict.fromkeys(algorithms)}
    total = 0
    while True:
        block = stream.read(chunk)
        if not block:
            break
        total += len(block)
        for h in hashers.values():
            h.update(block)
        if advance is not None:
            advance(len(block))
    return Digests({a: h.hexdigest() for a, h in hashers.items()}, total)
