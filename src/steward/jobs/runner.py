"""One way to run long work on a tracked subject (a package's build, a share's push; next
crawls, deliveries, retention and federated uploads).

The work runs outside any transaction (it can take hours). Around it the runner:

- claims the subject with a lease (``start``, or ``resume`` when the earlier holder's lease
  ran out or its process on this host is gone — a kill -9 need not wait out the lease);
- renews the lease and writes progress (bytes and items done and total) on a heartbeat, so
  ``steward jobs``/``show`` in another process can see how far it is and when it will end;
- stops the work when someone cancels it or moves the subject on (abort);
- records why it stopped — any exception, Ctrl-C, a cancel — with the subject's ``fail``
  command, so nothing is ever left ``running`` with nobody behind it.

The seeds copied this per kind and the copies drifted; every long job uses this one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from steward.db.queue_tables import JobProgress
from steward.db.session import Database
from steward.domain.workflow import Context
from steward.errors import Conflict, Detail, InvalidTransition, StewardError
from steward.services import leases, ledger
from steward.timeutil import utcnow

HEARTBEAT = 1.0  # seconds between progress writes (only when something changed)

RELEASE = threading.Event()
"""Set by a stopping worker (SIGTERM, Ctrl-C): every long job in this process lets go of its
subject between two files — no failure recorded, the lease handed back — so the next worker
resumes it at once instead of waiting for a job that may take hours."""


JOBS: dict[str, LongJob] = {}
"""Every long job by the outbox action that runs it, filled as the services declaring them
are imported. Their outcome is their subject's own events (start, finish, fail), so the
outbox records nothing more for them."""


class Released(Conflict):
    """The job let go of its subject because its worker is stopping (see ``RELEASE``)."""

    code = "released"
    title = "Handed back to the next worker"


@dataclass(frozen=True)
class LongJob:
    """What the runner needs to know about one kind of long job."""

    kind: ledger.Kind
    owner_field: str
    """The read-model column naming the holder (host:pid), e.g. ``builder``, ``sender``."""
    running: str
    """The subject's state while the work runs (``building``, ``running``)."""
    failable: tuple[str, ...]
    """States from which the subject's ``fail`` command applies."""
    noun: str
    """What the work is called in messages: ``build``, ``push``."""
    done_by: str
    """``built``, ``sent``: in "is being … by HOST:PID"."""
    context: Callable[[Session, str | None, Any], Context]
    """The caller's context for the job's own bookkeeping (the caller was checked already)."""
    action: str
    """The outbox action that runs it (``package.build``)."""

    def __post_init__(self) -> None:
        JOBS[self.action] = self

    @property
    def model(self) -> Any:
        return self.kind.model


def held(job: LongJob, row: Any) -> bool:
    """Whether someone alive runs the subject's job now (its lease holds)."""
    holder = getattr(row, job.owner_field)
    return bool(row.state == job.running and not leases.holder_gone(holder, row.lease_until))


def claim(s: Session, job: LongJob, row: Any, ctx: Context) -> None:
    """Start the subject's job, or take it over when its holder is gone; in ``s``.

    The lease goes on the event, so the read model gets it in the same UPDATE (a separate
    write would bump the version without an event)."""
    command = "start"
    if row.state == job.running:
        holder = getattr(row, job.owner_field)
        if held(job, row):
            until = f"{row.lease_until:%Y-%m-%d %H:%M:%S} UTC" if row.lease_until else "now"
            raise Conflict(
                f"{row.id} is being {job.done_by} by {holder} (lease until {until}); "
                "wait, or abort it",
                [Detail(f"{job.noun} in progress", field=job.kind.name, value=row.id)],
            )
        command = "resume"
    ledger.record(
        s, kind=job.kind, row=row, command=command, ctx=ctx, data=leases.claim(job.owner_field)
    )
    _reset_progress(s, job, row)


def retry(s: Session, job: LongJob, row: Any, ctx: Context) -> None:
    """Move a failed subject back to where its job starts again (work already done is kept)."""
    if row.state != "failed":
        raise InvalidTransition(
            f"{row.id} is {row.state}; only a failed {job.noun} is retried",
            [Detail("not failed", field="state", value=row.state, accepted="failed")],
        )
    ledger.record(s, kind=job.kind, row=row, command="retry", ctx=ctx)


def fail(db: Database, job: LongJob, subject_id: str, *, actor: str | None, reason: str) -> str:
    """Record why the job stopped — unless someone already moved the subject on (abort).

    Returns the state the subject is in afterwards."""
    with db.transaction() as s:
        row = s.get(job.model, subject_id)
        if row is None:
            return "missing"
        return fail_in(s, job, row, job.context(s, actor, row), reason)


def fail_in(s: Session, job: LongJob, row: Any, ctx: Context, reason: str) -> str:
    """:func:`fail` in the caller's transaction, for a subject it has loaded."""
    if row.state in job.failable:
        ledger.record(s, kind=job.kind, row=row, command="fail", ctx=ctx, data={"reason": reason})
    return str(row.state)


def reason(exc: BaseException, noun: str) -> str:
    """Why a job stopped, as people read it; kept in the ledger, so never a credential."""
    from steward.redact import redact

    if isinstance(exc, StewardError):
        lines = [exc.message, *(str(d) for d in exc.details[:20])]
        if len(exc.details) > 20:
            lines.append(f"… and {len(exc.details) - 20} more")
        return redact("\n".join(lines))
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted (Ctrl-C) during the {noun}"
    return redact(f"{type(exc).__name__}: {exc}")


def _upsert(s: Session, values: dict[str, Any]) -> None:
    keys = ["subject_kind", "subject_id"]
    changed = {k: v for k, v in values.items() if k not in keys}
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        pstmt = postgresql.insert(JobProgress).values(**values)
        s.execute(pstmt.on_conflict_do_update(index_elements=keys, set_=changed))
    else:
        sstmt = sqlite.insert(JobProgress).values(**values)
        s.execute(sstmt.on_conflict_do_update(index_elements=keys, set_=changed))


def _reset_progress(s: Session, job: LongJob, row: Any) -> None:
    now = utcnow()
    _upsert(
        s,
        {
            "subject_kind": job.kind.name,
            "subject_id": row.id,
            "project_id": row.project_id,
            "owner": leases.me(),
            "started_at": now,
            "updated_at": now,
            "finished_at": None,
            "bytes_done": 0,
            "bytes_total": None,
            "items_done": 0,
            "items_total": None,
            "cancel_requested_by": None,
        },
    )


@dataclass
class Progress:
    """Counters the work advances from any thread; the heartbeat writes them down."""

    bytes_done: int = 0
    bytes_total: int | None = None
    items_done: int = 0
    items_total: int | None = None
    changed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, total_bytes: int, total_items: int) -> None:
        with self.lock:
            self.bytes_total, self.items_total, self.changed = total_bytes, total_items, True

    def advance(self, nbytes: int, nitems: int) -> None:
        with self.lock:
            self.bytes_done += nbytes
            self.items_done += nitems
            self.changed = True

    def take(self) -> dict[str, Any] | None:
        with self.lock:
            if not self.changed:
                return None
            self.changed = False
            return {
                "bytes_done": self.bytes_done,
                "bytes_total": self.bytes_total,
                "items_done": self.items_done,
                "items_total": self.items_total,
            }


@dataclass
class Handle:
    """What the work sees of the runner: report progress, ask whether to stop."""

    db: Database
    job: LongJob
    subject_id: str
    progress: Progress
    on_start: Callable[[int, int], None] | None = None
    on_advance: Callable[[int, int], None] | None = None
    _last_look: float = 0.0
    _stop: str | None = None
    _cancelled_by: str | None = None

    def start(self, total_bytes: int, total_items: int) -> None:
        self.progress.start(total_bytes, total_items)
        if self.on_start:
            self.on_start(total_bytes, total_items)

    def advance(self, nbytes: int, nitems: int) -> None:
        self.progress.advance(nbytes, nitems)
        if self.on_advance:
            self.on_advance(nbytes, nitems)

    def stop_reason(self, *, fresh: bool = False) -> str | None:
        """Why the work should stop now (cancelled, or the subject left its running state);
        looks at the database every few seconds (``fresh``: now), not on every block."""
        if RELEASE.is_set():
            return "released: its worker is stopping"
        now = time.monotonic()
        due = fresh or now - self._last_look >= leases.STOP_CHECK_EVERY
        if self._stop is None and due:
            self._last_look = now
            self._stop, self._cancelled_by = _stop_reason(self.db, self.job, self.subject_id)
        return self._stop

    def should_stop(self) -> bool:
        return self.stop_reason() is not None

    @property
    def cancelled_by(self) -> str | None:
        return self._cancelled_by


def _stop_reason(db: Database, job: LongJob, subject_id: str) -> tuple[str | None, str | None]:
    with db.read() as s:
        state = s.scalar(select(job.model.state).where(job.model.id == subject_id))
        by = s.scalar(
            select(JobProgress.cancel_requested_by).where(
                JobProgress.subject_kind == job.kind.name, JobProgress.subject_id == subject_id
            )
        )
    if by:
        return f"cancelled by {by}", by
    if state != job.running:
        return f"{subject_id} was stopped ({state}) while its {job.noun} ran", None
    return None, None


def _beat(db: Database, job: LongJob, subject_id: str, owner: str, progress: Progress,
          *, renew: bool, final: bool = False) -> None:  # fmt: skip
    values = progress.take()
    if values is None and not renew and not final:
        return
    now = utcnow()
    with db.transaction() as s:
        if renew:
            # A Core UPDATE: the lease is not state, so it must not bump the version others
            # use for optimistic concurrency.
            owner_col = getattr(job.model, job.owner_field)
            s.execute(
                update(job.model)
                .where(job.model.id == subject_id, owner_col == owner)
                .values(lease_until=leases.lease_until(now))
                .execution_options(synchronize_session=False)
            )
        changes: dict[str, Any] = {**(values or {}), "updated_at": now}
        if final:
            changes["finished_at"] = now
        s.execute(
            update(JobProgress)
            .where(JobProgress.subject_kind == job.kind.name, JobProgress.subject_id == subject_id)
            .values(**changes)
            .execution_options(synchronize_session=False)
        )


@contextmanager
def _heartbeat(db: Database, job: LongJob, subject_id: str, progress: Progress) -> Iterator[None]:
    stop = threading.Event()
    owner = leases.me()

    def loop() -> None:
        last_renew = time.monotonic()
        while not stop.wait(HEARTBEAT):
            renew = time.monotonic() - last_renew >= leases.RENEW_EVERY
            try:
                _beat(db, job, subject_id, owner, progress, renew=renew)
            except Exception:
                continue  # the next beat tries again; the lease is far longer than a beat
            if renew:
                last_renew = time.monotonic()

    thread = threading.Thread(target=loop, name=f"{job.noun}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with suppress(Exception):
            _beat(db, job, subject_id, owner, progress, renew=False, final=True)


@contextmanager
def work(
    db: Database,
    job: LongJob,
    subject_id: str,
    *,
    actor: str | None,
    on_start: Callable[[int, int], None] | None = None,
    on_advance: Callable[[int, int], None] | None = None,
    on_stopped: Callable[[str], None] | None = None,
) -> Iterator[Handle]:
    """Run the body as the subject's job (claimed before with :func:`claim`).

    Whatever ends the body early — an error, Ctrl-C, a cancel — the subject records ``fail``
    with the reason and the exception propagates; ``on_stopped`` then gets the state the
    subject is in (``aborted`` when someone aborted it meanwhile: cleaning up is the caller's).
    """
    handle = Handle(db, job, subject_id, Progress(), on_start, on_advance)
    try:
        with _heartbeat(db, job, subject_id, handle.progress):
            yield handle
    except BaseException as exc:
        if RELEASE.is_set() and not handle.cancelled_by:
            _let_go(db, job, subject_id)
            if on_stopped:
                on_stopped(job.running)  # e.g. a push writes down the objects it verified
            raise Released(
                f"{subject_id}: its {job.noun} was released by a stopping worker; the next "
                "worker resumes it",
                [Detail("released", field=job.kind.name, value=subject_id)],
            ) from exc
        why = handle.stop_reason() if handle.cancelled_by else reason(exc, job.noun)
        state = fail(db, job, subject_id, actor=actor, reason=why or reason(exc, job.noun))
        if on_stopped:
            on_stopped(state)
        raise


def _let_go(db: Database, job: LongJob, subject_id: str) -> None:
    """Hand the lease back (it ends now) without an event: the subject stays in its running
    state, and whoever claims it next resumes it."""
    owner_col = getattr(job.model, job.owner_field)
    with db.transaction() as s:
        s.execute(
            update(job.model)
            .where(job.model.id == subject_id, owner_col == leases.me())
            .values(lease_until=utcnow() - timedelta(seconds=1))
            .execution_options(synchronize_session=False)
        )


def request_cancel(s: Session, job: LongJob, row: Any, ctx: Context) -> bool:
    """Ask a running job to stop; True when one was running. Whoever may ``fail`` the subject
    may cancel its job (project staff)."""
    if "fail" not in job.kind.workflow.available(row.state, ctx):
        from steward.errors import Forbidden

        raise Forbidden(
            f"{ctx.actor} may not cancel the {job.noun} of {row.id}",
            [Detail("needs steward or admin", field="role")],
        )
    if row.state != job.running:
        return False
    s.execute(
        update(JobProgress)
        .where(JobProgress.subject_kind == job.kind.name, JobProgress.subject_id == row.id)
        .values(cancel_requested_by=ctx.actor)
        .execution_options(synchronize_session=False)
    )
    return True


@dataclass(frozen=True)
class ProgressView:
    bytes_done: int
    bytes_total: int | None
    items_done: int
    items_total: int | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    owner: str | None
    eta_seconds: float | None


def progress_of(s: Session, subject_kind: str, subject_id: str) -> ProgressView | None:
    row = s.get(JobProgress, (subject_kind, subject_id))
    if row is None:
        return None
    return ProgressView(
        bytes_done=row.bytes_done,
        bytes_total=row.bytes_total,
        items_done=row.items_done,
        items_total=row.items_total,
        started_at=row.started_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        owner=row.owner,
        eta_seconds=eta(row),
    )


def eta(row: JobProgress) -> float | None:
    """Seconds left at the rate so far (bytes when the total is known, else items)."""
    if row.finished_at is not None:
        return 0.0
    elapsed = (row.updated_at - row.started_at).total_seconds()
    for done, total in ((row.bytes_done, row.bytes_total), (row.items_done, row.items_total)):
        if total and done and elapsed > 0:
            return max(0.0, (total - done) * elapsed / done)
    return None
