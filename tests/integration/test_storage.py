"""The storage adapter's contract, run against a local folder and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from steward.adapters import s3api, store_local, store_s3
from steward.adapters.storage import S3Config, Store, open_store, split_url
from steward.adapters.store_s3 import S3Store
from steward.errors import ConfigurationError, NotFound, StorageDenied, ValidationFailed
from tests.s3 import SeaweedFS, fetch

# -- the S3 server itself checks what AWS checks --------------------------------------------


def test_seaweedfs_refuses_a_wrong_secret(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    good = s3api.request(seaweedfs.config(), "PUT", s3_bucket, "k.txt", body=b"x")
    bad = s3api.request(seaweedfs.bad_config(), "PUT", s3_bucket, "k2.txt", body=b"x")
    assert good.status == 200
    assert (bad.status, bad.error_code) == (403, "SignatureDoesNotMatch")


def test_seaweedfs_read_only_pair_cannot_write(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    ro = seaweedfs.readonly_config()
    assert s3api.request(seaweedfs.config(), "PUT", s3_bucket, "k.txt", body=b"x").status == 200
    assert s3api.request(ro, "GET", s3_bucket, "k.txt").body == b"x"
    denied = s3api.request(ro, "PUT", s3_bucket, "k.txt", body=b"y")
    assert (denied.status, denied.error_code) == (403, "AccessDenied")


def test_seaweedfs_checks_link_expiry(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    """Links signed an hour ago: one still inside its lifetime, one past it."""
    cfg = seaweedfs.config()
    assert s3api.request(cfg, "PUT", s3_bucket, "d/f.txt", body=b"data").status == 200
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    alive = s3api.presign(cfg, "GET", s3_bucket, "d/f.txt", 7200, now=an_hour_ago)
    expired = s3api.presign(cfg, "GET", s3_bucket, "d/f.txt", 1800, now=an_hour_ago)
    forged = s3api.presign(seaweedfs.bad_config(), "GET", s3_bucket, "d/f.txt", 7200)
    assert fetch(alive) == (200, b"data")
    status, body = fetch(expired)
    assert status == 403
    assert b"expired" in body
    assert fetch(forged)[0] == 403


def test_seaweedfs_has_no_bucket_until_created(seaweedfs: SeaweedFS) -> None:
    resp = s3api.request(seaweedfs.config(), "PUT", "never-made", "k.txt", body=b"x")
    assert (resp.status, resp.error_code) == (404, "NoSuchBucket")


# -- the contract, for every kind of store --------------------------------------------------

MiB = 1 << 20


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return open_store(tmp_path / "root")
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    bucket: str = request.getfixturevalue("s3_bucket")
    s3 = open_store(f"s3://{bucket}/root/", server.config())
    assert isinstance(s3, S3Store)
    s3.part_size = 5 * MiB  # S3's smallest, so "large" stays small here
    return s3


def _pending_leftovers(store: Store, tmp_path: Path) -> list[str]:
    """Interrupted-write debris: S3 multipart uploads, or temporary files in the folder."""
    if isinstance(store, S3Store):
        return [u.key for u in s3api.list_uploads(store.cfg, store.bucket)]
    return [p.name for p in (tmp_path / "root").rglob("*") if p.is_file()]


def test_small_object_round_trip(store: Store) -> None:
    store.write("./a//b.txt", b"hello")
    info = store.stat("a/b.txt")
    assert (info.key, info.size) == ("a/b.txt", 5)
    assert info.last_modified is not None
    assert info.last_modified.tzinfo is not None
    if store.is_local:
        assert info.etag is None
        assert info.mtime_ns
    else:
        assert info.etag == hashlib.md5(b"hello").hexdigest()
    assert store.exists("a/b.txt")
    assert not store.exists("a/c.txt")
    assert store.read("a/b.txt") == b"hello"


def test_missing_object_is_not_found_naming_it(store: Store) -> None:
    with pytest.raises(NotFound, match=r"nothing/here\.txt does not exist"):
        store.stat("nothing/here.txt")
    with pytest.raises(NotFound, match=r"nothing/here\.txt"):
        store.read("nothing/here.txt")


def test_list_is_recursive_sorted_and_reads_every_page(store: Store) -> None:
    keys = [f"d{i % 3}/sub{i % 2}/f{i:02d}.txt" for i in range(25)] + ["top.txt", "d10/x.txt"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.write(k, k.encode()), keys))
    if isinstance(store, S3Store):
        store.list_page_size = 7  # four pages or more
    listed = list(store.list())
    assert [o.key for o in listed] == sorted(keys)
    assert all(o.size == len(o.key) for o in listed)
    in_d1 = [o.key for o in store.list("d1")]
    assert in_d1 == sorted(k for k in keys if k.startswith("d1/"))
    assert "d10/x.txt" not in in_d1  # a prefix is a folder, not a string prefix
    assert list(store.list("no/such/folder")) == []


def test_list_beyond_one_default_page(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    """1,100 objects: more than the 1,000 one ListObjectsV2 answer holds."""
    store = open_store(f"s3://{s3_bucket}", seaweedfs.config())
    keys = [f"many/{i:05d}" for i in range(1100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: store.write(k, b"."), keys))
    assert [o.key for o in store.list("many")] == keys


def test_ranged_reads(store: Store) -> None:
    data = bytes(range(256)) * 40
    store.write("r.bin", data)
    assert store.read("r.bin", 10, 5) == data[10:15]
    assert store.read("r.bin", 10_000) == data[10_000:]
    assert store.read("r.bin", len(data) - 3, 100) == data[-3:]
    assert store.read("r.bin", 0, 0) == b""


def test_streaming_read(store: Store) -> None:
    data = os.urandom(3 * MiB + 17)
    store.write("s.bin", data)
    pieces = []
    with store.open_reader("s.bin", chunk_size=MiB) as reader:
        while piece := reader.read(700_000):
            assert len(piece) <= 700_000
            pieces.append(piece)
    assert b"".join(pieces) == data
    with pytest.raises(NotFound), store.open_reader("missing.bin") as reader:
        reader.read(10)


def test_large_write_is_multipart_and_exact(store: Store) -> None:
    data = os.urandom(12 * MiB + 5)
    with store.open_writer("big/x.bin", size_hint=len(data), metadata={"sha256": "abc"}) as w:
        for i in range(0, len(data), MiB):
            w.write(data[i : i + MiB])
    info = store.stat("big/x.bin")
    assert info.size == len(data)
    assert store.read("big/x.bin") == data
    if isinstance(store, S3Store):
        part = 5 * MiB
        digests = b"".join(
            hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part)
        )
        assert info.etag == f"{hashlib.md5(digests).hexdigest()}-3"
        assert info.metadata == {"sha256": "abc"}


def test_aborted_writer_leaves_nothing(store: Store, tmp_path: Path) -> None:
    store.write("keep.txt", b"k")

    def interrupted(size: int) -> None:
        with store.open_writer("half.bin") as w:
            for i in range(0, size, MiB):
                w.write(os.urandom(min(MiB, size - i)))
            raise RuntimeError("boom")

    for size in (100, 12 * MiB):  # one buffered, one mid-multipart
        with pytest.raises(RuntimeError, match="boom"):
            interrupted(size)
        assert not store.exists("half.bin")
    assert [o.key for o in store.list()] == ["keep.txt"]
    assert _pending_leftovers(store, tmp_path) == ([] if not store.is_local else ["keep.txt"])


def test_overwrite_replaces_whole_object(store: Store) -> None:
    store.write("o.txt", b"a much longer first version")
    store.write("o.txt", b"short")
    assert store.read("o.txt") == b"short"


def test_copy_and_delete(store: Store) -> None:
    store.write("src/a.txt", b"payload", metadata={"sha256": "s"})
    store.copy("src/a.txt", "dst/b.txt")
    assert store.read("dst/b.txt") == b"payload"
    assert store.read("src/a.txt") == b"payload"
    store.delete("src/a.txt")
    assert not store.exists("src/a.txt")
    store.delete("src/a.txt")  # deleting twice is fine
    assert [o.key for o in store.list()] == ["dst/b.txt"]
    with pytest.raises(NotFound):
        store.copy("src/a.txt", "dst/c.txt")


@pytest.mark.parametrize(
    "bad", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "a\\b.txt", "a/\x00b", ""]
)
def test_keys_may_not_leave_the_root(store: Store, bad: str) -> None:
    for attempt in (
        lambda: store.write(bad, b"x"),
        lambda: store.stat(bad),
        lambda: store.read(bad),
        lambda: store.delete(bad),
    ):
        with pytest.raises(ValidationFailed) as caught:
            attempt()
        assert caught.value.details
        assert all(d.field == "key" for d in caught.value.details)
    with pytest.raises(ValidationFailed):
        list(store.list("../x"))


def test_check_writable_passes_and_leaves_nothing(store: Store, tmp_path: Path) -> None:
    store.check_writable()
    assert list(store.list()) == []
    assert _pending_leftovers(store, tmp_path) == []


def test_check_writable_without_unnamed_files_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where O_TMPFILE is missing the probe has a name; it is gone once the check returns."""
    monkeypatch.setattr(store_local, "_write_unnamed", lambda folder: False)
    store = open_store(tmp_path / "root")
    store.check_writable()
    assert list((tmp_path / "root").iterdir()) == []


def test_a_probe_left_by_a_killed_check_is_swept(store: Store, tmp_path: Path) -> None:
    """kill -9 between writing and removing check_writable()'s probe: the next transfer's
    clean-up removes it, whatever keys it names, and nothing else."""
    store.write("keep.txt", b"k")
    if isinstance(store, S3Store):
        s3api.create_upload(store.cfg, store.bucket, f"root/{store_s3.PROBE_PREFIX}0badc0de")
    else:
        probe = tmp_path / "root" / f"{store_local.PROBE_PREFIX}00000badc0de.steward-part"
        probe.write_bytes(b"")
        # a key's own temporary file, though its name starts like a probe: not swept
        (tmp_path / "root" / ".probe-results.csv.0123456789ab.steward-part").write_bytes(b"x")
    before = sorted(_pending_leftovers(store, tmp_path))
    assert store.abort_incomplete({"sub/file.bin"}) == 1
    assert [o.key for o in store.list()] == ["keep.txt"]
    if isinstance(store, S3Store):
        assert before != []
        assert _pending_leftovers(store, tmp_path) == []
    else:
        assert sorted(_pending_leftovers(store, tmp_path)) == [
            ".probe-results.csv.0123456789ab.steward-part",
            "keep.txt",
        ]
        assert len(before) == 3


def test_presigned_link_works_then_expires(store: Store) -> None:
    if store.is_local:
        with pytest.raises(ValueError, match="local folder"):
            store.presign_get("x", timedelta(minutes=1))
        return
    store.write("share/r e+port.html", b"<html>report</html>")
    url = store.presign_get("share/r e+port.html", timedelta(seconds=2))
    assert fetch(url) == (200, b"<html>report</html>")
    time.sleep(3.5)  # let the link's two-second lifetime pass
    status, body = fetch(url)
    assert status == 403
    assert b"expired" in body
    with pytest.raises(ValidationFailed):
        store.presign_get("share/r e+port.html", timedelta(days=8))


# -- S3 errors people can act on ------------------------------------------------------------


def test_wrong_secret_is_refused_clearly(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    bad = seaweedfs.bad_config()
    secret = bad.secret_access_key
    assert secret is not None
    store = open_store(f"s3://{s3_bucket}/x", bad)
    for attempt in (store.check_writable, lambda: store.stat("a"), lambda: list(store.list())):
        with pytest.raises(ConfigurationError) as caught:
            attempt()
        message = str(caught.value)
        assert f"were refused by {seaweedfs.endpoint}" in message
        assert bad.access_key_id is not None
        assert bad.access_key_id in message
        assert secret not in message
    assert secret not in repr(bad)


def test_read_only_key_cannot_push(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}", seaweedfs.readonly_config())
    # Steward's credentials were refused: the store's refusal, not a person's (no Forbidden,
    # which the audit log would record as a user's denial and an API answer 403).
    with pytest.raises(StorageDenied, match=f"may not write to s3://{s3_bucket}"):
        store.check_writable()


def test_missing_bucket_is_named(seaweedfs: SeaweedFS) -> None:
    store = open_store("s3://no-such-bucket/p", seaweedfs.config())
    for attempt in (
        store.check_writable,
        lambda: store.stat("a.txt"),
        lambda: list(store.list()),
        lambda: store.write("a.txt", b"x"),
    ):
        with pytest.raises(NotFound, match="bucket 'no-such-bucket' does not exist at http://"):
            attempt()


def test_unreachable_endpoint_is_a_configuration_error() -> None:
    from tests.s3 import _free_ports

    cfg = S3Config(f"http://127.0.0.1:{_free_ports(1)[0]}", "us-east-1", "k", "s")
    with pytest.raises(ConfigurationError, match=r"could not reach S3 at http://127\.0\.0\.1"):
        open_store("s3://bucket/p", cfg).check_writable()


def test_storage_class_comes_from_s3(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    cfg = seaweedfs.config()
    headers = {"x-amz-storage-class": "STANDARD_IA"}
    assert (
        s3api.request(cfg, "PUT", s3_bucket, "cold.bin", body=b"c", headers=headers).status == 200
    )
    store = open_store(f"s3://{s3_bucket}", cfg)
    store.write("warm.bin", b"w")
    assert store.stat("cold.bin").storage_class == "STANDARD_IA"
    assert store.stat("warm.bin").storage_class is None
    assert {o.key: o.storage_class for o in store.list()} == {
        "cold.bin": "STANDARD_IA",
        "warm.bin": None,
    }


def test_abort_incomplete_removes_interrupted_uploads(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    cfg = seaweedfs.config()
    for key in ("p/a.bin", "p/b.bin"):
        resp = s3api.request(cfg, "POST", s3_bucket, key, query={"uploads": ""})
        assert resp.status == 200
    store = open_store(f"s3://{s3_bucket}/p", cfg)
    assert store.abort_incomplete({"a.bin"}) == 1
    assert [u.key for u in s3api.list_uploads(cfg, s3_bucket)] == ["p/b.bin"]
    assert store.abort_incomplete() == 1


# -- URLs -----------------------------------------------------------------------------------


def test_store_urls_are_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = S3Config("http://127.0.0.1:1")
    assert open_store("s3://bucket/a//b/", cfg).url == "s3://bucket/a/b"
    assert open_store("s3://bucket", cfg).url == "s3://bucket"
    assert open_store(tmp_path).url == tmp_path.resolve().as_uri()
    assert open_store(tmp_path.as_uri()).url == tmp_path.resolve().as_uri()
    monkeypatch.chdir(tmp_path)
    assert open_store("rel/dir").url == (tmp_path / "rel" / "dir").resolve().as_uri()
    store, key = split_url("s3://bucket/a/b/file.txt", cfg)
    assert (store.url, key) == ("s3://bucket/a/b", "file.txt")
    store, key = split_url(tmp_path / "x" / "f.txt")
    assert (store.local_path(key)) == (tmp_path / "x" / "f.txt").resolve()


@pytest.mark.parametrize(
    "url", ["s3://B/x", "s3://ab/x", "s3://bucket/../x", "ftp://host/x", "s3://bucket-only"]
)
def test_bad_store_urls_are_refused(url: str) -> None:
    call = split_url if url == "s3://bucket-only" else open_store
    with pytest.raises(ValidationFailed) as caught:
        call(url, S3Config("http://127.0.0.1:1"))
    assert caught.value.details
