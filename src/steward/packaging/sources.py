"""Where payload bytes come from: local files and objects in S3, with change detection.

Local sources are read with plain ``os.open``/``os.readv`` rather than through the storage
adapter: the bag builder needs the open file's ``fstat`` (size, mtime, inode) before and after
reading to prove the bytes it hashed are one consistent version of the file, ``st_dev`` to
decide whether a hard link is possible, and ``readinto`` a reused buffer for speed. Objects in
S3 go through :mod:`steward.adapters.storage` (OpenDAL), with the ETag and size from a HEAD
before and after the read standing in for the local stat.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from steward.adapters.storage import S3Config, Store, normalize_key, open_store
from steward.errors import Detail, ValidationFailed


@dataclass(frozen=True)
class SourceState:
    """What must not change while (and after) a source is read."""

    size: int
    mtime_ns: int | None = None  # local files
    ino: int | None = None  # local files: a replaced file has a new inode
    dev: int | None = None
    etag: str | None = None  # S3 objects

    def same_version(self, other: SourceState) -> bool:
        return (
            self.size == other.size
            and self.mtime_ns == other.mtime_ns
            and self.ino == other.ino
            and self.dev == other.dev
            and self.etag == other.etag
        )

    def describe(self) -> str:
        if self.etag is not None:
            return f"{self.size} bytes, ETag {self.etag}"
        return f"{self.size} bytes, mtime_ns {self.mtime_ns}, inode {self.ino}"


@dataclass(frozen=True)
class LocalSource:
    uri: str
    path: Path

    def stat(self) -> SourceState:
        return local_state(os.stat(self.path))


@dataclass(frozen=True)
class S3Source:
    uri: str
    bucket: str
    key: str

    def url(self) -> str:
        """The canonical ``s3://bucket/key`` with the key percent-encoded where needed."""
        return f"s3://{self.bucket}/{quote(self.key, safe='/~!$&()*+,;=:@')}"


Source = LocalSource | S3Source


def local_state(st: os.stat_result) -> SourceState:
    return SourceState(size=st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino, dev=st.st_dev)


def parse_source(uri: str) -> Source:
    """``file:///abs/path`` (or an absolute path) or ``s3://bucket/key``; percent-decoded the
    same way the storage adapter decodes its URLs."""
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    accepted = "file:///absolute/path or s3://bucket/key"
    if scheme == "s3":
        parts = urlsplit(uri)
        key = normalize_key(unquote(parts.path).removeprefix("/"), field="source_uri")
        if not parts.netloc:
            raise ValidationFailed(
                f"{uri!r} names no bucket",
                [Detail("no bucket", field="source_uri", value=uri, accepted=accepted)],
            )
        return S3Source(uri, parts.netloc, key)
    if scheme in ("", "file"):
        raw = unquote(urlsplit(uri).path) if scheme == "file" else uri
        path = Path(raw)
        if not path.is_absolute():
            raise ValidationFailed(
                f"{uri!r} is not an absolute path",
                [Detail("relative source path", field="source_uri", value=uri, accepted=accepted)],
            )
        return LocalSource(uri, path)
    raise ValidationFailed(
        f"{uri!r}: sources of kind {scheme!r} are not supported",
        [Detail("unknown scheme", field="source_uri", value=scheme, accepted=accepted)],
    )


class S3Stores:
    """One store per bucket, shared by every worker thread (OpenDAL operators are thread-safe
    and expensive enough to build that one per object would show in a 100,000-file package)."""

    def __init__(self, s3: S3Config | None) -> None:
        self._s3 = s3
        self._stores: dict[str, Store] = {}
        self._lock = threading.Lock()

    def store(self, bucket: str) -> Store:
        with self._lock:
            store = self._stores.get(bucket)
            if store is None:
                store = open_store(f"s3://{bucket}", self._s3)
                self._stores[bucket] = store
            return store

    def state(self, source: S3Source) -> SourceState:
        info = self.store(source.bucket).stat(source.key)
        return SourceState(size=info.size, etag=info.etag)
