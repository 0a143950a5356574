"""What a crawl reads from and writes to the database besides events: datasets as stored
(:class:`~steward.services.crawl_plan.Stored`), their places, their files, and each source's
listing state.

Writes happen in the caller's transaction, next to the events they go with, so an interrupted
crawl leaves places and files exactly as far as its events got. New rows go through the
dialect's bulk path (:mod:`steward.db.bulk`); a first crawl of 200,000 files inserts them in
a few statements, not 200,000.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, case, select, type_coerce, update
from sqlalchemy.orm import Session

from steward.db import bulk
from steward.db.models import CrawlListing, Dataset
from steward.domain.datasets import FILE_MISSING as MISSING
from steward.domain.datasets import FILE_REMOVED as REMOVED
from steward.services.crawl_plan import Place, Problem, Stored, StoredPlace

_TABLES = Dataset.metadata.tables


_DATASET_COLUMNS = (
    "id",
    "project_id",
    "accession",
    "state",
    "fields",
    "technologies",
    "problems",
    "duplicate_of",
    "secondary_accessions",
)
_PLACE_COLUMNS = (
    "dataset_id",
    "source",
    "key",
    "location",
    "stage",
    "technologies",
    "fields",
    "problems",
    "digest",
    "complete",
    "present",
)


_LISTS = frozenset({"technologies", "problems", "secondary_accessions"})
"""JSON list columns a re-crawl reads for every dataset: as text, decoded by the helpers below
(thousands of rows carry the same few values; SQLite's JSON type decodes each anew)."""


def _as_text(column: Any) -> Any:
    return type_coerce(column, String) if column.name in _LISTS else column


@functools.lru_cache(maxsize=4096)
def _decoded_strings(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _strings(value: str | list[str]) -> tuple[str, ...]:
    """A list of strings as stored: text (SQLite), or already decoded (PostgreSQL's driver)."""
    return _decoded_strings(value) if isinstance(value, str) else tuple(value)


def _problems(value: str | list[Problem]) -> tuple[Problem, ...]:
    """Problems are dicts (mutable): decoded for each row, except the common empty list."""
    if isinstance(value, str):
        return () if value == "[]" else tuple(json.loads(value))
    return tuple(value)


def load(
    s: Session,
    projects: Collection[str],
    keys: Collection[tuple[str, str]] | None = None,
    *,
    light: bool = False,
) -> dict[tuple[str, str], Stored]:
    """Stored datasets of ``projects`` by (project, accession), with their places; only
    those named by ``keys`` when given. ``light`` leaves out their metadata (``fields``, the
    bulk of what is read): enough to list and to tell which datasets did not change at all
    (``Stored.light``); the others are then read again whole."""
    ds = _TABLES["datasets"]
    wanted = [c for c in _DATASET_COLUMNS if not (light and c == "fields")]
    q = select(*(_as_text(ds.c[c]) for c in wanted)).where(ds.c.project_id.in_(sorted(projects)))
    rows: list[Any] = []
    if keys is None:
        rows = list(s.execute(q))
    else:
        by_project: dict[str, list[str]] = defaultdict(list)
        for project, accession in keys:
            by_project[project].append(accession)
        for project, accessions in by_project.items():
            for part in bulk.in_chunks(sorted(accessions)):
                rows += s.execute(q.where(ds.c.project_id == project, ds.c.accession.in_(part)))
    places: dict[str, list[StoredPlace]] = defaultdict(list)
    ids = [r.id for r in rows]
    # Columns, not ORM objects: a re-crawl reads every place of the project.
    loc = _TABLES["dataset_locations"]
    columns = select(*(_as_text(loc.c[c]) for c in _PLACE_COLUMNS if not (light and c == "fields")))
    if keys is None:
        everything = columns.join(ds, ds.c.id == loc.c.dataset_id)
        queries = [everything.where(ds.c.project_id.in_(sorted(projects)))]
    else:
        queries = [columns.where(loc.c.dataset_id.in_(part)) for part in bulk.in_chunks(ids)]
    for pq in queries:
        for p in s.execute(pq):
            places[p.dataset_id].append(
                StoredPlace(
                    source=p.source,
                    key=p.key,
                    location=p.location,
                    stage=p.stage,
                    technologies=_strings(p.technologies),
                    fields={} if light else dict(p.fields),
                    problems=_problems(p.problems),
                    digest=p.digest,
                    complete=p.complete,
                    present=p.present,
                )
            )
    return {
        (r.project_id, r.accession): Stored(
            id=r.id,
            project=r.project_id,
            accession=r.accession,
            state=r.state,
            fields={} if light else dict(r.fields),
            technologies=_strings(r.technologies),
            problems=_problems(r.problems),
            duplicate_of=r.duplicate_of,
            secondary_accessions=_strings(r.secondary_accessions),
            places=tuple(places.get(r.id, ())),
            light=light,
        )
        for r in rows
    }


def digests(
    stored: Mapping[tuple[str, str], Stored],
) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(project, source, key) → (accession, digest) of every stored place: what the listing
    compares with to decide which metadata files to read."""
    return {
        (d.project, p.source, p.key): (d.accession, p.digest)
        for d in stored.values()
        for p in d.places
    }


def listing_states(s: Session, names: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    found = {
        r.source: dict(r.state)
        for r in s.scalars(select(CrawlListing).where(CrawlListing.source.in_(sorted(names))))
    }
    return {name: found.get(name) for name in names}


def save_listing_states(s: Session, states: Mapping[str, Mapping[str, Any]], now: datetime) -> None:
    """Replace each source's state without reading the old one (a source of many datasets
    has a large state; decoding it only to overwrite it cost a re-crawl a tenth of its time)."""
    table = _TABLES["crawl_listings"]
    conn = s.connection()
    for name, state in states.items():
        values = {"source": name, "state": dict(state), "updated_at": now}
        done = conn.execute(
            update(table)
            .where(table.c.source == name)
            .values(state=values["state"], updated_at=now)
        )
        if not done.rowcount:
            conn.execute(table.insert().values(values))


class Writer:
    """Places, files and seen-times of one chunk of datasets, in the caller's transaction."""

    def __init__(self, s: Session, now: datetime) -> None:
        self.s, self.now = s, now
        self.new_places: list[dict[str, Any]] = []
        self.seen_places: list[dict[str, Any]] = []
        self.read_places: list[dict[str, Any]] = []
        self.gone_places: list[dict[str, Any]] = []
        self.new_files: list[dict[str, Any]] = []
        self.file_updates: list[dict[str, Any]] = []
        self.file_removals: list[dict[str, Any]] = []
        self.missing_updates: list[dict[str, Any]] = []
        self._stored_files: dict[tuple[str, str], dict[str, str]] = {}
        """(dataset id, source) → path → outcome of the stored files."""

    # -- places -----------------------------------------------------------------------------
    def places(self, dataset_id: str, places: Iterable[Place]) -> None:
        for p in places:
            ident = {"d": dataset_id, "s": p.source, "k": p.key}
            if p.same:
                continue  # only its seen-time moves on (mark_seen)
            if p.seen:
                values = {
                    "location": p.location,
                    "stage": p.stage,
                    "technologies": list(p.technologies),
                    "digest": p.digest,
                    "complete": p.complete,
                }
                read = p.found is not None and p.found.fields is not None
                if read:
                    values |= {"fields": dict(p.fields), "problems": list(p.problems)}
                if p.was_present is None:
                    self.new_places.append(
                        {
                            "dataset_id": dataset_id,
                            "source": p.source,
                            "key": p.key,
                            "fields": dict(p.fields),
                            "problems": list(p.problems),
                            **values,
                            "first_seen_at": self.now,
                            "last_seen_at": self.now,
                            "present": True,
                        }
                    )
                else:
                    bound = {**ident, **{f"n_{k}": v for k, v in values.items()}}
                    (self.read_places if read else self.seen_places).append(bound)
            elif p.was_present and not p.present:
                self.gone_places.append(ident)

    # -- files ------------------------------------------------------------------------------
    def load_files(self, dataset_ids: Collection[str]) -> None:
        """The stored files of datasets that are not new (to compare the listing with)."""
        files = _TABLES["dataset_files"]
        columns = select(files.c.dataset_id, files.c.source, files.c.path, files.c.outcome)
        conn = self.s.connection()
        for part in bulk.in_chunks(sorted(dataset_ids)):
            for dataset_id, source, path, outcome in conn.execute(
                columns.where(files.c.dataset_id.in_(part))
            ):
                self._stored_files.setdefault((dataset_id, source), {})[path] = outcome

    def files(self, dataset_id: str, places: Iterable[Place]) -> None:
        """Each source's files of the dataset compared with the stored ones: new, changed,
        back, and gone (only where the listing saw the whole place)."""
        by_source: dict[str, list[Place]] = defaultdict(list)
        for p in places:
            by_source[p.source].append(p)
        for source, group in by_source.items():
            stored = self._stored_files.get((dataset_id, source), {})
            listed = {id(p): p.found for p in group if p.found and p.found.files is not None}
            if not listed:
                # Seen but not listed again: the files keep the time they were last examined.
                if not any(p.seen or p.present for p in group):
                    self._remove(dataset_id, source, stored, keep=set())
                continue
            wanted: dict[str, Any] = {}
            missing: dict[str, tuple[int | None, str | None]] = {}
            for found in listed.values():
                base = found.base
                for f in found.files or ():
                    wanted[f"{base}/{f.path}" if base else f.path] = f
                for path, size, checksum in found.missing or ():
                    missing[f"{base}/{path}" if base else path] = (size, checksum)
            absent = {k: v for k, v in missing.items() if k not in wanted}
            self._missing(dataset_id, source, stored, absent)
            for path, f in wanted.items():
                old = stored.get(path)
                values = {"size": f.size, "etag": f.etag, "mtime_ns": f.mtime_ns}
                if old is None:
                    self.new_files.append(
                        {
                            "dataset_id": dataset_id,
                            "source": source,
                            "path": path,
                            **values,
                            "checksum": None,
                            "first_seen_at": self.now,
                            "last_seen_at": self.now,
                            "outcome": "present",
                        }
                    )
                else:
                    bound = {f"n_{k}": v for k, v in values.items()}
                    self.file_updates.append({"d": dataset_id, "s": source, "p": path, **bound})
            # Gone only when every place here was listed whole (not kept unknown, not partial).
            whole = all(id(p) in listed for p in group if p.present) and all(
                found.complete for found in listed.values()
            )
            if whole:
                self._remove(dataset_id, source, stored, keep={*wanted, *missing})

    def _missing(
        self,
        dataset_id: str,
        source: str,
        stored: Mapping[str, str],
        missing: Mapping[str, tuple[int | None, str | None]],
    ) -> None:
        """Files a manifest expects and the listing lacks: a record each, outcome ``missing``,
        its times saying when it was first and last found missing."""
        for path, (size, checksum) in missing.items():
            if path in stored:
                self.missing_updates.append({"d": dataset_id, "s": source, "p": path})
                continue
            self.new_files.append(
                {
                    "dataset_id": dataset_id,
                    "source": source,
                    "path": path,
                    "size": size or 0,
                    "etag": None,
                    "mtime_ns": None,
                    "checksum": checksum,
                    "first_seen_at": self.now,
                    "last_seen_at": self.now,
                    "outcome": MISSING,
                }
            )

    def _remove(
        self, dataset_id: str, source: str, stored: Mapping[str, str], keep: set[str]
    ) -> None:
        for path, outcome in stored.items():
            if path not in keep and outcome != REMOVED:  # present, verified, mismatch…
                self.file_removals.append({"d": dataset_id, "s": source, "p": path})

    # -- out --------------------------------------------------------------------------------
    def flush(self) -> None:
        s, now = self.s, self.now
        loc, files = _TABLES["dataset_locations"], _TABLES["dataset_files"]
        where_place = (
            (loc.c.dataset_id == bindparam("d"))
            & (loc.c.source == bindparam("s"))
            & (loc.c.key == bindparam("k"))
        )
        where_file = (
            (files.c.dataset_id == bindparam("d"))
            & (files.c.source == bindparam("s"))
            & (files.c.path == bindparam("p"))
        )
        with bulk.Writer(s) as w:
            for table, rows in ((loc, self.new_places), (files, self.new_files)):
                if rows:
                    columns = tuple(rows[0])
                    convert = w.converters(table, columns)
                    by_column = [
                        list(map(f, (r[c] for r in rows)))
                        for c, f in zip(columns, convert, strict=True)
                    ]
                    w.write(table, columns, list(zip(*by_column, strict=True)))
        place_columns = ("location", "stage", "technologies", "digest", "complete")
        seen_values: dict[str, Any] = {c: bindparam(f"n_{c}") for c in place_columns}
        seen_values |= {"last_seen_at": now, "present": True}
        conn = s.connection()
        if self.seen_places:
            conn.execute(update(loc).where(where_place).values(seen_values), self.seen_places)
        if self.read_places:
            read_values = {
                **seen_values,
                "fields": bindparam("n_fields"),
                "problems": bindparam("n_problems"),
            }
            conn.execute(update(loc).where(where_place).values(read_values), self.read_places)
        if self.gone_places:
            conn.execute(update(loc).where(where_place).values(present=False), self.gone_places)
        if self.file_updates:
            values: dict[str, Any] = {c: bindparam(f"n_{c}") for c in ("size", "etag", "mtime_ns")}
            # A file rewritten since (size, time or ETag differ) is a new file: what was
            # verified or hashed of the old content no longer holds; an unchanged one keeps it.
            same = (
                (files.c.size == bindparam("n_size"))
                & files.c.etag.is_not_distinct_from(bindparam("n_etag"))
                & files.c.mtime_ns.is_not_distinct_from(bindparam("n_mtime_ns"))
            )
            values |= {
                "outcome": case(
                    (same & (files.c.outcome != "removed"), files.c.outcome), else_="present"
                ),
                "checksum": case((same, files.c.checksum), else_=None),
                "first_seen_at": case(
                    (files.c.outcome == MISSING, now), else_=files.c.first_seen_at
                ),
                "last_seen_at": now,
            }
            conn.execute(update(files).where(where_file).values(values), self.file_updates)
        if self.file_removals:
            conn.execute(
                update(files).where(where_file).values(outcome="removed"), self.file_removals
            )
        if self.missing_updates:
            # first_seen_at: since when it is missing (it was there before, or missing anew)
            since = case((files.c.outcome == MISSING, files.c.first_seen_at), else_=now)
            conn.execute(
                update(files)
                .where(where_file)
                .values(outcome=MISSING, last_seen_at=now, first_seen_at=since),
                self.missing_updates,
            )


def mark_seen(
    s: Session, seen: Mapping[str, Collection[str] | None], now: datetime, *, examined: bool
) -> None:
    """Move on the seen-time of every place found this crawl, and of their datasets, in a
    statement or two per source rather than a row at a time: an unchanged re-crawl of
    200,000 files has nothing else to write. ``seen`` maps each source listed to the keys
    found, or to ``None`` when it was listed completely (then every place of it still
    present was found: the gone ones were marked so before this runs).

    A file's own ``last_seen_at`` is when it was last examined (listed with its size and
    time): ``examined`` says this crawl looked at every file of the places it found (a full
    crawl); a re-crawl that trusted its folders' times did not."""
    loc, datasets, files = (_TABLES[t] for t in ("dataset_locations", "datasets", "dataset_files"))
    conn = s.connection()
    for source, keys in seen.items():
        if keys is None:
            conn.execute(
                update(loc).where(loc.c.source == source, loc.c.present).values(last_seen_at=now)
            )
        elif keys:
            conn.execute(
                update(loc)
                .where(loc.c.source == bindparam("s"), loc.c.key == bindparam("k"), loc.c.present)
                .values(last_seen_at=now),
                [{"s": source, "k": k} for k in keys],
            )
    seen_now = select(loc.c.dataset_id).where(loc.c.last_seen_at == now)
    conn.execute(update(datasets).where(datasets.c.id.in_(seen_now)).values(last_seen_at=now))
    if not examined:
        # Still missing where the folder kept its time (a file added would have changed it):
        # the few missing files, through their own index, each asking if its place was seen.
        place_seen = (
            select(loc.c.dataset_id)
            .where(
                loc.c.dataset_id == files.c.dataset_id,
                loc.c.source == files.c.source,
                loc.c.last_seen_at == now,
            )
            .exists()
        )
        conn.execute(
            update(files)
            .where(files.c.outcome == MISSING, files.c.source.in_(list(seen)), place_seen)
            .values(last_seen_at=now)
        )
        return
    # After a full listing, every file of the places found was examined.
    for source in seen:
        places = seen_now.where(loc.c.source == source)
        conn.execute(
            update(files)
            .where(
                files.c.source == source,
                files.c.outcome != REMOVED,
                files.c.dataset_id.in_(places),
            )
            .values(last_seen_at=now)
        )
