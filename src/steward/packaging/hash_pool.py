"""Digest updates on a few shared threads: SHA-256 and MD5 of one file on different cores,
several files at once, while each reader already fills its next buffer.

Why: hashing is what a package build spends its CPU on, and MD5 alone (0.6-0.8 GB/s per core)
is slower than the disks it reads. One thread per file doing read, SHA-256, MD5 in turn keeps
one core per file busy at best, and leaves cores idle whenever one big file is all that is left.
``hashlib`` releases the GIL while it hashes a large buffer, so plain threads give real
parallelism without processes, pickling or copying.

The model: each digest of each stream is a *lane* whose updates must run in order, one at a
time; the pool's threads take whichever lane has work, round-robin. A reader owns a
:class:`Feed`, a small ring of buffers: it fills a free buffer, hands it to every lane of its
stream and goes on reading into the next, waiting only when every buffer of its ring is still
being hashed — and then running its own queued lanes rather than sleeping. A buffer is filled
again only after every lane has hashed it, so each byte is read once and never changes under a
digest. Small streams (a ``size_hint`` under :data:`INLINE_STREAM_BELOW`) skip the pool: their
reader hashes them, and several readers keep the cores busy.

Failures stay with their stream: an update that raises is recorded on its feed and raised to
that feed's reader; the pool's threads go on serving every other stream. A reader that gives up
(an error, a cancelled build) waits only for its own buffers in flight — a bounded wait, since a
lane never waits for anything — before its buffers are reused.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType

Update = Callable[[memoryview], object]

#: buffers per stream. A reader whose ring is full sleeps until half of it is free again, so it
#: is woken once per four chunks rather than once per chunk (a wake-up costs tens of
#: microseconds in a virtual machine, and the waker holds the GIL meanwhile)
DEFAULT_DEPTH = 8
#: chunks smaller than this are hashed by the reader itself when none of its stream's chunks is
#: in flight: handing a chunk to another thread costs tens of microseconds, as much as hashing
#: a few dozen KiB
INLINE_BELOW = 128 << 10
#: streams announced smaller than this are hashed by their reader alone: handing their chunks
#: over costs wake-ups (measured on 2,000 files of 1 MiB: five times the futex calls, 2% more
#: CPU) that running a small file's two digests side by side does not win back, and several
#: small files at once keep the cores busy anyway
INLINE_STREAM_BELOW = 4 << 20
#: idle buffers kept for reuse, in bytes: mapping (and faulting in) 1 MiB per file costs more
#: than hashing a small file's tail
KEEP_IDLE_BYTES = 64 << 20


class _Slot:
    """One buffer of a ring and what was last submitted from it.

    The buffer is an anonymous memory map, so it starts on a page boundary: ``malloc`` puts a
    1 MiB ``bytearray`` 16 bytes past one, and the kernel then copies a file into it at a
    quarter of the speed (measured: 0.43 against 0.11 ns per byte for ``readv`` from the page
    cache, a fifth of what both digests cost).
    """

    __slots__ = ("chunk", "pending", "view")

    def __init__(self, size: int) -> None:
        self.view = memoryview(mmap.mmap(-1, size))
        self.chunk: memoryview | None = None
        self.pending = 0  # lanes that have not hashed ``chunk`` yet


class _Lane:
    """One digest of one stream. ``queued`` is true while the lane is in the pool's ready queue
    or being run (``running``), so no second thread can take it: its updates stay in order."""

    __slots__ = ("feed", "queued", "running", "todo", "update")

    def __init__(self, update: Update, feed: Feed) -> None:
        self.update = update
        self.feed = feed
        self.todo: deque[_Slot] = deque()
        self.queued = False
        self.running = False


class HashPool:
    """``threads`` threads running digest updates for any number of feeds (:class:`Feed`); with
    ``threads=0`` every update runs inline in the reader (no overlap, same digests)."""

    def __init__(self, threads: int) -> None:
        if threads < 0:
            raise ValueError("threads must be 0 or more")
        self.threads = threads
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._ready: deque[_Lane] = deque()
        self._idle: dict[int, list[_Slot]] = {}
        self._idle_bytes = 0
        self._closed = False
        self._workers = [
            threading.Thread(target=self._run, name=f"hash-{i}", daemon=True)
            for i in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    def feed(
        self,
        updates: Sequence[Update],
        chunk_size: int,
        *,
        depth: int = DEFAULT_DEPTH,
        size_hint: int | None = None,
    ) -> Feed:
        """A ring of ``depth`` buffers of ``chunk_size`` bytes feeding every one of ``updates``;
        a stream expected to be small (``size_hint``) is hashed by its reader alone."""
        inline = size_hint is not None and size_hint < INLINE_STREAM_BELOW
        return Feed(self, updates, chunk_size, depth, inline=inline)

    def close(self) -> None:
        """Finish what was submitted, then stop the threads."""
        with self._lock:
            self._closed = True
            self._work.notify_all()
        for worker in self._workers:
            worker.join()

    def __enter__(self) -> HashPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- called with the lock held ---------------------------------------------------------

    def _schedule(self, lanes: Sequence[_Lane], slot: _Slot) -> None:
        """Queue ``slot`` on every lane and wake one thread. One, not one per lane: a woken
        thread takes every ready lane before it sleeps again, and the reader runs its own lanes
        while it waits — each needless wake-up is a futex call and a context switch, which per
        small file cost more than the Python around them."""
        for lane in lanes:
            lane.todo.append(slot)
            if not lane.queued:
                lane.queued = True
                self._ready.append(lane)
        self._work.notify()

    def _take_slot(self, size: int) -> _Slot:
        idle = self._idle.get(size)
        if idle:
            self._idle_bytes -= size
            return idle.pop()
        return _Slot(size)

    def _give_slot(self, slot: _Slot) -> None:
        slot.chunk = None
        size = len(slot.view)
        if self._idle_bytes + size <= KEEP_IDLE_BYTES:
            self._idle.setdefault(size, []).append(slot)
            self._idle_bytes += size

    # ---- the threads -----------------------------------------------------------------------

    def _run(self) -> None:
        with self._lock:
            while True:
                while not self._ready:
                    if self._closed:
                        return
                    self._work.wait()
                self._update_once(self._ready.popleft())

    def _update_once(self, lane: _Lane) -> None:
        """Run ``lane``'s oldest update (called with the lock held, released meanwhile)."""
        lane.running = True
        slot = lane.todo[0]
        self._lock.release()
        error: BaseException | None = None
        try:
            lane.update(slot.chunk)  # type: ignore[arg-type]  # set before scheduling
        except BaseException as exc:  # the stream's problem: its reader raises it
            error = exc
        finally:
            self._lock.acquire()
        lane.running = False
        lane.todo.popleft()
        if lane.todo:  # to the back: other streams' lanes get their turn
            self._ready.append(lane)
        else:
            lane.queued = False
        feed = lane.feed
        if error is not None and feed.error is None:
            feed.error = error
        slot.pending -= 1
        if slot.pending == 0 and slot is feed.awaited:
            feed.done.notify()


class Feed:
    """A reader's ring of buffers for one stream (see the module docstring).

    Use as a context manager: leaving it — normally or by an exception — waits for the buffers
    still being hashed and gives them back to the pool; an update's error is raised by
    :meth:`next_buffer`, :meth:`wait` or on a normal exit.
    """

    def __init__(
        self,
        pool: HashPool,
        updates: Sequence[Update],
        chunk_size: int,
        depth: int,
        *,
        inline: bool = False,
    ):
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self._pool = pool
        self._lock = pool._lock
        self.done = threading.Condition(pool._lock)
        self._lanes = [_Lane(update, self) for update in updates]
        self._size = chunk_size
        self._depth = max(1, depth)
        self._owned = 0
        self._free: list[_Slot] = []
        self._inflight: deque[_Slot] = deque()
        self._current: _Slot | None = None
        self.error: BaseException | None = None
        self.awaited: _Slot | None = None  # the chunk the reader sleeps for: only it wakes it
        self._inline = inline or pool.threads == 0

    def next_buffer(self) -> memoryview:
        """A buffer free to be filled; with the whole ring in flight, waits (helping) until half
        of it is hashed."""
        with self._lock:
            if self._current is None:
                if not self._free:
                    self._reap()
                if not self._free:
                    if self._owned < self._depth:
                        self._owned += 1
                        self._free.append(self._pool._take_slot(self._size))
                    else:
                        self._wait_for(
                            self._inflight[self._depth // 2 - 1 if self._depth > 1 else 0]
                        )
                        self._reap()
                self._current = self._free.pop()
            self._raise_error()
            return self._current.view

    def submit(self, n: int) -> memoryview:
        """Hand the first ``n`` bytes of the last :meth:`next_buffer` to every digest; returns
        them for the caller to write elsewhere (valid until the next ``next_buffer``)."""
        slot = self._current
        if slot is None:
            raise RuntimeError("submit() without next_buffer()")
        return self._submit(slot, slot.view[:n])

    def submit_view(self, data: memoryview) -> memoryview:
        """Hash ``data`` (bytes a reader returned) instead of the buffer's own bytes; it takes
        the buffer's place in the ring, so at most ``depth`` chunks are held at once."""
        if self._current is None:
            self.next_buffer()
        assert self._current is not None
        return self._submit(self._current, data)

    def _submit(self, slot: _Slot, chunk: memoryview) -> memoryview:
        self._current = None
        slot.chunk = chunk
        if self._inline or (len(chunk) < INLINE_BELOW and not self._inflight):
            try:
                for lane in self._lanes:
                    lane.update(chunk)
            finally:
                self._free.append(slot)
            return chunk
        with self._lock:
            slot.pending = len(self._lanes)
            self._inflight.append(slot)
            self._pool._schedule(self._lanes, slot)
        return chunk

    def wait(self) -> None:
        """Until every submitted chunk is hashed; raises an update's error."""
        with self._lock:
            self._drain()
            self._raise_error()

    def _drain(self) -> None:
        if self._inflight:
            self._wait_for(self._inflight[-1])  # in order: when the last is hashed, all are
            self._reap()

    def _wait_for(self, slot: _Slot) -> None:
        """Until ``slot`` and every chunk before it are hashed (lock held): each lane hashes
        its chunks in order, so when ``slot`` is done, so are they. Rather than sleep while one
        of this stream's lanes waits in the pool's queue, the reader runs that update itself:
        the pool's threads may all be busy with other streams, and a thread that sleeps and is
        woken per chunk costs CPU and time."""
        while slot.pending:
            for lane in self._lanes:
                if lane.queued and not lane.running:
                    self._pool._ready.remove(lane)
                    self._pool._update_once(lane)
                    break
            else:
                self.awaited = slot
                self.done.wait()
                self.awaited = None

    def _reap(self) -> None:
        inflight = self._inflight
        while inflight and inflight[0].pending == 0:
            self._free.append(inflight.popleft())

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Feed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._drain()
            if self._current is not None:
                self._free.append(self._current)
                self._current = None
            for slot in self._free:
                self._pool._give_slot(slot)
            self._free.clear()
            self._owned = 0
            if exc_type is None:
                self._raise_error()


def cpu_count() -> int:
    """CPUs this process may run on (a container's or ``taskset``'s limit, not the host's)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


_shared: HashPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> HashPool:
    """The process's pool, one thread per CPU, started on first use. Shared rather than one per
    build so that concurrent builds (or a build and a validation) split the cores instead of
    each starting as many threads as there are cores."""
    global _shared
    pool = _shared
    if pool is None:
        with _shared_lock:
            if _shared is None:
                _shared = HashPool(cpu_count())
            pool = _shared
    return pool


def _forget_shared_pool() -> None:
    """A forked child has none of its parent's threads: it starts its own pool when needed."""
    global _shared, _shared_lock
    _shared = None
    _shared_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_shared_pool)
