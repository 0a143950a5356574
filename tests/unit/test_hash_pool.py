"""The shared hashing threads: digests of one stream run at once on different threads, reading
overlaps hashing, chunks stay in order, and a failing stream neither hangs nor poisons the pool."""

from __future__ import annotations

import hashlib
import os
import select
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from steward.packaging.hash_pool import (
    DEFAULT_DEPTH,
    INLINE_BELOW,
    INLINE_STREAM_BELOW,
    HashPool,
    Update,
)
from steward.packaging.hashing import MultiHash, hash_file, pump

CHUNK = 2 * INLINE_BELOW  # large enough for chunks to go to the pool's threads
HANG_GUARD = 60  # seconds; only a hang reaches it


@pytest.fixture
def pool() -> Iterator[HashPool]:
    with HashPool(2) as p:
        yield p


def _reader(data: bytes) -> tuple[list[int], Callable[[memoryview], int]]:
    """A ``readinto`` over ``data`` that records how many reads were made."""
    calls: list[int] = []
    pos = 0

    def readinto(buf: memoryview) -> int:
        nonlocal pos
        n = min(len(buf), len(data) - pos)
        buf[:n] = data[pos : pos + n]
        pos += n
        calls.append(n)
        return n

    return calls, readinto


class _Rendezvous(MultiHash):
    """Every digest waits at its first update until all digests of the stream are in an update
    at the same time: only possible when they run on different threads at once."""

    def __init__(self) -> None:
        super().__init__(("sha256", "md5"))
        self.barrier = threading.Barrier(2, timeout=HANG_GUARD)
        self.threads: set[int] = set()

    def lanes(self) -> list[Update]:
        def meet(update: Update) -> Update:
            first = [True]

            def run(chunk: memoryview) -> object:
                self.threads.add(threading.get_ident())
                if first[0]:
                    first[0] = False
                    self.barrier.wait()
                return update(chunk)

            return run

        return [meet(u) for u in super().lanes()]


def test_sha256_and_md5_of_one_stream_run_at_once_on_two_threads(pool: HashPool) -> None:
    data = os.urandom(5 * CHUNK + 3)
    hasher = _Rendezvous()
    _calls, readinto = _reader(data)
    assert pump(readinto, hasher, chunk_size=CHUNK, pool=pool) == len(data)
    assert len(hasher.threads) >= 2  # the pool's threads, and the reader when it helps
    got = hasher.digests()
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.md5 == hashlib.md5(data).hexdigest()


def test_the_next_chunk_is_read_while_the_previous_one_is_hashed(pool: HashPool) -> None:
    data = os.urandom(4 * CHUNK)
    calls, readinto = _reader(data)
    second_read = threading.Event()

    def counting(buf: memoryview) -> int:
        n = readinto(buf)
        if len(calls) == 2:
            second_read.set()
        return n

    class Patient(MultiHash):
        def lanes(self) -> list[Update]:
            def wait_for_second_read(update: Update) -> Update:
                def run(chunk: memoryview) -> object:
                    assert second_read.wait(HANG_GUARD), "the reader waited for the hashing"
                    return update(chunk)

                return run

            return [wait_for_second_read(u) for u in super().lanes()]

    hasher = Patient()
    assert pump(counting, hasher, chunk_size=CHUNK, pool=pool) == len(data)
    assert hasher.digests().sha256 == hashlib.sha256(data).hexdigest()


def test_a_reader_never_holds_more_than_its_ring_of_chunks(pool: HashPool) -> None:
    data = os.urandom(12 * CHUNK)
    calls, readinto = _reader(data)
    release = threading.Event()
    reads_while_blocked: list[int] = []

    class Blocked(MultiHash):
        def lanes(self) -> list[Update]:
            def hold(update: Update) -> Update:
                def run(chunk: memoryview) -> object:
                    if not release.is_set():
                        # the reader filled every buffer of its ring and now waits for this one
                        threading.Timer(0.2, release.set).start()
                        release.wait(HANG_GUARD)
                        reads_while_blocked.append(len(calls))
                    return update(chunk)

                return run

            return [hold(u) for u in super().lanes()]

    hasher = Blocked(("sha256",))
    assert pump(readinto, hasher, chunk_size=CHUNK, pool=pool) == len(data)
    assert len(reads_while_blocked) == 1
    assert reads_while_blocked[0] <= DEFAULT_DEPTH
    assert hasher.digests().sha256 == hashlib.sha256(data).hexdigest()


def test_an_update_that_fails_is_raised_to_its_reader_and_the_pool_goes_on(
    pool: HashPool,
) -> None:
    good = os.urandom(6 * CHUNK)

    class Broken(MultiHash):
        def lanes(self) -> list[Update]:
            def boom(chunk: memoryview) -> object:
                raise RuntimeError("digest failed")

            return [super().lanes()[0], boom]

    results: dict[str, object] = {}

    def broken() -> None:
        _calls, readinto = _reader(good)
        try:
            pump(readinto, Broken(), chunk_size=CHUNK, pool=pool)
        except RuntimeError as exc:
            results["broken"] = str(exc)

    def healthy() -> None:
        _calls, readinto = _reader(good)
        hasher = MultiHash()
        pump(readinto, hasher, chunk_size=CHUNK, pool=pool)
        results["healthy"] = hasher.digests().sha256

    threads = [threading.Thread(target=f) for f in (broken, healthy, broken, healthy)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD)
    assert not any(t.is_alive() for t in threads), "a reader hangs"
    assert results == {"broken": "digest failed", "healthy": hashlib.sha256(good).hexdigest()}
    # the same threads still serve new streams
    _calls, readinto = _reader(good)
    hasher = MultiHash()
    pump(readinto, hasher, chunk_size=CHUNK, pool=pool)
    assert hasher.digests().md5 == hashlib.md5(good).hexdigest()


def test_a_reader_that_fails_mid_stream_leaves_no_chunk_in_flight(pool: HashPool) -> None:
    data = os.urandom(8 * CHUNK)
    calls, readinto = _reader(data)
    hashed: list[int] = []

    class Recording(MultiHash):
        def lanes(self) -> list[Update]:
            def record(chunk: memoryview) -> object:
                hashed.append(len(chunk))
                return None

            return [record]

    def failing(buf: memoryview) -> int:
        if len(calls) == 3:
            raise OSError(5, "Input/output error")
        return readinto(buf)

    with pytest.raises(OSError, match="Input/output"):
        pump(failing, Recording(), chunk_size=CHUNK, pool=pool)
    assert hashed == [CHUNK] * 3  # every chunk read was hashed before pump raised


def test_many_streams_on_few_threads_each_get_their_own_digests() -> None:
    blobs = [os.urandom(CHUNK * k + k) for k in range(12)]
    got: dict[int, tuple[str, str]] = {}

    def one(i: int) -> None:
        _calls, readinto = _reader(blobs[i])
        hasher = MultiHash()
        pump(readinto, hasher, chunk_size=CHUNK, pool=pool)
        got[i] = (hasher.digests().sha256, hasher.digests().md5)

    with HashPool(3) as pool:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(blobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD)
    assert got == {
        i: (hashlib.sha256(b).hexdigest(), hashlib.md5(b).hexdigest()) for i, b in enumerate(blobs)
    }


def test_a_pool_without_threads_hashes_inline() -> None:
    data = os.urandom(3 * CHUNK + 1)
    hasher = _Rendezvous()
    hasher.barrier = threading.Barrier(1)
    _calls, readinto = _reader(data)
    with HashPool(0) as pool:
        pump(readinto, hasher, chunk_size=CHUNK, pool=pool)
    assert hasher.threads == {threading.get_ident()}
    assert hasher.digests().md5 == hashlib.md5(data).hexdigest()


def test_negative_thread_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        HashPool(-1)


def test_a_forked_child_hashes_with_threads_of_its_own(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert hash_file(path, chunk_size=CHUNK).size == len(data)  # the parent's pool is running
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: none of the parent's threads exist here
        try:
            os.write(write_end, hash_file(path, chunk_size=CHUNK).sha256.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], HANG_GUARD)
        got = os.read(read_end, 100).decode() if ready else ""
    finally:
        os.close(read_end)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert got == hashlib.sha256(data).hexdigest(), "the child hangs waiting for its digests"


def test_a_reader_hashes_its_own_chunks_while_every_pool_thread_is_busy() -> None:
    pool_thread_stuck, other_done = threading.Event(), threading.Event()

    class Stuck(MultiHash):
        def lanes(self) -> list[Update]:
            def hold_the_pool_thread(chunk: memoryview) -> object:
                if threading.current_thread().name.startswith("hash-"):
                    pool_thread_stuck.set()
                    assert other_done.wait(HANG_GUARD), "the other stream waited for the pool"
                return None

            return [hold_the_pool_thread]

    data = os.urandom(5 * CHUNK)
    got: dict[str, str] = {}

    def until_a_pool_thread_is_stuck(buf: memoryview) -> int:
        return 0 if pool_thread_stuck.is_set() else len(buf)

    def stuck() -> None:
        pump(until_a_pool_thread_is_stuck, Stuck(), chunk_size=CHUNK, pool=pool)

    def other() -> None:
        _calls, readinto = _reader(data)
        hasher = MultiHash()
        pump(readinto, hasher, chunk_size=CHUNK, pool=pool)
        got["md5"] = hasher.digests().md5
        other_done.set()

    with HashPool(1) as pool:
        threads = [threading.Thread(target=stuck), threading.Thread(target=other)]
        threads[0].start()
        assert pool_thread_stuck.wait(HANG_GUARD)  # the pool's only thread is taken
        threads[1].start()
        for t in threads:
            t.join(HANG_GUARD)
    assert got == {"md5": hashlib.md5(data).hexdigest()}


class _Where(MultiHash):
    """Records which threads ran the digests."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def lanes(self) -> list[Update]:
        def record(update: Update) -> Update:
            def run(chunk: memoryview) -> object:
                self.threads.add(threading.get_ident())
                return update(chunk)

            return run

        return [record(u) for u in super().lanes()]


def test_a_stream_announced_small_is_hashed_by_its_reader_alone(pool: HashPool) -> None:
    data = os.urandom(INLINE_STREAM_BELOW - 1)
    small = _Where()
    _calls, readinto = _reader(data)
    pump(readinto, small, chunk_size=CHUNK, pool=pool, size_hint=len(data))
    assert small.threads == {threading.get_ident()}
    assert small.digests().sha256 == hashlib.sha256(data).hexdigest()

    grown = _Where()
    data += os.urandom(3 * CHUNK)  # a stream longer than its hint is still read to its end
    _calls, readinto = _reader(data)
    pump(readinto, grown, chunk_size=CHUNK, pool=pool, size_hint=CHUNK)
    assert grown.digests().md5 == hashlib.md5(data).hexdigest()
    assert grown.digests().size == len(data)
