"""Where a manifest's files are, and whether the manifest may point there.

A manifest is user input, so its paths get the same suspicion as any upload: the rule is

* ``..`` is refused everywhere (local paths, ``file://`` URIs, S3 keys): no honest manifest
  needs it, and refusing it outright is easier to explain than "it may go up, but not too far";
* relative paths are resolved against the manifest's folder (or the caller's ``base_dir``);
* a local file, after resolving symlinks, must lie inside ``base_dir`` or one of the
  ``allowed_roots`` — so a symlink planted in the data folder cannot smuggle ``/etc/passwd``
  into a package;
* ``s3://bucket/key`` is kept as written; when ``allowed_roots`` names any ``s3://`` roots, S3
  URIs must lie under one of them (otherwise storage permissions decide).

A manifest uploaded to the server is *confined* (``Roots.confined_by`` names the setting that
lists its places): only those places are open — the manifest's own folder is not, S3 URIs must
lie under an ``s3://`` place even when none is listed, and a relative path needs a base folder
that was named (and is itself checked like any file).
"""

from __future__ import annotations

import os
import re
import stat as stat_mode
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from steward.packaging.manifest_model import FileFacts

ACCEPTED_URI = "s3://bucket/key, file:///absolute/path, or a path relative to the manifest"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")


class PathRejected(ValueError):
    """A manifest path that may not be used; ``accepted`` says what would be."""

    def __init__(self, message: str, accepted: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.accepted = accepted


@dataclass(frozen=True)
class Roots:
    """Where relative paths start and where local files may be."""

    base: Path | None
    """Where relative paths start; None (confined manifests only): relative paths refused."""
    local: tuple[Path, ...]
    """Symlink-resolved folders local files must be inside (``base`` first)."""
    s3: tuple[str, ...]
    confined_by: str | None = None
    """The setting that lists the only open places (uploaded manifests), for messages."""

    @classmethod
    def make(
        cls, base: Path | None, allowed: Sequence[str | Path], *, confined_by: str | None = None
    ) -> Roots:
        if base is not None:
            base = Path(os.path.abspath(base))
        local = [Path(os.path.realpath(base))] if base is not None and not confined_by else []
        s3: list[str] = []
        for root in allowed:
            text = str(root)
            if text.lower().startswith("s3://"):
                s3.append("s3://" + text[5:].rstrip("/"))
            else:
                path = local_path(text) if text.startswith("file://") else Path(text)
                local.append(Path(os.path.realpath(path)))
        return cls(base, tuple(dict.fromkeys(local)), tuple(s3), confined_by)

    def describe(self) -> str:
        places = ", ".join([*(str(p) for p in self.local), *self.s3])
        if self.confined_by:
            return f"a place in {self.confined_by} ({places or 'none on this server'})"
        return places


def local_path(uri: str) -> Path:
    """The path a ``file://`` URI (as this module writes them) stands for."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise ValueError(f"not a file:// URI: {uri!r}")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URI on another host: {uri!r}")
    return Path(url2pathname(parts.path))


def normalise_uri(raw: str, roots: Roots) -> tuple[str, str]:
    """``(uri, file name)`` for one manifest cell; raises :class:`PathRejected`."""
    match = _SCHEME.match(raw)
    if match:
        scheme = match.group(1).lower()
        if scheme == "s3":
            return _s3(raw[match.end() :], roots)
        if scheme != "file":
            raise PathRejected(f"{scheme}:// is not supported", ACCEPTED_URI)
        parts = urlsplit(raw)
        if parts.netloc not in ("", "localhost"):
            raise PathRejected("file:// URIs must name this machine (file:///path)", ACCEPTED_URI)
        if parts.query or parts.fragment:
            raise PathRejected("a file:// URI with ? or # (percent-encode them)", ACCEPTED_URI)
        text = unquote(parts.path)
        if not text.startswith("/"):
            raise PathRejected("a file:// URI must hold an absolute path", ACCEPTED_URI)
    else:
        text = raw
    if "\x00" in text:
        raise PathRejected("the path contains a NUL character")
    if "\\" in text:
        raise PathRejected("backslashes in a path (Windows paths are not accepted)", "/")
    if text.endswith("/"):
        raise PathRejected("this names a folder; list each file instead")
    if ".." in text.split("/"):
        raise PathRejected("'..' is not allowed in paths", "a path without '..'")
    path = Path(text)
    if not path.is_absolute():
        if roots.base is None:
            raise PathRejected(
                "a relative path in an uploaded manifest: name the folder it is relative to "
                f"(base_dir, inside {roots.confined_by}), or write an absolute path",
                roots.describe(),
            )
        path = roots.base / path
    path = Path(os.path.normpath("/" + str(path).lstrip("/")))
    real = Path(os.path.realpath(path))
    if not any(real.is_relative_to(r) for r in roots.local):
        via = "" if real == path else f" (it leads to {real})"
        raise PathRejected(
            f"this file is outside the folders manifests may use{via}",
            roots.describe(),
        )
    return path.as_uri(), path.name


def _s3(rest: str, roots: Roots) -> tuple[str, str]:
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise PathRejected("an s3:// URI without a bucket", "s3://bucket/key")
    if not _BUCKET.match(bucket):
        raise PathRejected(
            f"{bucket!r} is not a valid bucket name",
            "3–63 lowercase letters, digits, '.', '-' or '_'",
        )
    if not key or key.endswith("/"):
        raise PathRejected(
            "an s3:// URI must name an object, not a bucket or folder", "s3://bucket/key"
        )
    segments = key.split("/")
    if ".." in segments or "." in segments:
        raise PathRejected("'.' and '..' are not allowed in object keys")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise PathRejected("control characters in an object key")
    uri = f"s3://{bucket}/{key}"
    limited = bool(roots.s3) or roots.confined_by is not None
    if limited and not any(uri.startswith(r + "/") for r in roots.s3):
        raise PathRejected("this object is outside the allowed storage roots", roots.describe())
    return uri, segments[-1]


def local_stat(uri: str) -> FileFacts | None:
    """:data:`~steward.packaging.manifest_model.Stat` for ``file://`` URIs only.

    ``None`` for a missing file or anything that is not a regular file (a folder, a socket);
    symlinks are followed, as the build will follow them when copying.
    """
    path = local_path(uri)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat_mode.S_ISREG(info.st_mode):
        return None
    return FileFacts(size=info.st_size)
