"""No two crawls of the same sources at once: one lease row per source name.

A crawl takes every source it lists in one transaction, in sorted order, before it lists
anything, and hands them back in the transaction that records its end. Rows are created first
with ``INSERT … ON CONFLICT DO NOTHING`` and then locked (PostgreSQL: ``FOR UPDATE``, in name
order, so two crawls of overlapping sets queue on the same first row and never deadlock;
SQLite: the writing transaction runs alone), then claimed with an UPDATE conditional on the
holder read — the same lease as the worker's schedule (:mod:`steward.jobs.schedule`). Sources
overlapping in part exclude each other, since each is its own row.

A crawl killed with -9 does not block the next for ever: its lease is renewed only while it
runs, and on this host a holder whose process is gone is free at once
(:func:`steward.services.leases.holder_gone`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import ClassVar

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from steward.db.models import CrawlLock
from steward.db.session import Database
from steward.errors import Conflict, Detail
from steward.services import leases
from steward.timeutil import utcnow


class CrawlBusy(Conflict):
    """Another crawl holds one of the sources; the worker tries again later."""

    code: ClassVar[str] = "crawl-busy"
    title: ClassVar[str] = "Another crawl of these sources is running"
    transient: ClassVar[bool] = True


def _ensure(s: Session, names: list[str]) -> None:
    values = [{"source": name} for name in names]
    if s.get_bind().dialect.name == "postgresql":
        s.execute(postgresql.insert(CrawlLock).values(values).on_conflict_do_nothing())
    else:
        s.execute(sqlite.insert(CrawlLock).values(values).on_conflict_do_nothing())


def busy(rows: Collection[CrawlLock], now: datetime) -> list[CrawlLock]:
    """The rows someone alive holds."""
    return [r for r in rows if r.holder and not leases.holder_gone(r.holder, r.lease_until, now)]


def describe(held: Collection[CrawlLock]) -> str:
    """For each crawl that holds any of the sources: "crawl crl_… of sources a, b is running
    since …, started by …"."""
    by_crawl: dict[str, list[CrawlLock]] = {}
    for row in held:
        by_crawl.setdefault(row.crawl_id or "?", []).append(row)
    sentences = []
    for crawl_id, rows in sorted(by_crawl.items()):
        first = rows[0]
        since = f"{first.started_at:%Y-%m-%d %H:%M:%S} UTC" if first.started_at else "a moment"
        names = ", ".join(sorted(r.source for r in rows))
        sentences.append(
            f"crawl {crawl_id} of sources {names} is running since {since}, started by "
            f"{first.started_by or 'unknown'}"
        )
    return "; ".join(sentences)


def refusal(held: Collection[CrawlLock]) -> CrawlBusy:
    """Refused: who holds the sources, and what to do."""
    return CrawlBusy(
        describe(held) + "; wait for it or cancel it (`steward crawl show ID` says how)",
        [
            Detail(
                "being crawled", field="source", value=r.source, accepted=f"held by {r.crawl_id}"
            )
            for r in sorted(held, key=lambda r: r.source)
        ],
    )


def acquire(
    s: Session, names: Collection[str], *, crawl_id: str, started_by: str, holder: str
) -> None:
    """Take every source in ``names`` for ``crawl_id`` in ``s`` (all or none), or raise
    :class:`CrawlBusy` naming the crawls that hold them."""
    ordered = sorted(set(names))
    if not ordered:
        return
    now = utcnow()
    _ensure(s, ordered)
    q = select(CrawlLock).where(CrawlLock.source.in_(ordered)).order_by(CrawlLock.source)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    rows = list(s.scalars(q.execution_options(populate_existing=True)))
    held = busy(rows, now)
    if held:
        raise refusal(held)
    for row in rows:
        # Conditional on the holder read: a racing crawl's UPDATE matches nothing.
        taken = s.execute(
            update(CrawlLock)
            .where(CrawlLock.source == row.source)
            .where(
                CrawlLock.holder.is_(None) if row.holder is None else CrawlLock.holder == row.holder
            )
            .values(
                holder=holder,
                lease_until=leases.lease_until(now),
                crawl_id=crawl_id,
                started_at=now,
                started_by=started_by,
            )
            .execution_options(synchronize_session=False)
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            s.expire_all()
            raise refusal(busy(list(s.scalars(q)), now) or rows)


def release(s: Session, names: Collection[str], holder: str) -> None:
    """Hand back the sources ``holder`` holds (others' rows are left alone)."""
    s.execute(
        update(CrawlLock)
        .where(CrawlLock.source.in_(sorted(set(names))), CrawlLock.holder == holder)
        .values(holder=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


def renew(db: Database, names: Collection[str], holder: str) -> bool:
    """Extend ``holder``'s leases; False when it no longer holds every one of ``names`` (its
    lease ran out and another crawl took a source)."""
    wanted = sorted(set(names))
    with db.transaction() as s:
        done = s.execute(
            update(CrawlLock)
            .where(CrawlLock.source.in_(wanted), CrawlLock.holder == holder)
            .values(lease_until=leases.lease_until())
            .execution_options(synchronize_session=False)
        )
        return bool(done.rowcount == len(wanted))  # type: ignore[attr-defined]


def holders(db: Database, names: Collection[str]) -> list[CrawlLock]:
    """Who holds any of ``names`` now (alive), for a scheduler deciding whether to queue."""
    with db.read() as s:
        rows = list(s.scalars(select(CrawlLock).where(CrawlLock.source.in_(sorted(set(names))))))
        held = busy(rows, utcnow())
        for row in held:
            s.expunge(row)
        return held
