"""The push engine against a real S3 server (SeaweedFS) and a local folder."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from steward.adapters import s3api
from steward.adapters.storage import Store, Writer, open_store
from steward.adapters.store_local import LocalStore
from steward.adapters.store_s3 import S3Store
from steward.adapters.transfer import (
    SHA256_KEY,
    TransferItem,
    TransferResult,
    TransferStopped,
    multipart_etag,
    transfer,
)
from steward.errors import Conflict, NotFound, ValidationFailed
from tests.s3 import SeaweedFS, loopback_env

MiB = 1 << 20
PART = 5 * MiB


def make_tree(root: Path, sizes: Mapping[str, int]) -> None:
    for rel, size in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def items_for(src: Store, prefix: str = "pkg", *, with_md5: bool = True) -> list[TransferItem]:
    out = []
    for info in src.list():
        data = src.read(info.key)
        out.append(
            TransferItem(
                src,
                info.key,
                f"{prefix}/{info.key}",
                info.size,
                hashlib.sha256(data).hexdigest(),
                hashlib.md5(data).hexdigest() if with_md5 else None,
            )
        )
    return out


def assert_delivered(src: Store, dest: Store, items: list[TransferItem]) -> None:
    for item in items:
        assert dest.read(item.dest_key) == src.read(item.source_key), item.dest_key


SIZES = {
    "data/a.txt": 10,
    "data/empty.txt": 0,
    "data/sub/b.bin": 300_000,
    "data/big.bin": 2 * PART + 123,  # three parts
    "report.html": 2_000,
}


@pytest.fixture
def source(tmp_path: Path) -> Store:
    make_tree(tmp_path / "src", SIZES)
    return open_store(tmp_path / "src")


@pytest.fixture(params=["s3", "local"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return open_store(tmp_path / "dest")
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    bucket: str = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/shares", server.config())


def leftovers(dest: Store) -> list[str]:
    """Pending multipart uploads or temporary files: what an interrupted write leaves."""
    if isinstance(dest, S3Store):
        return [u.key for u in s3api.list_uploads(dest.cfg, dest.bucket)]
    assert isinstance(dest, LocalStore)
    return [p.name for p in dest.root.rglob(".*") if p.is_file()]


def test_push_delivers_verified_objects(source: Store, dest: Store) -> None:
    items = items_for(source)
    done: list[TransferResult] = []
    sent: list[int] = []
    summary = transfer(items, dest, part_size=PART, on_done=done.append, on_progress=sent.append)
    assert_delivered(source, dest, items)
    assert sorted(r.dest_key for r in done) == sorted(i.dest_key for i in items)
    assert not any(r.skipped for r in done)
    assert (summary.transferred, summary.skipped) == (len(items), 0)
    assert sum(sent) == summary.bytes_sent == sum(SIZES.values())
    assert [o.key for o in dest.list()] == sorted(i.dest_key for i in items)
    if isinstance(dest, S3Store):
        big = dest.stat("pkg/data/big.bin")
        data = source.read("data/big.bin")
        parts = [hashlib.md5(data[i : i + PART]).digest() for i in range(0, len(data), PART)]
        assert big.etag == multipart_etag(parts)
        assert big.etag.endswith("-3")
        by_key = {r.dest_key: r for r in done}
        assert big.metadata == {SHA256_KEY: by_key["pkg/data/big.bin"].sha256}
        assert (
            dest.stat("pkg/data/a.txt").etag == hashlib.md5(source.read("data/a.txt")).hexdigest()
        )
    assert leftovers(dest) == []


def test_rerun_skips_everything(source: Store, dest: Store) -> None:
    items = items_for(source)
    transfer(items, dest, part_size=PART)
    done: list[TransferResult] = []
    sent: list[int] = []
    summary = transfer(items, dest, part_size=PART, on_done=done.append, on_progress=sent.append)
    assert (summary.transferred, summary.skipped, summary.bytes_sent) == (0, len(items), 0)
    assert sent == []
    assert len(done) == len(items)
    assert all(r.skipped for r in done)


def test_rerun_skips_when_only_the_sha256_is_known(source: Store, dest: Store) -> None:
    """Multipart ETags and local files are checked through SHA-256, not MD5."""
    items = items_for(source, with_md5=False)
    transfer(items, dest, part_size=PART)
    summary = transfer(items, dest, part_size=PART)
    assert summary.skipped == len(items)


def test_resume_redoes_only_missing_and_wrong_objects(source: Store, dest: Store) -> None:
    items = items_for(source)
    transfer([i for i in items if i.dest_key != "pkg/data/big.bin"], dest, part_size=PART)
    a = source.read("data/a.txt")
    dest.write("pkg/data/a.txt", bytes([a[0] ^ 1]) + a[1:])  # same size, wrong bytes
    dest.write("pkg/report.html", b"truncated")  # wrong size
    done: list[TransferResult] = []
    summary = transfer(items, dest, part_size=PART, on_done=done.append)
    redone = sorted(r.dest_key for r in done if not r.skipped)
    assert redone == ["pkg/data/a.txt", "pkg/data/big.bin", "pkg/report.html"]
    assert summary.skipped == len(items) - 3
    assert_delivered(source, dest, items)


def test_a_changed_source_is_refused_and_nothing_written(source: Store, dest: Store) -> None:
    items = items_for(source)
    target = next(i for i in items if i.source_key == "data/big.bin")
    stale = TransferItem(source, target.source_key, target.dest_key, target.size, "0" * 64, None)
    others = [i for i in items if i is not target]
    with pytest.raises(Conflict, match=r"data/big\.bin changed since the package was built"):
        transfer([*others, stale], dest, part_size=PART)
    assert not dest.exists(target.dest_key)
    assert_delivered(source, dest, others)  # the others still went
    assert leftovers(dest) == []


class _Corrupting:
    """A writer that flips one bit of what it is given: a fault on the way to the store."""

    def __init__(self, inner: Writer) -> None:
        self.inner = inner
        self.part_size = inner.part_size
        self.flipped = False

    def write(self, data: bytes | bytearray | memoryview, /) -> None:
        if not self.flipped and len(data):
            data = bytes([data[0] ^ 1]) + bytes(data[1:])
            self.flipped = True
        self.inner.write(data)


@contextmanager
def _corrupting(inner: AbstractContextManager[Writer]) -> Iterator[Writer]:
    with inner as w:
        yield _Corrupting(w)


def test_verification_catches_damage_in_transit(
    seaweedfs: SeaweedFS, s3_bucket: str, source: Store
) -> None:
    class FaultyS3(S3Store):
        def open_writer(self, key: str, **kw: object) -> AbstractContextManager[Writer]:  # type: ignore[override]
            return _corrupting(super().open_writer(key, **kw))  # type: ignore[arg-type]

    dest = FaultyS3(s3_bucket, "shares", seaweedfs.config())
    items = [i for i in items_for(source) if i.source_key in ("data/a.txt", "data/big.bin")]
    with pytest.raises(Conflict) as caught:
        transfer(items, dest, part_size=PART)
    assert "2 of 2 objects could not be copied" in caught.value.message
    assert {d.field for d in caught.value.details} == {"pkg/data/a.txt", "pkg/data/big.bin"}
    assert all("did not arrive intact" in d.message for d in caught.value.details)
    assert list(dest.list()) == []  # the damaged objects were removed


def test_missing_bucket_stops_before_any_data_moves(seaweedfs: SeaweedFS, source: Store) -> None:
    dest = open_store("s3://not-made-yet/x", seaweedfs.config())
    sent: list[int] = []
    with pytest.raises(NotFound, match="bucket 'not-made-yet' does not exist"):
        transfer(items_for(source), dest, on_progress=sent.append)
    assert sent == []


def test_duplicate_and_escaping_keys_are_all_reported(source: Store, dest: Store) -> None:
    items = items_for(source)
    bad = [
        *items,
        TransferItem(source, "data/a.txt", items[0].dest_key, 10, "x"),
        TransferItem(source, "data/a.txt", "../outside", 10, "x"),
    ]
    with pytest.raises(ValidationFailed) as caught:
        transfer(bad, dest)
    assert [d.row for d in caught.value.details] == [len(items) + 1, len(items) + 2]
    assert list(dest.list()) == []


def test_should_stop_aborts_cleanly(source: Store, dest: Store) -> None:
    items = items_for(source)
    with pytest.raises(TransferStopped, match="run it again"):
        transfer(items, dest, part_size=PART, concurrency=1, should_stop=lambda: True)
    for info in dest.list():  # whatever arrived is whole
        item = next(i for i in items if i.dest_key == info.key)
        assert dest.read(info.key) == source.read(item.source_key)
    assert leftovers(dest) == []
    summary = transfer(items, dest, part_size=PART)
    assert summary.transferred + summary.skipped == len(items)
    assert_delivered(source, dest, items)


# -- kill -9 in the middle -------------------------------------------------------------------

_PUSHER = textwrap.dedent(
    """
    import json, sys, time
    from steward.adapters import transfer as tx
    from steward.adapters.storage import open_store
    from steward.adapters.store_local import LocalStore
    from steward.config import S3Config

    args = json.loads(sys.argv[1])
    tx.BLOCK = 256 << 10

    class SlowReader:
        def __init__(self, inner):
            self.inner = inner
        def read(self, n=-1):
            time.sleep(0.02)
            return self.inner.read(n)

    class SlowSource(LocalStore):
        def open_reader(self, key, chunk_size=8 << 20):
            import contextlib
            @contextlib.contextmanager
            def cm():
                with LocalStore.open_reader(self, key, chunk_size) as r:
                    yield SlowReader(r)
            return cm()

    src = SlowSource(__import__("pathlib").Path(args["src"]))
    dest = open_store(args["dest"], S3Config(**args["s3"]) if args["s3"] else None)
    items = [tx.TransferItem(src, k, "pkg/" + k, s, h, None) for k, s, h in args["items"]]

    def progress(n):
        print(n, flush=True)

    tx.transfer(items, dest, concurrency=2, part_size=5 << 20, on_progress=progress)
    print("finished", flush=True)
    """
)


def test_kill_9_mid_transfer_then_rerun_completes(
    source: Store, dest: Store, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", {f"more/{i}.bin": 700_000 for i in range(6)})
    items = items_for(source, with_md5=False)
    total = sum(i.size for i in items)
    s3 = None
    if isinstance(dest, S3Store):
        c = dest.cfg
        s3 = {
            "endpoint": c.endpoint,
            "region": c.region,
            "access_key_id": c.access_key_id,
            "secret_access_key": c.secret_access_key,
        }
    args = {
        "src": str(tmp_path / "src"),
        "dest": dest.url,
        "s3": s3,
        "items": [[i.source_key, i.size, i.sha256] for i in items],
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _PUSHER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=loopback_env(),
    )
    sent = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        sent += int(line) if line.strip().isdigit() else 0
        if sent >= total // 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    if proc.stdout:
        proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()

    # No half object is visible: whatever is there is complete.
    present = {o.key for o in dest.list()}
    for item in items:
        if item.dest_key in present:
            assert dest.read(item.dest_key) == source.read(item.source_key), item.dest_key
    assert len(present) < len(items)

    done: list[TransferResult] = []
    summary = transfer(items, dest, part_size=PART, on_done=done.append)
    assert {r.dest_key for r in done if r.skipped} == present  # nothing complete redone
    assert summary.transferred == len(items) - len(present)
    assert_delivered(source, dest, items)
    assert leftovers(dest) == []
