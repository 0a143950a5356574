"""Streaming multi-algorithm hashing: one pass gives what hashlib gives algorithm by algorithm."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.packaging.hash_pool import INLINE_BELOW, INLINE_STREAM_BELOW, HashPool, shared_pool
from steward.packaging.hashing import (
    DEFAULT_ALGORITHMS,
    MultiHash,
    Stopped,
    copy_and_hash,
    copy_range_and_hash,
    hash_bytes,
    hash_file,
    pump,
    pump_fd,
    pump_stream,
)


def _separately(data: bytes, algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS) -> dict[str, str]:
    return {name: hashlib.new(name, data).hexdigest() for name in algorithms}


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), chunk=st.integers(min_value=1, max_value=6000))
def test_one_pass_equals_hashlib_per_algorithm(data: bytes, chunk: int) -> None:
    mh = MultiHash(("sha256", "md5", "sha1", "sha512"))
    for start in range(0, len(data), chunk):
        mh.update(data[start : start + chunk])
    got = mh.digests()
    assert got.size == len(data)
    assert dict(got.hexdigests) == _separately(data, ("sha256", "md5", "sha1", "sha512"))


def test_empty_input_gives_the_well_known_empty_digests(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    got = hash_file(empty)
    assert got.size == 0
    assert got.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert got.md5 == "d41d8cd98f00b204e9800998ecf8427e"
    assert hash_bytes(b"") == got


@pytest.mark.parametrize(
    "chunk_size",
    [1, 7, 4096, 65_536, 65_537, 1 << 20, 64 << 20],  # down to 1 byte; up to far above the file
)
@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 300_000])
def test_chunk_sizes_at_and_around_the_file_size(
    tmp_path: Path, chunk_size: int, size: int
) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    seen: list[int] = []
    got = hash_file(path, chunk_size=chunk_size, on_chunk=seen.append)
    assert dict(got.hexdigests) == _separately(data)
    assert got.size == size == sum(seen)
    assert all(0 < n <= chunk_size for n in seen)


def test_copy_writes_exactly_the_bytes_it_hashes(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 123)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    fd_in = os.open(src, os.O_RDONLY)
    fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        got = copy_and_hash(fd_in, fd_out, chunk_size=1 << 20)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert dst.read_bytes() == data
    assert dict(got.hexdigests) == _separately(data)


class _Trickle(io.RawIOBase):
    """A reader that returns at most a few bytes per call, as sockets and pipes may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(self._step, len(buffer), len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def test_short_reads_are_continued_until_the_end() -> None:
    data = os.urandom(10_000)
    mh = MultiHash()
    out = bytearray()
    total = pump(_Trickle(data, 3).readinto, mh, sink=out.extend, chunk_size=1024)
    assert total == len(data)
    assert bytes(out) == data
    assert dict(mh.digests().hexdigests) == _separately(data)


def test_streams_without_readinto_hash_the_same() -> None:
    data = os.urandom(50_000)
    mh = MultiHash()
    assert pump_stream(io.BytesIO(data), mh, chunk_size=4096) == len(data)
    assert mh.digests() == hash_bytes(data)


def test_should_stop_interrupts_between_chunks(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(100_000))
    calls: list[int] = []
    with pytest.raises(Stopped):
        hash_file(
            path, chunk_size=10_000, on_chunk=calls.append, should_stop=lambda: len(calls) >= 3
        )
    assert len(calls) == 3


def test_algorithms_are_deduplicated_and_required() -> None:
    assert MultiHash(["md5", "md5", "sha256"]).algorithms == ("md5", "sha256")
    with pytest.raises(ValueError, match="at least one"):
        MultiHash([])
    with pytest.raises(ValueError, match="chunk_size"):
        pump(io.BytesIO(b"x").readinto, MultiHash(), chunk_size=0)


def test_in_kernel_copy_hashes_the_bytes_it_wrote(tmp_path: Path) -> None:
    data = os.urandom(5 * (1 << 20) + 17)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    seen: list[int] = []
    mh = MultiHash()
    fd_in = os.open(src, os.O_RDONLY)
    fd_out = os.open(dst, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        copied = copy_range_and_hash(fd_in, fd_out, mh, chunk_size=1 << 20, on_chunk=seen.append)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert copied == len(data) == sum(seen)
    assert dst.read_bytes() == data
    assert dict(mh.digests().hexdigests) == _separately(data)


def test_in_kernel_copy_declines_what_it_cannot_copy(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()  # a pipe is no file: copy_file_range refuses it
    os.write(write_end, b"data")
    os.close(write_end)
    fd_out = os.open(tmp_path / "dst", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mh = MultiHash()
        assert copy_range_and_hash(read_end, fd_out, mh) is None
        assert mh.size == 0
    finally:
        os.close(read_end)
        os.close(fd_out)


PARALLEL_CHUNK = 2 * INLINE_BELOW  # chunks this large are hashed on the pool's threads
EDGE_SIZES = [
    0,
    1,
    PARALLEL_CHUNK - 1,
    PARALLEL_CHUNK,
    PARALLEL_CHUNK + 1,
    9 * PARALLEL_CHUNK + 7,  # many chunks, the ring of buffers reused several times
    # files announced this large go to the pool's threads, smaller ones stay with their reader
    INLINE_STREAM_BELOW - 1,
    INLINE_STREAM_BELOW,
    INLINE_STREAM_BELOW + 1,
    INLINE_STREAM_BELOW + 9 * PARALLEL_CHUNK + 7,
]


@pytest.fixture(params=["two threads", "three threads", "shared"])
def any_pool(request: pytest.FixtureRequest) -> Iterator[HashPool]:
    if request.param == "shared":
        yield shared_pool()
        return
    with HashPool(2 if request.param == "two threads" else 3) as pool:
        yield pool


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_parallel_digests_equal_hashlib_at_edge_sizes(
    tmp_path: Path, size: int, any_pool: HashPool
) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    seen: list[int] = []
    got = hash_file(path, chunk_size=PARALLEL_CHUNK, on_chunk=seen.append, pool=any_pool)
    assert dict(got.hexdigests) == _separately(data)
    assert got.size == size == sum(seen)

    mh = MultiHash()
    assert pump_stream(io.BytesIO(data), mh, chunk_size=PARALLEL_CHUNK, pool=any_pool) == size
    assert mh.digests() == got

    mh = MultiHash()  # no size announced: every chunk to the pool, whatever the size
    fd = os.open(path, os.O_RDONLY)
    try:
        assert pump_fd(fd, mh, chunk_size=PARALLEL_CHUNK, pool=any_pool) == size
    finally:
        os.close(fd)
    assert mh.digests() == got


@pytest.mark.parametrize("size", EDGE_SIZES)
@pytest.mark.parametrize("in_kernel", [True, False])
def test_parallel_copies_write_and_hash_the_same_bytes_at_edge_sizes(
    tmp_path: Path, size: int, in_kernel: bool, any_pool: HashPool
) -> None:
    data = os.urandom(size)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    fd_in = os.open(src, os.O_RDONLY)
    fd_out = os.open(dst, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if in_kernel:
            mh = MultiHash()
            copied = copy_range_and_hash(
                fd_in, fd_out, mh, chunk_size=PARALLEL_CHUNK, pool=any_pool
            )
            assert copied == size
            got = mh.digests()
        else:
            got = copy_and_hash(fd_in, fd_out, chunk_size=PARALLEL_CHUNK, pool=any_pool)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert dst.read_bytes() == data
    assert got.size == size
    assert dict(got.hexdigests) == _separately(data)


def test_a_file_shrinking_mid_read_gives_the_digests_of_what_was_read(
    tmp_path: Path, any_pool: HashPool
) -> None:
    data = os.urandom(INLINE_STREAM_BELOW + 8 * PARALLEL_CHUNK)  # hashed on the pool's threads
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    cut = 3 * PARALLEL_CHUNK + 5

    def shrink_once(n: int) -> None:
        if os.path.getsize(path) > cut:
            os.truncate(path, cut)

    got = hash_file(path, chunk_size=PARALLEL_CHUNK, on_chunk=shrink_once, pool=any_pool)
    # every chunk read before and after the cut was hashed once, in order, and nothing else
    assert got.size == cut
    assert dict(got.hexdigests) == _separately(data[:cut])
