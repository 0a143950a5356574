"""Listing an S3 bucket (or a prefix of one) into datasets.

Reuses Steward's S3 store (:class:`~steward.adapters.store_s3.S3Store`): ListObjectsV2 through
every page of 1,000 keys, errors already translated (missing bucket → not found, refused keys →
storage-denied or configuration, overload → unavailable) and secrets never in a message.

Keys arrive in order, and all keys under one prefix are contiguous, so datasets are grouped as
the listing streams by and handed on one at a time:

- ``found_in = "dir"``: the first path segment holding an accession makes the prefix up to it a
  dataset; every object below it is one of its files;
- ``found_in = "file"``: objects chosen by the ``file`` glob mark datasets in their "folder",
  with the siblings whose names start with the accession (as for folders).

An object's ETag and size are its signature: an unchanged re-crawl costs the listing only, no
object is read. A transient failure in the middle of the listing (a 503, a dropped connection)
is retried with backoff, resuming after the last key already seen; a failure that persists, or
one that cannot pass (no such bucket, refused credentials), makes the source ``failed`` and its
datasets ``unknown`` this crawl.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from steward.adapters.storage import ObjectInfo, Store, normalize_key, open_store
from steward.crawl import retry
from steward.crawl.accessions import belongs_to
from steward.crawl.config_model import SourceConfig
from steward.crawl.credentials import s3_config
from steward.crawl.model import FoundDataset, FoundFile
from steward.crawl.tracking import Listing, Tracker
from steward.errors import StewardError


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _inside(folder: str, ancestor: str) -> bool:
    return not ancestor or folder == ancestor or folder.startswith(ancestor + "/")


class S3Source:
    """A bucket or prefix as a source of datasets."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        environ: Mapping[str, str] | None = None,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._environ = environ
        self._wait = retry.backoff(backoff)
        self._sleep = sleep
        self._paths = config.paths
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        """The bucket, opened with the credentials the config names (read at first use)."""
        if self._store is None:
            self._store = open_store(self.config.url, s3_config(self.config, self._environ))
        return self._store

    def list(self, previous: Mapping[str, Any] | None = None) -> Listing:
        tracker = Tracker(self.config, previous)
        return Listing(tracker, self._walk(tracker))

    def read(self, dataset: FoundDataset, file: FoundFile, *, limit: int | None = None) -> bytes:
        """The object's bytes (at most ``limit`` + 1, so a caller can tell it was longer)."""
        key = normalize_key(_join(dataset.base, file.path))
        return self.store.read(key, 0, None if limit is None else limit + 1)

    # -- the walk ---------------------------------------------------------------------------
    def _objects(self, t: Tracker) -> Iterator[ObjectInfo]:
        """Every object the globs keep, in key order; a transient failure resumes after the
        last key seen."""
        last: str | None = None
        attempt = 0
        while True:
            try:
                for obj in self.store.list():
                    if last is not None and obj.key <= last:
                        continue
                    last = obj.key
                    if self._paths.wants_path(obj.key):
                        yield obj
                return
            except StewardError as exc:
                attempt += 1
                if not exc.transient or attempt >= self.config.retries:
                    raise
                t.retries += 1
                self._sleep(retry.seconds(self._wait, attempt))

    def _walk(self, t: Tracker) -> Iterator[FoundDataset]:
        if self.config.accession.found_in == "dir":
            yield from self._by_dir(t)
        else:
            yield from self._by_file(t)

    def _dataset_of(self, key: str) -> tuple[str, str] | None:
        parts = key.split("/")[:-1]
        for depth, part in enumerate(parts):
            accession = self.config.accession.accession_in(part)
            if accession:
                return "/".join(parts[: depth + 1]), accession
        return None

    def _emit(
        self, t: Tracker, base: str, accession: str, files: builtins.list[FoundFile]
    ) -> FoundDataset:
        return t.found(
            accession=accession,
            key=base,
            base=base,
            location=self.store.join(base) + "/",
            files=tuple(files),
        )

    def _by_dir(self, t: Tracker) -> Iterator[FoundDataset]:
        current: tuple[str, str] | None = None
        files: builtins.list[FoundFile] = []
        for obj in self._objects(t):
            located = self._dataset_of(obj.key)
            if located is None:
                continue
            if located != current:
                if current is not None:
                    yield self._emit(t, current[0], current[1], files)
                current, files = located, []
            files.append(FoundFile(obj.key[len(located[0]) + 1 :], obj.size, etag=obj.etag))
        if current is not None:
            yield self._emit(t, current[0], current[1], files)

    def _by_file(self, t: Tracker) -> Iterator[FoundDataset]:
        pending: dict[str, builtins.list[ObjectInfo]] = {}
        for obj in self._objects(t):
            folder = obj.key.rpartition("/")[0]
            for done in [f for f in pending if not _inside(folder, f)]:
                yield from self._folder_datasets(t, done, pending.pop(done))
            pending.setdefault(folder, []).append(obj)
        for folder in sorted(pending):
            yield from self._folder_datasets(t, folder, pending[folder])

    def _folder_datasets(
        self, t: Tracker, folder: str, objects: builtins.list[ObjectInfo]
    ) -> Iterator[FoundDataset]:
        rule = self.config.accession
        named = {obj.key.rpartition("/")[2]: obj for obj in objects}
        markers: dict[str, builtins.list[str]] = {}
        for name in named:
            accession = rule.accession_in_file_name(name)
            if accession:
                markers.setdefault(accession, []).append(name)
        for accession, marked in sorted(markers.items()):
            members = sorted({*marked, *(n for n in named if belongs_to(n, accession))})
            files = tuple(
                FoundFile(name, named[name].size, etag=named[name].etag) for name in members
            )
            yield t.found(
                accession=accession,
                key=_join(folder, accession),
                base=folder,
                location=self.store.join(_join(folder, marked[0])),
                files=files,
            )
