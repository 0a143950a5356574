"""Reaching a dataset's files where the crawl found them, and telling metadata from data.

``dataset_files`` keeps each file's path below its *source's* root, and ``dataset_locations``
where each place is (a folder path, an ``s3://`` URL, an endpoint URL). To read a file again
Steward needs the root and, for a bucket, the credentials the sources config names:

- a **folder** source's root is read off its places (the crawl stored the folder it found the
  dataset in, and its key below the root), so checking a folder needs no config; the config's
  URL is the fallback;
- an **s3** source needs its entry in the sources config (``--sources FILE`` or ``[crawl]`` in
  steward.toml): its endpoint and the variables holding its keys;
- an **endpoint** source holds records, not files: there is nothing to read.

A *metadata file* is one the source's extractors read (their globs: IDF/SDRF, JSON/YAML
sidecars, TSV); without the source's config entry, any registered extractor's globs count.
A *checksum sidecar* (``.md5``/``.sha256``) is neither: it describes a data file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from steward.adapters.storage import ObjectInfo, Store, open_store
from steward.crawl.checksums import sidecar_of
from steward.crawl.config_model import CrawlConfig, SourceConfig
from steward.crawl.credentials import s3_config
from steward.crawl.extractors.base import Extractor
from steward.crawl.extractors.registry import extractor_names, get_extractor
from steward.db.bulk import in_chunks
from steward.db.models import DatasetFile, DatasetLocation
from steward.domain import datasets as domain
from steward.errors import StewardError

Kind = str
"""``folder``, ``s3`` or ``endpoint``."""


@dataclass(frozen=True)
class FileRow:
    """One file of the durable record, as read."""

    dataset_id: str
    source: str
    path: str
    size: int
    checksum: str | None
    etag: str | None
    mtime_ns: int | None
    outcome: str
    first_seen_at: datetime
    last_seen_at: datetime

    @property
    def present(self) -> bool:
        return self.outcome not in domain.ABSENT


@dataclass(frozen=True)
class PlaceRow:
    dataset_id: str
    source: str
    key: str
    location: str
    stage: str
    present: bool


@dataclass
class Reach:
    """How to read one source's files again — or why Steward cannot."""

    source: str
    kind: Kind
    store: Store | None = None
    why_not: str | None = None
    extractors: tuple[Extractor, ...] = ()
    configured: bool = False

    def metadata_readers(self, path: str) -> list[str]:
        """The extractors that read ``path`` (empty: not a metadata file)."""
        if sidecar_of(path) is not None:
            return []
        return [e.name for e in self.extractors if e.wants(path)]

    def file_kind(self, path: str) -> str:
        """``metadata``, ``checksum`` (a sidecar) or ``data``."""
        if sidecar_of(path) is not None:
            return "checksum"
        return "metadata" if self.metadata_readers(path) else "data"


@dataclass
class HashProgress:
    """Callbacks the CLI turns into a progress bar; all optional."""

    start: Callable[[int, int], None] | None = None
    """(total bytes, total files) about to be read."""
    advance: Callable[[int, int], None] | None = None
    """(bytes, files) since the last call."""

    def begin(self, nbytes: int, nfiles: int) -> None:
        if self.start is not None:
            self.start(nbytes, nfiles)

    def step(self, nbytes: int, nfiles: int = 0) -> None:
        if self.advance is not None:
            self.advance(nbytes, nfiles)


@dataclass
class Skipped:
    """Sources whose files could not be looked at, with why (for results and events)."""

    sources: dict[str, str] = field(default_factory=dict)

    def as_list(self) -> list[dict[str, str]]:
        return [{"source": k, "why": v} for k, v in sorted(self.sources.items())]


def _kind_of(location: str) -> Kind:
    lower = location.lower()
    if lower.startswith("s3://"):
        return "s3"
    if lower.startswith(("http://", "https://")):
        return "endpoint"
    return "folder"


def _root_of(location: str, key: str) -> str | None:
    """The source root a folder place's ``location`` lies in: a dataset folder is
    ``ROOT/KEY``; a dataset named by its files is ``ROOT/FOLDER/FILE`` with ``KEY`` being
    ``FOLDER/ACCESSION``."""
    location = location.rstrip("/") or "/"
    if not location.startswith("/"):
        return None
    if key and location.endswith("/" + key):
        return location[: -len(key) - 1] or "/"
    folder = posixpath.dirname(location)
    rel = key.rpartition("/")[0]
    if not rel:
        return folder
    if folder.endswith("/" + rel):
        return folder[: -len(rel) - 1] or "/"
    return None


def _extractors(cfg: SourceConfig | None) -> tuple[Extractor, ...]:
    names = cfg.extractors if cfg is not None else extractor_names()
    out: list[Extractor] = []
    for name in names:
        try:
            out.append(get_extractor(name))
        except KeyError:
            continue  # a plugin gone since the config was written: its files read as data
    return tuple(out)


def reach_sources(
    places: Iterable[PlaceRow],
    config: CrawlConfig | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Reach]:
    """How to read each source of ``places`` (nothing is contacted yet)."""
    by_source: dict[str, list[PlaceRow]] = {}
    for p in places:
        by_source.setdefault(p.source, []).append(p)
    configured = {s.name: s for s in config.sources} if config is not None else {}
    out: dict[str, Reach] = {}
    for name, group in sorted(by_source.items()):
        cfg = configured.get(name)
        kind: Kind = cfg.kind if cfg is not None else _kind_of(group[0].location)
        reach = Reach(name, kind, extractors=_extractors(cfg), configured=cfg is not None)
        out[name] = reach
        if kind == "endpoint":
            reach.why_not = (
                f"{name!r} is an endpoint source: Steward keeps its records, not files to read"
            )
            continue
        try:
            if kind == "folder":
                roots = {_root_of(p.location, p.key) for p in group} - {None}
                if len(roots) == 1:
                    root = str(next(iter(roots)))
                elif cfg is not None:
                    root = cfg.url
                else:
                    reach.why_not = (
                        f"the folder of source {name!r} cannot be told from its places: "
                        "give the sources config (--sources FILE) that names it"
                    )
                    continue
                reach.store = open_store(root)
            elif cfg is None:
                reach.why_not = (
                    f"{name!r} is an s3 source that the sources config does not name: give "
                    "--sources FILE (or [crawl] in steward.toml) with its entry, which names "
                    "its endpoint and credentials"
                )
            else:
                reach.store = open_store(cfg.url, s3_config(cfg, environ))
        except StewardError as exc:
            reach.why_not = f"source {name!r}: {exc.message}"
    return out


# ---- reading the record -------------------------------------------------------------------
def _file_row(f: DatasetFile) -> FileRow:
    return FileRow(
        dataset_id=f.dataset_id,
        source=f.source,
        path=f.path,
        size=f.size,
        checksum=f.checksum,
        etag=f.etag,
        mtime_ns=f.mtime_ns,
        outcome=f.outcome,
        first_seen_at=f.first_seen_at,
        last_seen_at=f.last_seen_at,
    )


def files_of(s: Session, dataset_ids: Sequence[str], *, present_only: bool) -> list[FileRow]:
    out: list[FileRow] = []
    for part in in_chunks(dataset_ids):
        q = select(DatasetFile).where(DatasetFile.dataset_id.in_(part))
        if present_only:
            q = q.where(DatasetFile.outcome.not_in(domain.ABSENT))
        out += [_file_row(f) for f in s.scalars(q)]
    return sorted(out, key=lambda f: (f.dataset_id, f.source, f.path))


def places_of(s: Session, dataset_ids: Sequence[str]) -> list[PlaceRow]:
    out: list[PlaceRow] = []
    for part in in_chunks(dataset_ids):
        q = select(DatasetLocation).where(DatasetLocation.dataset_id.in_(part))
        out += [
            PlaceRow(p.dataset_id, p.source, p.key, p.location, p.stage, p.present)
            for p in s.scalars(q)
        ]
    return sorted(out, key=lambda p: (p.dataset_id, not p.present, p.source, p.key))


def unchanged(row: FileRow, info: ObjectInfo) -> bool:
    """Whether the file is still what the record describes (size and time, or ETag): the key
    a stored checksum is valid for."""
    if info.size != row.size:
        return False
    if info.etag is not None or row.etag is not None:
        return info.etag == row.etag
    return info.mtime_ns == row.mtime_ns


FILES = DatasetFile.metadata.tables["dataset_files"]
FILE_KEY = (
    (FILES.c.dataset_id == bindparam("d"))
    & (FILES.c.source == bindparam("s"))
    & (FILES.c.path == bindparam("p"))
)
AS_RECORDED = (
    (FILES.c.size == bindparam("w_size"))
    & FILES.c.mtime_ns.is_not_distinct_from(bindparam("w_mtime"))
    & FILES.c.etag.is_not_distinct_from(bindparam("w_etag"))
)


def store_checksums(s: Session, found: Iterable[tuple[FileRow, str]]) -> int:
    """Record checksums (``md5:HEX``) of files as ``row`` described them when they were read;
    a record the crawl has changed since (another size, time or ETag) is left alone, since
    the checksum is of the file that was. Returns how many were stored."""
    conn = s.connection()
    stored = 0
    for row, checksum in found:
        done = conn.execute(
            update(FILES).where(FILE_KEY, AS_RECORDED).values(checksum=checksum),
            {
                "d": row.dataset_id,
                "s": row.source,
                "p": row.path,
                "w_size": row.size,
                "w_mtime": row.mtime_ns,
                "w_etag": row.etag,
            },
        )
        stored += done.rowcount
    return stored


def describe(source: str, path: str) -> dict[str, Any]:
    return {"source": source, "path": path}
