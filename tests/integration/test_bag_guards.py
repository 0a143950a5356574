"""Guards of the bag builder that no other test depended on: each test here fails when its guard
is deleted (what is reused from the journal, what is trusted from the manifest, what the plan
refuses before any byte moves)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from steward.errors import ValidationFailed
from steward.packaging import bag
from tests.integration.test_bag_faults import write_sources


def _files() -> dict[str, bytes]:
    return {"A/one.bam": os.urandom(300_000), "B/two.txt": b"two"}


@pytest.mark.parametrize(("before", "now"), [("link", "copy"), ("copy", "link")])
def test_a_journaled_file_is_not_reused_when_the_mode_changes(
    tmp_path: Path, before: bag.Mode, now: bag.Mode
) -> None:
    entries = write_sources(tmp_path / "src", _files())
    out = tmp_path / "bag"
    bag.build_payload(out, entries, mode=before)  # journaled, the bag not finished
    built = bag.build_payload(out, entries, mode=now)
    assert [b.reused for b in built] == [False, False]
    for entry in entries:
        source = Path(entry.source_uri.removeprefix("file://"))
        linked = (out / "data" / entry.relpath).stat().st_ino == source.stat().st_ino
        assert linked == (now == "link")  # a copy-mode bag never shares the sources' inodes


def test_a_link_whose_file_was_replaced_by_a_copy_is_linked_again(tmp_path: Path) -> None:
    entries = write_sources(tmp_path / "src", _files())
    out = tmp_path / "bag"
    bag.build_payload(out, entries, mode="link")
    dest = out / "data/A/one.bam"
    st = dest.stat()
    copy = dest.with_name("copy")
    shutil.copyfile(dest, copy)
    os.replace(copy, dest)  # same bytes, size and mtime, but no longer the source's inode
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    built = bag.build_payload(out, entries, mode="link")
    assert [b.reused for b in built] == [False, True]
    assert dest.stat().st_ino == st.st_ino


def test_a_journaled_file_is_not_reused_when_the_manifest_now_gives_another_checksum(
    tmp_path: Path,
) -> None:
    entries = write_sources(tmp_path / "src", _files())
    out = tmp_path / "bag"
    bag.build_payload(out, entries)
    entries[0] = bag.BagEntry(entries[0].relpath, entries[0].source_uri, md5="0" * 32)
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(out, entries)
    (detail,) = err.value.details
    assert (detail.field, detail.accepted) == ("data/A/one.bam", "0" * 32)


def test_fetch_mode_trusts_the_manifest_only_when_it_gives_both_checksums(
    tmp_path: Path,
) -> None:
    files = _files()
    entries = write_sources(tmp_path / "src", files)
    content = files["A/one.bam"]
    sha = hashlib.sha256(content).hexdigest()
    partial = [
        bag.BagEntry("A/one.bam", entries[0].source_uri, size=len(content), sha256=sha),
        bag.BagEntry(
            "B/two.txt", entries[1].source_uri, size=3, md5=hashlib.md5(b"two").hexdigest()
        ),
    ]
    built = bag.build_payload(tmp_path / "bag", partial, mode="fetch", trust_manifest=True)
    assert [(b.sha256, b.md5) for b in built] == [
        (sha, hashlib.md5(content).hexdigest()),
        (hashlib.sha256(b"two").hexdigest(), hashlib.md5(b"two").hexdigest()),
    ]


def test_a_negative_size_is_refused_before_any_byte_moves(tmp_path: Path) -> None:
    entries = write_sources(tmp_path / "src", _files())
    entries[1] = bag.BagEntry(entries[1].relpath, entries[1].source_uri, size=-3)
    read: list[int] = []
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(
            tmp_path / "bag", entries, on_progress=lambda nbytes, _files: read.append(nbytes)
        )
    (detail,) = err.value.details
    assert (detail.field, detail.row, detail.value) == ("data/B/two.txt", 2, "-3")
    assert "negative size" in detail.message
    assert read == []


@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the temporary folder")
    folder = Path(tempfile.mkdtemp(prefix="steward-test-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_link_mode_names_every_source_on_another_file_system_before_any_byte_moves(
    tmp_path: Path, other_file_system: Path
) -> None:
    entries = write_sources(other_file_system, _files())
    read: list[int] = []
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(
            tmp_path / "bag",
            entries,
            mode="link",
            on_progress=lambda nbytes, _files: read.append(nbytes),
        )
    assert [(d.field, d.row) for d in err.value.details] == [
        ("data/A/one.bam", 1),
        ("data/B/two.txt", 2),
    ]
    assert all("another file system" in d.message for d in err.value.details)
    assert read == []
    assert list((tmp_path / "bag/data").rglob("*")) == []
