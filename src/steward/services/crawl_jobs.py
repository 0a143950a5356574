"""Crawls as jobs on the worker: ``steward crawl --no-wait`` and the crawls a schedule queues.

Queueing writes the crawl's row (status ``queued``) and an outbox action ``crawl`` in one
transaction, so the crawl is never queued without its row nor the row left without a job. The
action carries the sources as a crawl table (:func:`document`) — the same fields a sources file
has, so the worker needs no file — and the actor. It carries no secret: a config cannot hold
one (validation refuses inline credentials), only the *names* of environment variables, which
the worker resolves from its own environment when the crawl starts.

The worker's handler (:func:`run_queued`) runs :func:`~.crawl.run_crawl` on that row. Between
chunks it looks whether someone cancelled the action (``steward jobs cancel``: the crawl ends
``cancelled``) or the worker is stopping (the crawl is handed back and the next worker runs it
again); what was committed stays, and a re-run — the next try, a ``jobs retry``, a worker that
takes over from one killed with -9 — finishes the work as one uninterrupted crawl would. While
another crawl holds any of its sources the action is retried later (``crawl-busy``), with the
outbox's backoff.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from steward.config import Settings
from steward.crawl.config import CrawlConfig, SourceConfig, parse_crawl_config
from steward.db.models import Crawl
from steward.db.queue_tables import Action
from steward.db.session import Database
from steward.errors import Detail
from steward.ids import new_id
from steward.jobs import outbox, runner
from steward.services import crawl, leases
from steward.services.access import audited, require_user
from steward.services.crawl_progress import KIND, CrawlCancelled
from steward.services.crawl_summary import CrawlSummary, ProgressHook
from steward.timeutil import utcnow

ACTION = "crawl"
MAX_ATTEMPTS = 20
"""Tries of one queued crawl. Most retries wait for another crawl of the same sources to end
(``crawl-busy``): with the outbox's backoff (up to 15 minutes apart) 20 tries wait about four
hours before the crawl is given up as failed."""


ENDLESS = ("queued", "running", "interrupted")
"""A crawl row's statuses that a job ending for good (cancelled, failed) replaces."""


class Queued(BaseModel):
    """What ``--no-wait`` answers: the crawl's row and the action that runs it."""

    crawl_id: str
    action_id: str
    status: str = "queued"


def _source(src: SourceConfig) -> dict[str, Any]:
    rule = src.accession
    entry: dict[str, Any] = {
        "name": src.name,
        "project": src.project,
        "url": src.url,
        "stage": src.stage,
        "pattern": rule.pattern.pattern,
        "found_in": rule.found_in,
        "tech": list(src.tech),
        "extractors": list(src.extractors),
        "include": list(src.include),
        "exclude": list(src.exclude),
        "timeout": src.timeout,
        "retries": src.retries,
        "file": rule.file_glob,
        "field": rule.field,
        "fallback_encoding": src.fallback_encoding,
        "endpoint": src.endpoint,
        "region": src.region,
        "access_key_env": src.access_key_env,
        "secret_key_env": src.secret_key_env,
        "token_env": src.token_env,
        "items_field": src.items_field,
    }
    if src.kind == "endpoint":
        p = src.pagination
        entry["pagination"] = {
            "style": p.style,
            "next_field": p.next_field,
            "cursor_field": p.cursor_field,
            "cursor_param": p.cursor_param,
        }
    return {k: v for k, v in entry.items() if v is not None}


def document(config: CrawlConfig) -> dict[str, Any]:
    """``config`` as a crawl table that :func:`~steward.crawl.config.parse_crawl_config` reads
    back to the same config: what a queued or scheduled crawl keeps instead of a file. Only
    names of environment variables, never their values."""
    return {
        "stages": list(config.stages),
        "accession_mappings": [{"left": m.left, "right": m.right} for m in config.mappings],
        "sources": [_source(src) for src in config.sources],
    }


def config_of(table: dict[str, Any], origin: str) -> CrawlConfig:
    """The config a queued crawl or a schedule kept, checked again (the worker may know other
    extractors than the process that queued it)."""
    return parse_crawl_config(table, origin=origin)


def enqueue_in(
    s: Session,
    *,
    user: str,
    config: CrawlConfig,
    schedule: str | None = None,
    full: bool = False,
    idempotency_key: str | None = None,
) -> Queued:
    """Queue a crawl in ``s`` (the caller checked that ``user`` may crawl these sources);
    ``idempotency_key`` (the API's, already made the caller's own) keys its action."""
    crawl_id = new_id("crawl")
    now = utcnow()
    projects = sorted({src.project for src in config.sources})
    row = Crawl(
        id=crawl_id,
        started_at=now,
        finished_at=None,
        started_by=user,
        status="queued",
        summary={},
    )
    s.add(row)
    action_id = outbox.enqueue(
        s,
        subject_kind=KIND,
        subject_id=crawl_id,
        project_id=projects[0],
        action=ACTION,
        payload={
            "config": document(config),
            "origin": config.origin,
            "schedule": schedule,
            "full": full,
        },
        idempotency_key=f"{ACTION}:{idempotency_key or crawl_id}",
        actor=user,
        max_attempts=MAX_ATTEMPTS,
    )
    row.summary = {
        "action_id": action_id,
        "schedule": schedule,
        "queued_at": now.isoformat(),
        "sources": crawl.source_rows(config, "queued"),
    }
    return Queued(crawl_id=crawl_id, action_id=action_id)


def queue(
    db: Database,
    *,
    actor: str | None,
    config: CrawlConfig,
    full: bool = False,
    idempotency_key: str | None = None,
) -> Queued:
    """``steward crawl --no-wait``: the crawl's row and its job, for ``steward worker``. The
    same ``idempotency_key`` again (``POST /api/v1/crawls`` sent twice) answers the crawl the
    first call queued instead of queueing another."""
    with audited(db, actor=actor, action="crawl"), db.transaction() as s:
        crawl.authorise(s, actor, config)
        if idempotency_key:
            key = f"{ACTION}:{idempotency_key}"
            first = s.scalar(select(Action).where(Action.idempotency_key == key))
            if first is not None and first.action == ACTION:
                return Queued(crawl_id=first.subject_id, action_id=first.id)
        return enqueue_in(
            s,
            user=require_user(s, actor).id,
            config=config,
            full=full,
            idempotency_key=idempotency_key,
        )


def open_crawls(s: Session, names: Collection[str]) -> list[str]:
    """Queued or running crawls (their jobs not ended) of any of ``names``: "crawl crl_… of
    sources a, b is queued" for each."""
    wanted = set(names)
    out = []
    jobs = select(Action).where(Action.action == ACTION, Action.state.in_(outbox.OPEN))
    for action in s.scalars(jobs.order_by(Action.created_at)):
        sources = action.payload.get("config", {}).get("sources", [])
        shared = sorted(wanted & {str(src.get("name")) for src in sources})
        if shared:
            state = "queued" if action.state == "pending" else "running"
            out.append(f"crawl {action.subject_id} of sources {', '.join(shared)} is {state}")
    return out


def checkpoint(db: Database, action_id: str, crawl_id: str) -> Callable[[], None]:
    """Between two chunks: stop when the worker is stopping (handed back, the next worker runs
    it again) or someone cancelled the action (looked up every ``STOP_CHECK_EVERY`` s)."""
    last = 0.0

    def check() -> None:
        nonlocal last
        if runner.RELEASE.is_set():
            raise runner.Released(
                f"{crawl_id} was handed back by a stopping worker; the next worker runs it again",
                [Detail("released", field="crawl", value=crawl_id)],
            )
        now = time.monotonic()
        if now - last < leases.STOP_CHECK_EVERY:
            return
        last = now
        with db.read() as s:
            by = s.scalar(select(Action.cancel_requested_by).where(Action.id == action_id))
        if by:
            raise CrawlCancelled(f"cancelled by {by}")

    return check


def run_queued(
    db: Database,
    settings: Settings,
    d: outbox.Delivery,
    *,
    progress: ProgressHook | None = None,
    chunk: int = crawl.CHUNK,
) -> CrawlSummary:
    """The worker's crawl: the queued row's crawl, with the sources the action carries and
    credentials from this process's environment (``progress``, ``chunk``: for tests)."""
    config = config_of(d.payload["config"], str(d.payload.get("origin") or d.subject_id))
    return crawl.run_crawl(
        db,
        settings,
        actor=d.created_by,
        config=config,
        environ=os.environ,
        crawl_id=d.subject_id,
        checkpoint=checkpoint(db, d.id, d.subject_id),
        progress=progress,
        chunk=chunk,
        full=bool(d.payload.get("full")),
    )


def settled(s: Session, action: Action) -> None:
    """A crawl action ended (in the transaction that settles it): a crawl that never got to
    record its own end — cancelled or refused while queued, given up — says so on its row."""
    row = s.get(Crawl, action.subject_id)
    if row is None or action.state == "done" or row.status not in ENDLESS:
        return
    row.status = "cancelled" if action.state == "cancelled" else "failed"
    row.finished_at = action.finished_at or utcnow()
    why = action.last_error or (
        f"cancelled by {action.cancel_requested_by}" if action.cancel_requested_by else None
    )
    row.summary = {**row.summary, "error": why}


outbox.OWN_OUTCOME[ACTION] = settled
