"""The bag builder's digests are hashlib's, byte for byte, at every size where the hashing
changes path: empty, one byte, around a chunk, around the size from which files are hashed on
the shared threads, and many chunks — in every mode, several files at once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from steward.packaging import bag
from steward.packaging.hash_pool import INLINE_STREAM_BELOW
from tests.integration.test_bag_faults import INFO, write_sources

CHUNK = 256 << 10
SIZES = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    INLINE_STREAM_BELOW - 1,  # the last size its reader hashes alone
    INLINE_STREAM_BELOW,  # the first size hashed on the shared threads
    INLINE_STREAM_BELOW + 1,
    INLINE_STREAM_BELOW + 9 * CHUNK + 7,  # many chunks: the ring of buffers reused
]


@pytest.mark.parametrize("mode", ["copy", "link", "fetch"])
def test_every_digest_is_hashlibs_at_the_edges(tmp_path: Path, mode: bag.Mode) -> None:
    files = {f"S/size-{size}.bin": os.urandom(size) for size in SIZES}
    entries = write_sources(tmp_path / "src", files)
    out = tmp_path / "bag"
    built = bag.build_payload(out, entries, mode=mode, workers=3, chunk_size=CHUNK)
    assert {b.relpath: (b.size, b.sha256, b.md5) for b in built} == {
        rel: (len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())
        for rel, data in files.items()
    }
    if mode != "fetch":
        for rel, data in files.items():
            assert (out / "data" / rel).read_bytes() == data
    bag.finish_bag(out, INFO, built, fetch=mode == "fetch")
    assert bag.validate_bag(out, full=True) == []
