"""The crawl: list every source, decide each dataset's stage, record what changed as events.

``run_crawl`` works in three steps:

1. **List** (:mod:`.crawl_listing`): every source from its previous listing state; a source
   that fails never stops the others, and its datasets are unknown this crawl. Metadata files
   are read only where a place's digest differs from the one in the database.
2. **Plan** (:mod:`.crawl_plan`): for every dataset, its places, stage (the highest-ranked
   stage it is present in), metadata and problems, and the events that bring the database
   there — decided against the database's read model, not the listing state.
3. **Write**: datasets in chunks, each chunk one transaction that re-reads its datasets and
   plans them again, so whatever an earlier (interrupted) run committed is never written
   twice; new datasets through ``append_many``. Only when every chunk is committed are the
   listing states saved. A crawl killed at any point and run again therefore ends exactly
   where one uninterrupted crawl would: the re-run lists what the saved states say changed,
   finds the committed part already in the database, and appends only the rest.

Sources this crawl does not list (``--sources`` naming a few) leave their datasets' places as
they are. The summary (:mod:`.crawl_summary`) is stored on the crawl's row.

Two crawls of overlapping sources never run at once: a crawl takes a lease on each of its
sources when it starts (:mod:`.crawl_locks`) and hands them back when it ends, and a heartbeat
keeps the lease and writes how far it is (:mod:`.crawl_progress`). A queued crawl
(:mod:`.crawl_jobs`: ``--no-wait``, a schedule) is the same crawl run by the worker on the row
queued for it, stopped between chunks by a cancel.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.config import Settings
from steward.crawl.config import CrawlConfig, parse_crawl_config
from steward.crawl.model import SourceStatus
from steward.db.models import Crawl, CrawlLock, Dataset, Project
from steward.db.session import Database
from steward.domain import datasets as domain
from steward.domain.roles import STAFF, SYSTEM
from steward.domain.workflow import Context
from steward.errors import Detail, Forbidden, ValidationFailed
from steward.gcpause import fewer_collections
from steward.ids import new_id
from steward.jobs.runner import Released, reason
from steward.services import crawl_locks, crawl_progress, crawl_store, leases, ledger
from steward.services.access import audited, require_user, roles_in
from steward.services.crawl_listing import Listed, list_sources
from steward.services.crawl_plan import (
    Duplicates,
    Found,
    Plan,
    Ranks,
    Shape,
    Stored,
    as_is,
    duplicates,
    plan,
    shape_of,
    untouched,
)
from steward.services.crawl_progress import CrawlCancelled
from steward.services.crawl_summary import CrawlSummary, Progress, ProgressHook
from steward.services.crawl_tally import count_plan, count_seen, count_sources, count_unknown
from steward.services.datasets import DATASET, payload
from steward.timeutil import utcnow

CHUNK = 500
"""Datasets per write transaction: short enough not to hold SQLite's one writer for long."""
Key = tuple[str, str]


def configured(settings: Settings, *, on_server: bool = False) -> CrawlConfig:
    """The sources of the ``[crawl]`` table in steward.toml (``STEWARD_CRAWL``);
    ``on_server``: asked for through the API, whose callers cannot name sources."""
    if not settings.crawl:
        fix = (
            "its administrator adds [[crawl.sources]] to the server's steward.toml"
            if on_server
            else "add [[crawl.sources]] to steward.toml or give --sources FILE"
        )
        raise ValidationFailed(
            f"no crawl sources: {fix}",
            [Detail("no sources", field="crawl.sources", accepted="[[crawl.sources]] tables")],
        )
    return parse_crawl_config({"crawl": settings.crawl}, origin="steward.toml")


def authorise(s: Session, actor: str | None, config: CrawlConfig) -> None:
    """Every project the sources name must exist, and the caller coordinate each."""
    user = require_user(s, actor)
    unknown = [
        Detail(
            "unknown project",
            field=f"{src.field}.project",
            value=src.project,
            accepted="an existing project (`steward project list`)",
        )
        for src in config.sources
        if s.get(Project, src.project) is None
    ]
    if unknown:
        raise ValidationFailed(
            f"{config.origin}: the sources name projects that do not exist", unknown
        )
    for project in sorted({src.project for src in config.sources}):
        if not roles_in(s, user, project) & STAFF:
            raise Forbidden(
                f"{user.id} may not crawl into {project}: that needs the steward or admin role",
                [Detail("needs steward or admin", field="project", value=project)],
            )


def source_rows(config: CrawlConfig, status: str) -> list[dict[str, Any]]:
    """What a crawl's row says of its sources before they are listed (URLs masked)."""
    return [
        {"name": src.name, "project": src.project, "stage": src.stage,
         "url": src.display_url, "status": status}
        for src in config.sources
    ]  # fmt: skip


def _context(actor: str) -> Context:
    """Steward itself decides, on behalf of whoever started the crawl."""
    return Context(actor=actor, roles=frozenset({SYSTEM}))


def _start(db: Database, summary: CrawlSummary, config: CrawlConfig, holder: str) -> None:
    """The crawl's row, running, and its sources taken (all or none: CrawlBusy
    names the crawl that holds them); crawls left ``running`` by a process that is gone are
    interrupted. A queued crawl's row (``--no-wait``, a schedule) is the one that runs — or,
    after its worker died, runs again."""
    assert summary.id is not None
    with db.transaction() as s:
        crawl_locks.acquire(
            s, _names(config), crawl_id=summary.id, started_by=summary.started_by, holder=holder
        )
        others = select(Crawl).where(Crawl.status == "running", Crawl.id != summary.id)
        held = {
            lock.crawl_id: lock.lease_until
            for lock in s.scalars(select(CrawlLock).where(CrawlLock.holder.is_not(None)))
        }
        for other in s.scalars(others):
            # Its process gone (this host), or its sources' leases run out (any host).
            until = held.get(other.id)
            if until is None or leases.holder_gone(other.summary.get("runner"), until):
                other.status = "interrupted"
        row = s.get(Crawl, summary.id)
        if row is None:
            row = Crawl(id=summary.id, started_by=summary.started_by, summary={})
            s.add(row)
        kept = {k: v for k, v in row.summary.items() if k in _KEPT}
        row.started_at, row.finished_at, row.status = summary.started_at, None, "running"
        row.summary = {**kept, "runner": holder, "sources": source_rows(config, "running")}


_KEPT = ("action_id", "schedule", "queued_at")
"""What a queued crawl's row says of how it was queued, kept when it runs and ends."""


def _names(config: CrawlConfig) -> list[str]:
    return sorted({src.name for src in config.sources})


def _finish(
    db: Database,
    summary: CrawlSummary,
    states: Mapping[str, Any] | None,
    config: CrawlConfig,
    holder: str,
) -> None:
    """The crawl's end and its listing states (only after every chunk is committed), and its
    sources handed back, in one transaction."""
    with db.transaction() as s:
        if states:
            crawl_store.save_listing_states(s, states, utcnow())
        crawl_locks.release(s, _names(config), holder)
        row = s.get(Crawl, summary.id)
        if row is not None:
            row.status = summary.status
            row.finished_at = summary.finished_at
            kept = {k: v for k, v in row.summary.items() if k in _KEPT}
            data = summary.as_json()
            if not data.get("sources"):  # ended before listing: the sources it was to crawl
                data["sources"] = [
                    {**src, "status": summary.status} for src in row.summary.get("sources", [])
                ]
            row.summary = {**kept, **data}


def _stopped(exc: BaseException) -> str:
    """A crawl's status after ``exc`` ended it early."""
    if isinstance(exc, CrawlCancelled):
        return "cancelled"
    if isinstance(exc, (KeyboardInterrupt, Released)):
        return "interrupted"  # Ctrl-C, or a stopping worker: the next one runs it again
    return "failed"


@fewer_collections()  # a crawl makes and drops objects by the hundred thousand
def run_crawl(
    db: Database,
    settings: Settings,
    *,
    actor: str | None,
    config: CrawlConfig,
    dry_run: bool = False,
    progress: ProgressHook | None = None,
    environ: Mapping[str, str] | None = None,
    chunk: int = CHUNK,
    crawl_id: str | None = None,
    checkpoint: Callable[[], None] | None = None,
    full: bool = False,
) -> CrawlSummary:
    """Crawl every source of ``config`` (see the module docstring); ``dry_run`` lists,
    reads and decides but writes nothing. ``environ`` replaces ``os.environ`` for the
    sources' credentials. ``full`` examines every file of folder sources, not only those
    in folders whose time changed (see :mod:`steward.crawl.sources_fs`).

    ``crawl_id`` runs a queued crawl's row (``steward crawl --no-wait``, a schedule), or runs
    it again after its worker died. ``checkpoint`` is called between steps (after each chunk,
    every hundred datasets listed) and stops the crawl by raising: a cancel
    (:class:`CrawlCancelled`, the crawl ends ``cancelled``) or a stopping worker. Either way
    what is committed stays, and running the crawl again finishes it. Its sources are taken
    first (:mod:`.crawl_locks`): a crawl of any of them running elsewhere is
    :class:`~.crawl_locks.CrawlBusy`."""
    del settings  # the sources carry everything the crawl needs
    began = time.monotonic()
    projects = sorted({src.project for src in config.sources})
    with audited(db, actor=actor, action="crawl"), db.read() as s:
        authorise(s, actor, config)
        user = require_user(s, actor).id
    summary = CrawlSummary(
        id=None if dry_run else crawl_id or new_id("crawl"),
        status="running",
        dry_run=dry_run,
        started_at=utcnow(),
        started_by=user,
    )
    holder = leases.me()
    beat = None
    if not dry_run:
        assert summary.id is not None
        _start(db, summary, config, holder)
    listed: Listed | None = None
    try:
        if summary.id is not None:  # after _start: whatever fails now ends the crawl's row
            beat = crawl_progress.Beat(db, summary.id, projects[0], _names(config), holder)
        progress = crawl_progress.observed(progress, beat, checkpoint)
        with db.read() as s:  # once the sources are ours: what their last crawl left
            previous = crawl_store.listing_states(s, [src.name for src in config.sources])
            stored = crawl_store.load(s, projects, light=True)
        listed = list_sources(
            config,
            previous,
            crawl_store.digests(stored),
            environ=environ,
            progress=progress,
            full=full,
        )
        count_sources(summary, config, listed)
        found = _by_dataset(listed.found)
        ranks = Ranks(config.stages)
        keys = sorted({*found, *stored})
        calm = {k for k in keys if untouched(stored.get(k), found.get(k, ()), ranks)}
        stored |= _whole(db, projects, [k for k in keys if k in stored and k not in calm])

        def shape(k: Key) -> Shape:
            return shape_of(k[0], k[1], stored.get(k), found.get(k, ()), listed.results, ranks)

        shapes = {k: shape(k) for k in keys if k not in calm}
        count_unknown(summary, shapes.values(), listed)
        dups = _duplicates([*shapes.values(), *(as_is(stored[k]) for k in calm)], ranks, config)
        stirred = sorted(k for k in calm if k in dups)  # a new partner: plan it after all
        stored |= _whole(db, projects, stirred)
        shapes |= {k: shape(k) for k in stirred}
        plans = [plan(shapes[k], dups.get(k, Duplicates())) for k in sorted(shapes)]
        work = [p for p in plans if p.discovery or p.events or p.shape.touched]
        if dry_run:
            for p in work:
                count_plan(summary, p, listed)
                summary.events += len(p.events) + (p.discovery is not None)
        else:
            _write(db, user, work, found, listed, ranks, dups, summary, progress, chunk, full)
        summary.status = "dry-run" if dry_run else _status(listed)
    except BaseException as exc:
        summary.status = _stopped(exc)
        summary.finished_at = utcnow()
        summary.seconds = time.monotonic() - began
        if beat is not None:
            beat.stop()
        if not dry_run:
            summary.error = reason(exc, "crawl")
            _finish(db, summary, None, config, holder)
        raise
    finally:
        if listed is not None:
            listed.spool.close()
    count_seen(summary, found, listed)
    summary.finished_at = utcnow()
    summary.seconds = time.monotonic() - began
    if beat is not None:
        beat.stop()
    if not dry_run:
        _finish(db, summary, {name: o.state for name, o in listed.outcomes.items()}, config, holder)
    if progress is not None:
        progress(Progress("done", None, summary.datasets, summary.datasets))
    return summary


def _whole(db: Database, projects: list[str], keys: list[Key]) -> dict[Key, Stored]:
    """``keys``' stored datasets with their metadata (the first read left it out)."""
    if not keys:
        return {}
    with db.read() as s:
        return crawl_store.load(s, projects, keys=keys)


def _by_dataset(found: Iterable[Found]) -> dict[Key, list[Found]]:
    out: dict[Key, list[Found]] = defaultdict(list)
    for f in found:
        out[(f.project, f.accession)].append(f)
    return out


def _duplicates(
    shapes: Iterable[Shape], ranks: Ranks, config: CrawlConfig
) -> dict[Key, Duplicates]:
    by_project: dict[str, list[Shape]] = defaultdict(list)
    for shape in shapes:
        by_project[shape.project].append(shape)
    out: dict[Key, Duplicates] = {}
    for project, group in by_project.items():
        for accession, dup in duplicates(group, ranks, config.mappings).items():
            out[(project, accession)] = dup
    return out


def _status(listed: Listed) -> str:
    failed = [o for o in listed.outcomes.values() if o.status is not SourceStatus.OK]
    if not failed:
        return "ok"
    return "failed" if len(failed) == len(listed.outcomes) else "partial"


def _write(
    db: Database,
    actor: str,
    work: list[Plan],
    found: Mapping[Key, list[Found]],
    listed: Listed,
    ranks: Ranks,
    dups: Mapping[Key, Duplicates],
    summary: CrawlSummary,
    progress: ProgressHook | None,
    chunk: int,
    full: bool,
) -> None:
    """Each chunk in its own transaction, planned again against what is committed now; then
    the seen-times of everything found (and, after a ``full`` listing, of its files)."""
    keys = [(p.shape.project, p.shape.accession) for p in work]
    projects = sorted({k[0] for k in keys})
    ctx = _context(actor)
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        with db.transaction() as s:
            db.serialize(s, "steward.crawl")
            fresh = crawl_store.load(s, projects, keys=part)
            plans = [
                plan(
                    shape_of(k[0], k[1], fresh.get(k), found.get(k, ()), listed.results, ranks),
                    dups.get(k, Duplicates()),
                )
                for k in part
            ]
            summary.events += _apply(s, plans, ctx)
        for p in plans:
            count_plan(summary, p, listed)
        if progress is not None:
            progress(Progress("committed", None, start + len(part), len(keys)))
    with db.transaction() as s:
        crawl_store.mark_seen(s, _seen(found.values(), listed), utcnow(), examined=full)


def _seen(found: Iterable[list[Found]], listed: Listed) -> dict[str, set[str] | None]:
    """Each source's keys found this crawl; ``None`` for a source listed completely."""
    out: dict[str, set[str] | None] = {
        name: None if result.status is SourceStatus.OK else set()
        for name, result in listed.results.items()
    }
    for group in found:
        for f in group:
            keys = out.get(f.source)
            if keys is not None:
                keys.add(f.key)
    return out


def _apply(s: Session, plans: list[Plan], ctx: Context) -> int:
    """One chunk's events, places and files; returns how many events were appended."""
    now = utcnow()
    writer = crawl_store.Writer(s, now)
    items: list[ledger.NewSubject] = []
    for p in plans:
        if p.discovery is None:
            continue
        sid = new_id("dataset")
        data = payload(domain.DISCOVER, p.discovery)
        change = ledger.Change(domain.DISCOVER, ctx, now, data)
        items.append(ledger.NewSubject(sid, p.shape.project, [change], entry=p.discovery["stage"]))
        writer.places(sid, p.shape.places)
        writer.files(sid, p.shape.places)
    events = ledger.append_many(s, DATASET, items).events if items else 0
    existing = [(p, p.shape.stored) for p in plans if p.shape.stored is not None]
    writer.load_files([d.id for p, d in existing if _files_change(p)])
    moving = [d.id for p, d in existing if p.events]
    rows = {r.id: r for r in s.scalars(select(Dataset).where(Dataset.id.in_(moving)))}
    steps = [
        ledger.Step(rows[stored.id], command, payload(command, data))
        for p, stored in existing
        for command, data in p.events
    ]
    events += ledger.record_each(s, kind=DATASET, steps=steps, ctx=ctx)
    for p, stored in existing:
        writer.places(stored.id, p.shape.places)
        writer.files(stored.id, p.shape.places)
    writer.flush()
    return events


def _files_change(p: Plan) -> bool:
    """Whether the stored files of a dataset must be compared (a place listed again or gone)."""
    return any(
        (x.found is not None and x.found.files is not None) or (x.was_present and not x.present)
        for x in p.shape.places
    )
