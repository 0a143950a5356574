"""``steward dataset files``: a dataset's files from the durable per-file record, and one of
its metadata files fetched again.

The record (``dataset_files``) keeps every file a crawl listed — path below its source's
root, size, checksum, first and last seen, outcome — including files gone since
(``removed``), so "which file was there on 3 March" has an answer. Each file is told apart as
``metadata`` (a file its source's extractors read: IDF/SDRF, JSON/YAML sidecars, TSV),
``checksum`` (a ``.md5``/``.sha256`` sidecar) or ``data``.

Fetching reads a *metadata* file from where the crawl found it (data files can be large and
are not what this is for); at most :data:`~steward.crawl.extract.MAX_METADATA_BYTES`, the
limit the crawl reads. Whoever may see the dataset may list and fetch; whoever may not hears
"not found", as for an unknown accession.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from steward.crawl.config_model import CrawlConfig
from steward.crawl.extract import MAX_METADATA_BYTES
from steward.db.session import Database
from steward.domain import datasets as domain
from steward.errors import Detail, NotFound, ValidationFailed
from steward.services import subjects
from steward.services.access import audited
from steward.services.crawl_plan import Ranks
from steward.services.dataset_storage import (
    FileRow,
    PlaceRow,
    Reach,
    files_of,
    places_of,
    reach_sources,
)
from steward.services.datasets import DATASET, resolve

KIND_ORDER = {"metadata": 0, "data": 1, "checksum": 2}


class DatasetFileView(BaseModel):
    source: str
    path: str
    """Below the source's root, as the crawl recorded it (what ``--get`` takes)."""
    kind: str
    """``metadata``, ``data`` or ``checksum`` (a sidecar)."""
    extractors: list[str]
    """For metadata files: the extractors that read it."""
    size: int
    checksum: str | None
    outcome: str
    first_seen_at: datetime
    last_seen_at: datetime


class DatasetFiles(BaseModel):
    dataset: str
    id: str
    project_id: str
    files: list[DatasetFileView]
    """Metadata files first, then data files, then checksum sidecars; by source and path."""


@dataclass(frozen=True)
class Fetched:
    dataset: str
    source: str
    path: str
    data: bytes


def _load(
    db: Database, actor: str | None, dataset: str, project: str | None, action: str
) -> tuple[str, str, str, list[FileRow], list[PlaceRow]]:
    with db.read() as s:
        sid = resolve(s, actor, dataset, project=project)
    with (
        audited(db, actor=actor, action=action, subject_kind=DATASET.name, subject_id=sid),
        db.read() as s,
    ):
        row, _ = subjects.visible(s, DATASET, actor, sid)
        return (
            row.id,
            row.accession,
            row.project_id,
            files_of(s, [sid], present_only=False),
            places_of(s, [sid]),
        )


def _view(f: FileRow, reach: Reach | None) -> DatasetFileView:
    readers = reach.metadata_readers(f.path) if reach is not None else []
    kind = reach.file_kind(f.path) if reach is not None else "data"
    return DatasetFileView(
        source=f.source,
        path=f.path,
        kind=kind,
        extractors=readers,
        size=f.size,
        checksum=f.checksum,
        outcome=f.outcome,
        first_seen_at=f.first_seen_at,
        last_seen_at=f.last_seen_at,
    )


def list_files(
    db: Database,
    *,
    actor: str | None,
    dataset: str,
    project: str | None = None,
    config: CrawlConfig | None = None,
    environ: Mapping[str, str] | None = None,
) -> DatasetFiles:
    """Every file the record holds for the dataset (see the module docstring)."""
    sid, accession, project_id, files, places = _load(db, actor, dataset, project, "files")
    reaches = reach_sources(places, config, environ)
    views = [_view(f, reaches.get(f.source)) for f in files]
    views.sort(key=lambda v: (KIND_ORDER.get(v.kind, 9), v.source, v.path))
    return DatasetFiles(dataset=accession, id=sid, project_id=project_id, files=views)


def _choose(
    rows: list[FileRow], places: list[PlaceRow], config: CrawlConfig | None
) -> FileRow | None:
    """The file to read when several sources hold the path: a present one, in the place of
    the highest-ranked stage (the one whose metadata the dataset shows)."""
    present = [r for r in rows if r.present]
    if not present:
        return None
    ranks = Ranks(config.stages if config is not None else domain.STAGES)
    stage_of: dict[str, tuple[int, int]] = {}
    for p in places:
        if p.present:
            rank = ranks.key(p.stage)
            stage_of[p.source] = max(stage_of.get(p.source, rank), rank)
    present.sort(key=lambda r: (tuple(-x for x in stage_of.get(r.source, (-1, -1))), r.source))
    return present[0]


def fetch_metadata(
    db: Database,
    *,
    actor: str | None,
    dataset: str,
    path: str,
    project: str | None = None,
    source: str | None = None,
    config: CrawlConfig | None = None,
    environ: Mapping[str, str] | None = None,
) -> Fetched:
    """One metadata file's bytes, read from its source now."""
    _, accession, _, files, places = _load(db, actor, dataset, project, "get-file")
    wanted = path.strip().lstrip("/")
    rows = [f for f in files if f.path == wanted and (source is None or f.source == source)]
    listed = "a path `steward dataset files` lists for it"
    if not rows:
        where = f" in source {source!r}" if source else ""
        raise NotFound(
            f"{accession} has no file {path!r}{where}",
            [Detail("not a file of this dataset", field="path", value=path, accepted=listed)],
        )
    row = _choose(rows, places, config)
    if row is None and all(r.outcome == domain.FILE_MISSING for r in rows):
        first = min(r.first_seen_at for r in rows)
        raise NotFound(
            f"{path!r} of {accession} has never been there: its expected-files manifest names "
            f"it, and every crawl since {first:%Y-%m-%d %H:%M} UTC found it missing",
            [Detail("missing", field="path", value=path, accepted="a present file")],
        )
    if row is None:
        last = max(r.last_seen_at for r in rows)
        raise NotFound(
            f"{path!r} of {accession} was removed: the last crawl that saw it was on "
            f"{last:%Y-%m-%d %H:%M} UTC",
            [Detail("removed", field="path", value=path, accepted="a present file")],
        )
    reaches = reach_sources(places, config, environ)
    reach = reaches.get(row.source)
    if reach is None or reach.file_kind(row.path) != "metadata":
        kind = reach.file_kind(row.path) if reach is not None else "data"
        raise ValidationFailed(
            f"{path!r} is a {kind} file of {accession}, not a metadata file: --get fetches the "
            "files its source's extractors read (IDF/SDRF, JSON/YAML sidecars, TSV)",
            [Detail(f"a {kind} file", field="path", value=path, accepted="a metadata file")],
        )
    if reach.store is None:
        raise ValidationFailed(
            f"{path!r} of {accession} cannot be read here: {reach.why_not}",
            [Detail(reach.why_not or "unreadable source", field="source", value=row.source)],
        )
    data = reach.store.read(row.path, 0, MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise ValidationFailed(
            f"{path!r} of {accession} is larger than {MAX_METADATA_BYTES} bytes: not a "
            "metadata file Steward reads",
            [Detail("too large", field="path", value=path)],
        )
    return Fetched(dataset=accession, source=row.source, path=row.path, data=data)
