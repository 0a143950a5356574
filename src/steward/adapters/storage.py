"""One storage interface for a local folder and an S3 bucket, so packages and pushes need not care.

A :class:`Store` is one root (``file:///abs/dir`` or ``s3://bucket/prefix``); keys are
"/"-separated paths below it. Keys coming from people (manifests, package names) are normalised
here and may never leave the root. Foreign errors (OpenDAL, OSError, S3 answers) are turned into
Steward's exception tree at this boundary, with messages that name the bucket, key or endpoint
and never a secret.

The S3 store runs on Apache OpenDAL (see :mod:`steward.adapters.store_s3`); the local store uses
the file system directly (see :mod:`steward.adapters.store_local`) because OpenDAL's ``fs``
writer writes in place, so a failed write would leave half a file under its final name.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from steward.adapters.s3config import S3Config
from steward.errors import Detail, ValidationFailed

__all__ = [
    "ObjectInfo",
    "S3Config",
    "Store",
    "Writer",
    "normalize_key",
    "open_store",
    "parse_destination",
    "split_url",
]

_MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
DESTINATION_ACCEPTED = "an absolute folder (/srv/out), file:///srv/out or s3://bucket[/prefix]"


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the store root, "/"-separated, no leading "/"
    size: int
    etag: str | None = None  # S3 ETag without quotes; None for local files
    last_modified: datetime | None = None  # UTC
    storage_class: str | None = None  # e.g. "GLACIER"; None = standard or local
    mtime_ns: int | None = None  # local files only (change detection)
    metadata: Mapping[str, str] | None = None  # S3 user metadata (stat only, not list)


class Writer(Protocol):
    """What ``open_writer`` yields. ``part_size`` is the multipart part size in use (None when
    the store has no parts), so a caller can predict the ETag the store will report."""

    @property
    def part_size(self) -> int | None: ...

    def write(self, data: bytes | bytearray | memoryview, /) -> None: ...


class Store(ABC):
    """One root: a local folder or ``s3://bucket/prefix``."""

    url: str
    is_local: bool

    def local_path(self, key: str) -> Path:
        """The file behind ``key``; local stores only."""
        raise ValueError(f"{self.url} is not a local folder")

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, ETag, times and storage class; NotFound if missing."""

    def exists(self, key: str) -> bool:
        from steward.errors import NotFound

        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every file below the folder ``prefix`` (all pages, recursive), in key order."""

    @abstractmethod
    def read(self, key: str, offset: int = 0, length: int | None = None) -> bytes: ...

    @abstractmethod
    def open_reader(self, key: str, chunk_size: int = 8 << 20) -> AbstractContextManager[BinaryIO]:
        """A streaming reader: ``.read(n)`` returns up to n bytes, ``b""`` at the end."""

    @abstractmethod
    def open_writer(
        self,
        key: str,
        *,
        size_hint: int | None = None,
        metadata: Mapping[str, str] | None = None,
        part_size: int | None = None,
        concurrency: int | None = None,
    ) -> AbstractContextManager[Writer]:
        """The object appears only when the block exits cleanly; on an exception nothing does.

        ``metadata`` becomes S3 user metadata (local files have none); ``part_size`` and
        ``concurrency`` tune multipart uploads (parts in flight) and are ignored locally.
        """

    def write(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None) -> None:
        with self.open_writer(key, size_hint=len(data), metadata=metadata) as w:
            w.write(data)

    @abstractmethod
    def copy(self, src_key: str, dst_key: str) -> None: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error (as on S3)."""

    def presign_get(self, key: str, expires: timedelta) -> str:
        """A link anyone can GET until ``expires`` passes; S3 only."""
        raise ValueError(f"{self.url} is a local folder: it has no links to share")

    @abstractmethod
    def check_writable(self) -> None:
        """Fail clearly (NotFound, StorageDenied, ConfigurationError) before any data moves."""

    def abort_incomplete(self, keys: set[str] | None = None) -> int:
        """Remove leftovers of interrupted writes (multipart uploads, temporary files) for
        ``keys`` (all when None); returns how many were removed."""
        return 0

    def join(self, key: str) -> str:
        """The URL of ``key`` in this store, for messages and registries."""
        return f"{self.url}/{key}" if key else self.url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def normalize_key(key: str, *, field: str = "key", allow_empty: bool = False) -> str:
    """``./a//b/`` → ``a/b``; refuse what could leave the root or that S3 cannot hold."""
    problems: list[Detail] = []
    accepted = "a relative path such as data/sample1.fastq.gz"
    if not isinstance(key, str):
        raise ValidationFailed(
            f"{field} must be text", [Detail("not text", field=field, accepted=accepted)]
        )
    if key.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", key):
        problems.append(
            Detail("absolute paths are not allowed", field=field, value=key, accepted=accepted)
        )
    if "\\" in key:
        problems.append(
            Detail("use / to separate folders, not \\", field=field, value=key, accepted=accepted)
        )
    if _CONTROL.search(key):
        problems.append(Detail("control characters are not allowed", field=field, value=repr(key)))
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        problems.append(
            Detail("'..' would leave the root folder", field=field, value=key, accepted=accepted)
        )
    clean = "/".join(parts)
    if len(clean.encode()) > _MAX_KEY_BYTES:
        problems.append(
            Detail(f"longer than {_MAX_KEY_BYTES} bytes", field=field, value=clean[:80] + "…")
        )
    if not clean and not allow_empty and not problems:
        problems.append(Detail("a path is needed", field=field, accepted=accepted))
    if problems:
        raise ValidationFailed(f"{field} {key!r} is not a usable path", problems)
    return clean


def _parse_s3_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValidationFailed(
            f"{url!r} does not name a valid S3 bucket",
            [
                Detail(
                    "bucket names are 3-63 lower-case letters, digits, dots and hyphens",
                    field="url",
                    value=bucket,
                    accepted="s3://bucket/optional/prefix",
                )
            ],
        )
    prefix = normalize_key(unquote(parts.path).lstrip("/"), field="url", allow_empty=True)
    return bucket, prefix


def open_store(url: str | Path, s3: S3Config | None = None) -> Store:
    """``s3://bucket/prefix`` (with ``s3`` or the AWS_* environment), ``file:///dir``, ``/dir``
    or a relative folder (resolved against the working directory)."""
    text = str(url)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "s3":
        from steward.adapters.store_s3 import S3Store

        bucket, prefix = _parse_s3_url(text)
        return S3Store(bucket, prefix, s3 if s3 is not None else S3Config.from_env())
    if scheme in ("", "file"):
        from steward.adapters.store_local import LocalStore

        if scheme == "file":
            parts = urlsplit(text)
            if parts.netloc not in ("", "localhost"):  # not silently read as a local folder
                raise ValidationFailed(
                    f"{text!r} names the host {parts.netloc!r}",
                    [
                        Detail(
                            "file:// URLs name local folders only",
                            field="url",
                            value=text,
                            accepted="file:///absolute/folder",
                        )
                    ],
                )
            path = Path(unquote(parts.path) or "/")  # "file://" + "/" + name: the root's file
        else:
            path = Path(text)
        return LocalStore(path.expanduser().resolve())
    raise ValidationFailed(
        f"{text!r}: storage of kind {scheme!r} is not supported",
        [Detail("unknown scheme", field="url", value=scheme, accepted="s3://, file:// or a path")],
    )


def _bad_destination(text: str, why: str, field: str) -> ValidationFailed:
    shown = text.encode("unicode_escape").decode("ascii") if _CONTROL.search(text) else text
    return ValidationFailed(
        f"{field} {shown!r} is not a usable destination: {why}",
        [Detail(why, field=field, value=shown, accepted=DESTINATION_ACCEPTED)],
    )


def parse_destination(text: str, *, field: str = "destination") -> str:
    """Where a person asked Steward to write, checked strictly and returned as ``open_store``
    takes it: ``s3://bucket/prefix`` or an absolute path.

    Nothing is guessed: an empty value (an unset shell variable) once became ``/NAME``, and
    ``s3://`` without a bucket a local folder ``./s3:/NAME``. Relative paths are refused too
    (they depend on where the command happens to run), as are URLs with a query, a fragment
    or an unknown scheme.
    """
    if not isinstance(text, str) or not text.strip():
        raise _bad_destination(
            text if isinstance(text, str) else "", "it is empty (an unset variable?)", field
        )
    if text != text.strip():
        raise _bad_destination(text, "it starts or ends with white space", field)
    if _CONTROL.search(text):
        raise _bad_destination(text, "it contains control characters", field)
    scheme_match = _SCHEME.match(text)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if "://" not in text:
        if scheme in ("s3", "file"):
            raise _bad_destination(text, f"a {scheme}:// URL needs two slashes", field)
        if text.startswith("~"):
            raise _bad_destination(
                text, "'~' is not expanded here: give the folder's absolute path", field
            )
        if not text.startswith("/"):
            raise _bad_destination(
                text, "a relative path: give an absolute folder or a file:/// URL", field
            )
        return str(PurePosixPath(text))
    parts = urlsplit(text)
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise _bad_destination(text, "a URL with '?' or '#'", field)
    if scheme == "s3":
        if not parts.netloc:
            raise _bad_destination(text, "no bucket after s3://", field)
        if not _BUCKET.match(parts.netloc) or ".." in parts.netloc:
            raise _bad_destination(
                text,
                f"{parts.netloc!r} is not a bucket name (3-63 lower-case letters, digits, dots "
                "and hyphens)",
                field,
            )
        try:
            prefix = normalize_key(unquote(parts.path).lstrip("/"), field=field, allow_empty=True)
        except ValidationFailed as exc:
            raise _bad_destination(text, "; ".join(d.message for d in exc.details), field) from None
        return f"s3://{parts.netloc}" + (f"/{prefix}" if prefix else "")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _bad_destination(
                text,
                f"file://{parts.netloc}/… names a host; a local folder is file:///absolute/path",
                field,
            )
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise _bad_destination(text, "no folder after file://", field)
        if _CONTROL.search(path):
            raise _bad_destination(text, "it contains control characters", field)
        return str(PurePosixPath(path))
    raise _bad_destination(text, f"storage of kind {scheme!r} is not supported", field)


def split_url(url: str | Path, s3: S3Config | None = None) -> tuple[Store, str]:
    """A file's URL or path → (the store of its folder, its key in that store)."""
    text = str(url)
    scheme = urlsplit(text).scheme.lower() if "://" in text else ""
    if scheme == "s3":
        bucket, prefix = _parse_s3_url(text)
        if not prefix:
            raise ValidationFailed(
                f"{text!r} names a bucket, not an object",
                [Detail("no object key", field="url", accepted="s3://bucket/path/to/file")],
            )
        parent = PurePosixPath(prefix).parent.as_posix()
        root = f"s3://{bucket}" + ("" if parent == "." else f"/{parent}")
        return open_store(root, s3), PurePosixPath(prefix).name
    path = Path(unquote(urlsplit(text).path)) if scheme == "file" else Path(text)
    path = path.expanduser().resolve()
    return open_store(path.parent, s3), path.name
