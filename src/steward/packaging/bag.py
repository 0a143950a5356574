"""Building a BagIt 1.0 bag (RFC 8493) with RO-Crate metadata from a package's files.

Two steps, so the caller can render the HTML report from the built files in between:

1. :func:`build_payload` puts every file into ``data/`` — copied, hard-linked or (mode
   ``fetch``) only hashed for a holey bag — reading each source once in a thread pool;
2. :func:`finish_bag` writes the manifests, bag-info, the RO-Crate, fetch.txt and the caller's
   tag files, and last the tag manifests: a bag without ``tagmanifest-sha256.txt`` is unfinished.

Copying (mode ``copy``, local sources) uses ``copy_file_range`` and hashes each chunk as it
lands in the copy, read back from the page cache; S3 sources are streamed once through the
storage adapter and written as they are hashed. A chunk's SHA-256 and MD5 run at once on the
shared hashing threads (:mod:`~steward.packaging.hash_pool`) while its reader fills the next
buffer: one large file is hashed on two cores (SHA-256 beside the slower MD5), several files
on every core.

A source that changes while it is read (size, mtime, inode — or ETag in S3 — differ before and
after) or disagrees with the manifest's size or checksums fails, naming the file; the other
files are still built and every problem is reported.

Resumable: each payload file is written under a hidden temporary name next to its place in
``data/`` and renamed only when complete and hashed, then recorded in
``.steward/build-journal.jsonl``. After a kill -9 the same call skips every journaled file whose
source (stat or ETag) and copy (size and mtime) are unchanged, deletes half-written files, and
redoes the rest; the ``.steward`` folder disappears when the bag is finished. Nothing is
fsynced (like ``cp`` and ``bagit``): a killed process loses nothing the kernel holds, and after
a power failure the journal's boot id makes the next run check everything again.

Mode ``link`` hard-links local files into ``data/`` (reading them once to hash): no bytes are
copied, and the bag shares the source's inode, so changing the source later changes the bag — a
later ``validate --full`` shows it. A source on another file system, or in S3, cannot be linked:
that is reported for every such file before anything moves, rather than silently copying
terabytes the caller chose not to copy.

Mode ``fetch`` copies nothing. Hashes are computed by streaming each source once; with
``trust_manifest=True`` a file whose manifest gives both sha256 and md5, and whose current size
matches the manifest, is not read. fetch.txt holds, per file, ``fetch_url(entry)`` if given, else
the source URI: ``s3://bucket/key`` — which ``bdbag`` resolves with boto3 against Amazon S3 (not
a custom endpoint) — or ``file:///path``, which ``bagit`` accepts as a URL but ``bdbag`` cannot
fetch. Pass ``fetch_url`` (e.g. to an HTTPS mirror or presigned links) for other recipients.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from steward.adapters.storage import S3Config
from steward.errors import ConfigurationError, Detail, StewardError, ValidationFailed
from steward.packaging.bag_model import (
    MODES,
    BagEntry,
    BagInfo,
    BagSummary,
    BuildCancelled,
    BuiltFile,
    Mode,
)
from steward.packaging.bagit_files import BUILD_DIR
from steward.packaging.finish import finish_bag
from steward.packaging.hashing import DEFAULT_CHUNK_SIZE, Stopped
from steward.packaging.journal import Journal, JournalRecord, load_journal
from steward.packaging.payload import BagWriteError, Context, FileProblem, Job, process
from steward.packaging.plan import claim_dir, plan, remove_strays
from steward.packaging.sources import S3Source, S3Stores, Source
from steward.packaging.validate import BagCheck, check_bag, validate_bag

__all__ = [
    "BagCheck",
    "BagEntry",
    "BagInfo",
    "BagSummary",
    "BuildCancelled",
    "BuiltFile",
    "Mode",
    "build_payload",
    "check_bag",
    "default_workers",
    "finish_bag",
    "validate_bag",
]

JOURNAL = "build-journal.jsonl"
STOP_CHECK_SECONDS = 0.2


def default_workers(entries: Sequence[BagEntry]) -> int:
    """Files read at once. Their digests run on the shared hashing threads (one per core), and
    a reader waiting for its digests runs them too, so one reader per core keeps every core
    busy with local files; S3 reads wait on the network, so more are in flight."""
    cpus = os.cpu_count() or 2
    if any(e.source_uri.startswith("s3://") for e in entries):
        return max(8, 2 * cpus)
    return max(1, min(cpus, 8))


def _reuse(job: Job, rec: JournalRecord | None, ctx: Context) -> BuiltFile | None:
    """The journaled result for ``job`` if its source and its copy in data/ are unchanged."""
    e = job.entry
    if rec is None or rec.mode != ctx.mode or rec.source_uri != e.source_uri:
        return None
    for expected, got in ((e.size, rec.size), (e.sha256, rec.sha256), (e.md5, rec.md5)):
        if expected is not None and str(expected).lower() != str(got):
            return None
    source = job.source
    try:
        state = ctx.stores.state(source) if isinstance(source, S3Source) else job.state
    except StewardError:
        return None
    if state is None or (state.size, state.mtime_ns, state.ino, state.etag) != (
        rec.source_size,
        rec.source_mtime_ns,
        rec.source_ino,
        rec.source_etag,
    ):
        return None
    if ctx.mode != "fetch":
        try:
            st = os.lstat(job.dest)
        except OSError:
            return None
        if (st.st_size, st.st_mtime_ns) != (rec.size, rec.dest_mtime_ns):
            return None
        if ctx.mode == "link" and st.st_ino != rec.source_ino:
            return None
    return BuiltFile(
        relpath=e.relpath,
        size=rec.size,
        sha256=rec.sha256,
        md5=rec.md5,
        source_uri=e.source_uri,
        source_etag=rec.source_etag,
        source_mtime_ns=rec.source_mtime_ns,
        fetch_url=rec.fetch_url,
        metadata=dict(e.metadata),
        reused=True,
    )


class _Stop:
    """One stop flag for every worker. The caller's ``should_stop`` (it may query a database)
    is asked before each file and, within a file, at most every :data:`STOP_CHECK_SECONDS`,
    from one thread at a time."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self.event = threading.Event()
        self.requested = False
        self._ask = should_stop
        self._lock = threading.Lock()
        self._last = 0.0

    def __call__(self, *, now: bool = False) -> bool:
        if self.event.is_set():
            return True
        if self._ask is not None and self._lock.acquire(blocking=now):
            try:
                t = time.monotonic()
                if now or t - self._last >= STOP_CHECK_SECONDS:
                    self._last = t
                    if self._ask():
                        self.requested = True
                        self.event.set()
            finally:
                self._lock.release()
        return self.event.is_set()


def build_payload(
    bag_dir: Path,
    entries: Sequence[BagEntry],
    *,
    mode: Mode = "copy",
    s3: S3Config | None = None,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    trust_manifest: bool = False,
    fetch_url: Callable[[BagEntry], str] | None = None,
) -> list[BuiltFile]:
    """Fill ``bag_dir/data`` from ``entries`` (or, mode ``fetch``, only hash them).

    ``on_progress(bytes, files)`` receives increments from worker threads (serialised here).
    Raises :class:`ValidationFailed` naming every bad file (wrong size or checksum, changed while
    read, missing), :class:`BuildCancelled` when ``should_stop()`` turned true, or
    :class:`ConfigurationError` when the bag directory cannot be written. Files finished before
    any of these stay journaled for the next run.
    """
    if mode not in MODES:
        raise ValidationFailed(
            f"unknown package mode {mode!r}",
            [Detail("unknown mode", field="mode", value=str(mode), accepted=", ".join(MODES))],
        )
    bag_dir = Path(bag_dir)
    bag_dir.mkdir(parents=True, exist_ok=True)
    claim_dir(bag_dir)
    jobs = plan(bag_dir, entries, mode)
    journal_path = bag_dir / BUILD_DIR / JOURNAL
    records = load_journal(journal_path)
    remove_strays(bag_dir, set() if mode == "fetch" else {j.entry.relpath for j in jobs})
    journal = Journal(journal_path)
    journal.open({k: v for k, v in records.items() if k in {j.entry.relpath for j in jobs}})

    progress_lock = threading.Lock()

    def progress(nbytes: int, nfiles: int) -> None:
        if on_progress is not None:
            with progress_lock:
                on_progress(nbytes, nfiles)

    stop = _Stop(should_stop)
    stores = S3Stores(s3)
    ctx = Context(
        mode=mode,
        chunk_size=chunk_size,
        stores=stores,
        on_chunk=lambda n: progress(n, 0),
        should_stop=stop,
        trust_manifest=trust_manifest,
        fetch_url=_fetch_url(fetch_url),
    )
    results: dict[str, BuiltFile] = {}
    problems: list[Detail] = []
    fatal: list[BagWriteError] = []

    def run(job: Job) -> None:
        if stop(now=True):
            return
        try:
            reused = _reuse(job, records.get(job.entry.relpath), ctx)
            if reused is not None:
                results[job.entry.relpath] = reused
                progress(reused.size, 1)
                return
            built, record = process(job, ctx)
            journal.append(record)
            results[job.entry.relpath] = built
            progress(0, 1)
        except FileProblem as exc:
            problems.extend(exc.details)
        except Stopped:
            pass
        except BagWriteError as exc:
            fatal.append(exc)
            stop.event.set()

    order = sorted(jobs, key=lambda j: -(j.entry.size or (j.state.size if j.state else 0)))
    n_workers = max(1, min(workers or default_workers(entries), len(order) or 1))
    try:
        _run_threads(order, run, n_workers, stop.event)
    finally:
        journal.close()
    if fatal:
        err = fatal[0]
        raise ConfigurationError(
            f"cannot write the bag at {bag_dir}: {err.os_error.strerror or err.os_error}",
            [Detail(str(e), field=str(e.path)) for e in fatal],
        )
    if problems:
        problems.sort(key=lambda d: d.field or "")
        raise ValidationFailed(
            f"{len({d.field for d in problems})} file(s) could not be packaged", problems
        )
    if stop.requested or len(results) < len(jobs):
        raise BuildCancelled(
            f"the build was stopped with {len(results)} of {len(jobs)} files done; "
            "running it again continues from there"
        )
    return [results[e.relpath] for e in entries]


def _run_threads(
    jobs: Sequence[Job], run: Callable[[Job], None], n: int, stop: threading.Event
) -> None:
    """``n`` threads taking jobs in order from one shared iterator. Plain threads rather than
    an executor: no future per file, so no wake-up of the waiting thread per file competing
    for the GIL with the workers (measured: half the futex calls). An unexpected exception in
    a worker stops the others and is raised here."""
    todo = iter(jobs)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while not stop.is_set():
                with lock:
                    job = next(todo, None)
                if job is None:
                    return
                run(job)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=worker, name=f"bag-{i}") for i in range(n)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:
        stop.set()  # Ctrl-C: let the workers finish their chunk and leave
        for t in threads:
            t.join()
        raise
    if errors:
        raise errors[0]


def _fetch_url(custom: Callable[[BagEntry], str] | None) -> Callable[[BagEntry, Source], str]:
    def url(entry: BagEntry, source: Source) -> str:
        if custom is not None:
            return custom(entry)
        if isinstance(source, S3Source):
            return source.url()
        return source.path.as_uri()

    return url
