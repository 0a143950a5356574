"""Copy many objects into one store, verified, resumable and safe to interrupt.

The engine behind ``steward share push``. What it promises:

- **Nothing moves before the destination is known to accept it** (``check_writable``).
- **Every object is verified after upload.** The bytes are hashed while they stream, once:
  SHA-256 of the source (it must still match the package manifest; otherwise the object is
  not committed), and on S3 the MD5 the ETag must equal — the MD5 of the whole object for a
  single PUT, or ``md5(md5(part1) + … + md5(partN))-N`` for a multipart upload, which is why
  the part size used is recorded. A mismatch after upload deletes the object and is an error
  naming the key. On a local destination the file is written under a temporary name, then
  renamed; its size is checked and its SHA-256 is the one computed while writing.
- **Nothing half-done is ever visible under a final key**: S3 multipart uploads only appear
  when completed and are aborted on failure; local files appear by rename.
- **Re-running redoes nothing that is complete**: objects already present with the same size
  and a matching ETag (single-part), SHA-256 user metadata (written with every S3 upload) or,
  locally, SHA-256 of the file are skipped; leftovers of an interrupted run (pending multipart
  uploads, temporary files) are removed first. So a push killed with ``kill -9`` is resumed by
  running it again.
- Objects move in parallel (``concurrency`` at a time) and large ones in parts, several parts
  in flight each (``part_concurrency``). Callbacks run on the calling thread, so they may use
  a database session; ``should_stop`` is polled there too, about twice a second.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from steward.adapters.storage import ObjectInfo, Store, normalize_key
from steward.errors import (
    ConfigurationError,
    Conflict,
    Detail,
    NotFound,
    StewardError,
    StorageDenied,
    ValidationFailed,
)

MiB = 1 << 20
DEFAULT_PART_SIZE = 16 * MiB
BLOCK = 8 * MiB  # read size while streaming one object
SHA256_KEY = "sha256"  # S3 user metadata (x-amz-meta-sha256)


@dataclass(frozen=True)
class TransferItem:
    source: Store
    source_key: str
    dest_key: str
    size: int
    sha256: str
    md5: str | None = None


@dataclass(frozen=True)
class TransferResult:
    dest_key: str
    size: int
    sha256: str
    etag: str | None
    skipped: bool


@dataclass
class TransferSummary:
    results: list[TransferResult] = field(default_factory=list)
    transferred: int = 0
    skipped: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes_sent / 1e6 / self.seconds if self.seconds else 0.0


class TransferStopped(Conflict):
    """``should_stop`` said so (e.g. another worker took the push over); nothing half-written
    remains, and running the transfer again finishes it."""

    code = "transfer-stopped"
    title = "Transfer stopped"


class _Stop(Exception):
    pass


@dataclass(frozen=True)
class _Progress:
    bytes: int


@dataclass(frozen=True)
class _Finished:
    item: TransferItem
    future: Future[TransferResult]


# -- checksums ----------------------------------------------------------------------------


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    """The ETag S3 gives a multipart upload: MD5 of the parts' binary MD5s, dash, count."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


class _Digests:
    """Hash a stream once, in the blocks it is read in: SHA-256 and, if asked, MD5 of the
    whole and/or of each part (part boundaries need not match block boundaries)."""

    def __init__(self, *, sha256: bool, md5: bool, part_size: int | None) -> None:
        self.sha256 = hashlib.sha256() if sha256 else None
        self.md5 = hashlib.md5() if md5 else None
        self.part_size = part_size
        self.parts: list[bytes] = []
        self._part = hashlib.md5()
        self._filled = 0
        self.size = 0

    def update(self, block: bytes) -> None:
        self.size += len(block)
        if self.sha256 is not None:
            self.sha256.update(block)
        if self.md5 is not None:
            self.md5.update(block)
        if self.part_size is None:
            return
        view = memoryview(block)
        while view:
            take = min(len(view), self.part_size - self._filled)
            self._part.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.part_size:
                self.parts.append(self._part.digest())
                self._part, self._filled = hashlib.md5(), 0

    def part_digests(self) -> list[bytes]:
        return [*self.parts, self._part.digest()] if self._filled else list(self.parts)


def _sha256_of(store: Store, key: str) -> str:
    h = hashlib.sha256()
    with store.open_reader(key, BLOCK) as reader:
        while block := reader.read(BLOCK):
            h.update(block)
    return h.hexdigest()


# -- one object ----------------------------------------------------------------------------


@dataclass
class _Plan:
    dest: Store
    part_size: int
    part_concurrency: int
    stop: threading.Event
    events: queue.Queue[_Progress | _Finished]
    existing: dict[str, ObjectInfo]


def _already_there(plan: _Plan, item: TransferItem) -> TransferResult | None:
    """The verified object if ``item`` is present at the destination, else None."""
    found = plan.existing.get(item.dest_key)
    if found is None or found.size != item.size:
        return None
    dest = plan.dest
    if dest.is_local:
        if _sha256_of(dest, item.dest_key) != item.sha256:
            return None
        return TransferResult(item.dest_key, item.size, item.sha256, None, True)
    if item.md5 and found.etag == item.md5:
        return TransferResult(item.dest_key, item.size, item.sha256, found.etag, True)
    try:
        info = dest.stat(item.dest_key)
    except NotFound:
        return None
    if info.size == item.size and (info.metadata or {}).get(SHA256_KEY) == item.sha256:
        return TransferResult(item.dest_key, item.size, item.sha256, info.etag, True)
    return None


def _expected_etag(digests: _Digests, etag: str) -> str:
    """The ETag S3 should report for what we sent (one part may be stored either way)."""
    if digests.md5 is not None:  # sent as one PUT, unless the store chose one part
        whole = digests.md5.digest()
        return multipart_etag([whole]) if etag.endswith("-1") else whole.hex()
    parts = digests.part_digests()
    if len(parts) == 1 and "-" not in etag:
        return parts[0].hex()
    return multipart_etag(parts)


def _send(plan: _Plan, item: TransferItem) -> TransferResult:
    dest, stop, events = plan.dest, plan.stop, plan.events
    where = dest.join(item.dest_key)
    metadata = {} if dest.is_local else {SHA256_KEY: item.sha256}
    with (
        item.source.open_reader(item.source_key, BLOCK) as reader,
        dest.open_writer(
            item.dest_key,
            size_hint=item.size,
            metadata=metadata,
            part_size=plan.part_size,
            concurrency=plan.part_concurrency,
        ) as writer,
    ):
        part_size = writer.part_size  # the store may enlarge it (at most 10,000 parts)
        single = part_size is None or item.size < part_size
        # One S3 PUT with a known MD5: that MD5 alone proves both the source and the upload.
        md5_only = not dest.is_local and single and item.md5 is not None
        digests = _Digests(
            sha256=not md5_only,
            md5=not dest.is_local and single,
            part_size=None if single else part_size,
        )
        while block := reader.read(BLOCK):
            if stop.is_set():
                raise _Stop()
            digests.update(block)
            writer.write(block)
            events.put(_Progress(len(block)))
        # Still inside the writer: a source that changed since the package was built
        # aborts the write, so the wrong bytes never appear under the final key.
        if md5_only and digests.md5 is not None:
            same = digests.md5.hexdigest() == item.md5
        else:
            same = digests.sha256 is not None and digests.sha256.hexdigest() == item.sha256
        if digests.size != item.size or not same:
            raise Conflict(
                f"{item.source.join(item.source_key)} changed since the package was built "
                f"(now {digests.size} bytes, expected {item.size} with sha256 "
                f"{item.sha256[:12]}…); nothing was written to {where}"
            )
    info = dest.stat(item.dest_key)
    problem = None
    if info.size != item.size:
        problem = f"it has {info.size} bytes, expected {item.size}"
    elif not dest.is_local:
        etag = info.etag or ""
        expected = _expected_etag(digests, etag)
        if etag != expected:
            problem = f"its ETag is {etag or 'missing'}, expected {expected}"
    if problem:
        dest.delete(item.dest_key)
        raise Conflict(f"{where} did not arrive intact ({problem}); it was removed")
    return TransferResult(item.dest_key, item.size, item.sha256, info.etag, False)


def _one(plan: _Plan, item: TransferItem) -> TransferResult:
    if plan.stop.is_set():
        raise _Stop()
    done = _already_there(plan, item)
    return done if done is not None else _send(plan, item)


# -- many objects --------------------------------------------------------------------------


def _checked(items: Iterable[TransferItem]) -> list[TransferItem]:
    """Normalised destination keys; every duplicate and bad key reported at once."""
    out: list[TransferItem] = []
    problems: list[Detail] = []
    seen: set[str] = set()
    for n, item in enumerate(items, start=1):
        try:
            key = normalize_key(item.dest_key, field="dest_key")
        except ValidationFailed as exc:
            problems.extend(
                Detail(d.message, field="dest_key", row=n, value=d.value) for d in exc.details
            )
            continue
        if key in seen:
            problems.append(
                Detail("two objects would have this key", field="dest_key", row=n, value=key)
            )
        seen.add(key)
        if item.size < 0:
            problems.append(Detail("negative size", field="size", row=n, value=str(item.size)))
        out.append(
            item
            if key == item.dest_key
            else TransferItem(item.source, item.source_key, key, item.size, item.sha256, item.md5)
        )
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) in the objects to transfer", problems)
    return out


def _common_folder(keys: Iterable[str]) -> str:
    parents = [PurePosixPath(k).parent.parts for k in keys]
    if not parents:
        return ""
    common: list[str] = []
    for level in zip(*parents, strict=False):
        if any(p != level[0] for p in level):
            break
        common.append(level[0])
    return "/".join(common)


def transfer(
    items: Iterable[TransferItem],
    dest: Store,
    *,
    concurrency: int = 4,
    part_size: int = DEFAULT_PART_SIZE,
    part_concurrency: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_done: Callable[[TransferResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TransferSummary:
    """Copy ``items`` into ``dest``; see the module docstring for what is promised.

    ``on_progress(n)`` reports bytes sent (not bytes skipped); ``on_done(result)`` is called
    once per object, skipped or sent. Failing objects do not stop the others unless the
    destination refuses us (credentials, permissions); at the end the first failure's class is
    raised with one detail per failed key. ``should_stop`` returning True aborts the objects
    in flight and raises :class:`TransferStopped`.
    """
    todo = _checked(items)
    started = time.monotonic()
    dest.check_writable()
    keys = {i.dest_key for i in todo}
    dest.abort_incomplete(keys)
    existing = {o.key: o for o in dest.list(_common_folder(keys))} if todo else {}
    plan = _Plan(
        dest=dest,
        part_size=part_size,
        part_concurrency=part_concurrency or concurrency,
        stop=threading.Event(),
        events=queue.Queue(),
        existing=existing,
    )
    summary = TransferSummary()
    failures: list[tuple[str, BaseException]] = []
    stopped_by_caller = False

    def finished(item: TransferItem) -> Callable[[Future[TransferResult]], None]:
        return lambda fut: plan.events.put(_Finished(item, fut))

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="transfer") as pool:
        for item in todo:
            pool.submit(_one, plan, item).add_done_callback(finished(item))
        remaining, last_poll = len(todo), 0.0
        try:
            while remaining:
                try:
                    event: _Progress | _Finished | None = plan.events.get(timeout=0.25)
                except queue.Empty:
                    event = None
                if isinstance(event, _Progress):
                    summary.bytes_sent += event.bytes
                    if on_progress:
                        on_progress(event.bytes)
                elif isinstance(event, _Finished):
                    remaining -= 1
                    exc = event.future.exception()
                    if exc is None:
                        result = event.future.result()
                        summary.results.append(result)
                        if result.skipped:
                            summary.skipped += 1
                        else:
                            summary.transferred += 1
                        if on_done:
                            on_done(result)
                    elif not isinstance(exc, _Stop):
                        failures.append((event.item.dest_key, exc))
                        if isinstance(exc, ConfigurationError | StorageDenied) or not isinstance(
                            exc, StewardError
                        ):
                            plan.stop.set()  # the destination refuses us: stop everything
                now = time.monotonic()
                if should_stop and not plan.stop.is_set() and now - last_poll >= 0.5:
                    last_poll = now
                    if should_stop():
                        stopped_by_caller = True
                        plan.stop.set()
        except BaseException:
            plan.stop.set()  # e.g. KeyboardInterrupt or a failing callback: abort the rest
            raise
    summary.seconds = time.monotonic() - started
    if failures:
        first = failures[0][1]
        if len(failures) == 1 and isinstance(first, StewardError):
            raise first
        if not isinstance(first, StewardError):
            raise first
        raise type(first)(
            f"{len(failures)} of {len(todo)} objects could not be copied to {dest.url}; "
            f"first: {first}",
            [Detail(str(exc), field=key) for key, exc in failures],
        )
    if stopped_by_caller:
        raise TransferStopped(
            f"the transfer to {dest.url} was stopped after {len(summary.results)} of "
            f"{len(todo)} objects; run it again to finish"
        )
    return summary
