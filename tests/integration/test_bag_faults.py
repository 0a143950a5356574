"""Faults during a build: kill -9 then re-run, sources that change while they are read, wrong
checksums, objects overwritten in S3 mid-read. Every failure names the file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import bagit  # type: ignore[import-untyped]
import pytest

from steward.adapters.storage import open_store
from steward.errors import ValidationFailed
from steward.packaging import bag
from steward.packaging.journal import load_journal
from tests import s3

INFO = bag.BagInfo(
    name="faults",
    package_id="pkg_01FAULTS",
    source_organisation="UMCCR",
    created_by="sam",
    created_at=datetime(2025, 4, 1, tzinfo=UTC),
)
OLD = 1_600_000_000_000_000_000  # sources last changed long ago, as real data files are


def write_sources(root: Path, files: dict[str, bytes]) -> list[bag.BagEntry]:
    entries = []
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, ns=(OLD, OLD))
        entries.append(bag.BagEntry(rel, path.as_uri(), metadata={"sample_id": rel[:3]}))
    return entries


CHILD = r"""
import sys, time
from pathlib import Path
from steward.packaging import bag
src, out = Path(sys.argv[1]), Path(sys.argv[2])
entries = [bag.BagEntry(p.relative_to(src).as_posix(), p.as_uri())
           for p in sorted(src.rglob("*")) if p.is_file()]
def slow(nbytes, nfiles):
    time.sleep(0.002)  # small chunks, slowly: the parent kills us mid-way
bag.build_payload(out, entries, workers=2, chunk_size=64 << 10, on_progress=slow)
print("finished", flush=True)
"""


def test_kill_9_mid_build_then_rerun_gives_the_same_valid_bag(tmp_path: Path) -> None:
    files = {f"S{i % 4}/file{i:02d}.fastq.gz": os.urandom(1_000_000 + i) for i in range(32)}
    entries = write_sources(tmp_path / "src", files)
    out = tmp_path / "bag"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "src"), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    journal = out / ".steward" / "build-journal.jsonl"
    try:
        while child.poll() is None:
            # header + 8 files, and files being written right now (not between two files)
            written = journal.read_bytes().count(b"\n") if journal.exists() else 0
            if written >= 9 and any(out.rglob("*.steward-part")):
                break
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        _, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err.decode()
    done_before = load_journal(journal)
    assert 8 <= len(done_before) < len(files)
    leftovers = list(out.rglob("*.steward-part"))  # the files being written at the kill

    built = bag.build_payload(out, entries, workers=2)
    reused = {b.relpath for b in built if b.reused}
    assert reused == set(done_before)
    assert leftovers
    assert list(out.rglob("*.steward-part")) == []
    bag.finish_bag(out, INFO, built)

    reference = tmp_path / "reference"
    bag.finish_bag(reference, INFO, bag.build_payload(reference, entries, workers=2))
    for name in (
        "manifest-sha256.txt",
        "manifest-md5.txt",
        "bag-info.txt",
        "tagmanifest-sha256.txt",
    ):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert [p for p in out.rglob("*") if p.name.endswith((".steward-part", ".tmp"))] == []
    assert not (out / ".steward").exists()
    assert bag.validate_bag(out, full=True) == []
    bagit.Bag(str(out)).validate()


def _one_file_build(
    tmp_path: Path, on_first_chunk: object, size: int = 1 << 20
) -> tuple[pytest.ExceptionInfo[ValidationFailed], Path]:
    entries = write_sources(
        tmp_path / "src", {"A/big.fastq.gz": os.urandom(size), "B/small.txt": b"small"}
    )
    fired = threading.Event()

    def progress(nbytes: int, _files: int) -> None:
        if nbytes and not fired.is_set():
            fired.set()
            on_first_chunk(tmp_path / "src" / "A/big.fastq.gz")  # type: ignore[operator]

    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(
            tmp_path / "bag", entries, workers=1, chunk_size=64 << 10, on_progress=progress
        )
    assert fired.is_set()
    return err, tmp_path / "bag"


def _append(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"appended while the bag was being built")


def _rewrite_in_place(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(1000)
        f.write(b"X" * 10)  # same size, new content


def _replace(path: Path) -> None:
    tmp = path.with_suffix(".new")
    tmp.write_bytes(b"a different file")
    os.replace(tmp, path)


def _delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("change", [_append, _rewrite_in_place, _replace, _delete])
def test_a_source_changed_while_read_fails_the_package_naming_it(
    tmp_path: Path, change: object
) -> None:
    err, out = _one_file_build(tmp_path, change)
    (detail,) = err.value.details
    assert detail.field == "data/A/big.fastq.gz"
    assert "big.fastq.gz" in detail.message
    assert "while it was being read" in detail.message
    assert not (out / "data/A/big.fastq.gz").exists()
    assert (out / "data/B/small.txt").read_bytes() == b"small"  # the rest was still built
    assert list(out.rglob("*.steward-part")) == []


def test_a_second_thread_appending_during_the_read_is_detected(tmp_path: Path) -> None:
    entries = write_sources(tmp_path / "src", {"A/growing.log": os.urandom(2 << 20)})
    reading, appended = threading.Event(), threading.Event()

    def writer() -> None:
        reading.wait(timeout=60)
        _append(tmp_path / "src/A/growing.log")
        appended.set()

    def progress(nbytes: int, _files: int) -> None:
        if nbytes and not reading.is_set():
            reading.set()
            appended.wait(timeout=60)  # go on reading only once the other thread has written

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with pytest.raises(ValidationFailed) as err:
            bag.build_payload(
                tmp_path / "bag", entries, workers=1, chunk_size=64 << 10, on_progress=progress
            )
    finally:
        reading.set()
        thread.join(timeout=60)
    assert [d.field for d in err.value.details] == ["data/A/growing.log"]
    detail = err.value.details[0]
    assert (detail.value or "").startswith(f"{(2 << 20) + 38} bytes")
    assert (detail.accepted or "").startswith(f"unchanged: {2 << 20} bytes")


def test_a_manifest_checksum_mismatch_names_the_file_and_both_values(tmp_path: Path) -> None:
    entries = write_sources(tmp_path / "src", {"A/x.bam": b"bam bytes", "A/y.bam": b"other"})
    entries[0] = bag.BagEntry("A/x.bam", entries[0].source_uri, md5="0" * 32)
    entries[1] = bag.BagEntry("A/y.bam", entries[1].source_uri, size=99)
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(tmp_path / "bag", entries)
    got = {(d.field, d.accepted) for d in err.value.details}
    assert got == {("data/A/x.bam", "0" * 32), ("data/A/y.bam", "99")}
    assert "md5" in err.value.details[0].message


def test_stop_then_resume(tmp_path: Path) -> None:
    files = {f"S/f{i}.bin": os.urandom(300_000) for i in range(6)}
    entries = write_sources(tmp_path / "src", files)
    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        return calls[0] > 3

    with pytest.raises(bag.BuildCancelled):
        bag.build_payload(tmp_path / "bag", entries, workers=1, should_stop=stop)
    built = bag.build_payload(tmp_path / "bag", entries, workers=1)
    assert 0 < sum(b.reused for b in built) < len(files)
    bag.finish_bag(tmp_path / "bag", INFO, built)
    assert bag.validate_bag(tmp_path / "bag", full=True) == []


def test_an_object_overwritten_in_s3_during_the_read_is_detected(
    tmp_path: Path, seaweedfs: s3.SeaweedFS, s3_bucket: str
) -> None:
    cfg = seaweedfs.config()
    store = open_store(f"s3://{s3_bucket}", cfg)
    store.write("runs/big.bin", os.urandom(3 << 20))
    entries = [bag.BagEntry("big.bin", f"s3://{s3_bucket}/runs/big.bin")]
    fired = threading.Event()

    def progress(nbytes: int, _files: int) -> None:
        if nbytes and not fired.is_set():
            fired.set()
            store.write("runs/big.bin", os.urandom(3 << 20))

    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(
            tmp_path / "bag", entries, s3=cfg, workers=1, chunk_size=256 << 10, on_progress=progress
        )
    (detail,) = err.value.details
    assert detail.field == "data/big.bin"
    assert "ETag" in (detail.value or "")


def _open_paths() -> set[str]:
    """The files this process has open right now."""
    paths = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return paths


def _finishes(action: Callable[[], object], guard: float = 120) -> object:
    """``action()``'s result or exception, failing (instead of hanging the test run) if it
    never returns — a hung pool would block forever."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["result"] = action()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(guard)
    assert not thread.is_alive(), "the build hangs"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("result")


@pytest.mark.parametrize("mode", ["copy", "link", "fetch"])
def test_files_shrinking_or_vanishing_mid_build_are_named_and_the_rest_is_built(
    tmp_path: Path, mode: bag.Mode
) -> None:
    big = 6 << 20  # read in many chunks, each hashed on the shared pool's threads
    files = {"A/shrinks.bam": os.urandom(big), "B/vanishes.bam": os.urandom(big - 1)}
    files |= {f"C/f{i:02d}.txt": os.urandom(300_000 + i) for i in range(12)}
    entries = write_sources(tmp_path / "src", files)
    shrinks, vanishes = tmp_path / "src/A/shrinks.bam", tmp_path / "src/B/vanishes.bam"
    fired = threading.Event()

    def progress(nbytes: int, _files: int) -> None:
        # progress calls are serialised: while one waits here, no other reader gets past its
        # first chunk, so both victims are open and unfinished when they change
        if nbytes and not fired.is_set():
            deadline = time.monotonic() + 60
            while {str(shrinks), str(vanishes)} - _open_paths():
                assert time.monotonic() < deadline, "the victims were never read together"
                time.sleep(0.001)
            os.truncate(shrinks, big // 3)
            vanishes.unlink()
            fired.set()

    out = tmp_path / "bag"
    with pytest.raises(ValidationFailed) as err:
        _finishes(
            lambda: bag.build_payload(
                out, entries, mode=mode, workers=3, chunk_size=256 << 10, on_progress=progress
            )
        )
    assert fired.is_set()
    by_field = {d.field: d for d in err.value.details}
    assert set(by_field) == {"data/A/shrinks.bam", "data/B/vanishes.bam"}
    assert "shrinks.bam changed while it was being read" in by_field["data/A/shrinks.bam"].message
    assert f"{big // 3} bytes" in (by_field["data/A/shrinks.bam"].value or "")
    assert "vanishes.bam was removed while it was being read" in (
        by_field["data/B/vanishes.bam"].message
    )
    assert list(out.rglob("*.steward-part")) == []
    if mode != "fetch":
        assert not (out / "data/A/shrinks.bam").exists()
        assert sorted(p.name for p in (out / "data/C").iterdir()) == sorted(
            rel.split("/")[1] for rel in files if rel.startswith("C/")
        )

    # put the sources back: the same call finishes the bag on the same (not hung) threads
    for rel in ("A/shrinks.bam", "B/vanishes.bam"):
        (tmp_path / "src" / rel).write_bytes(files[rel])
    built = _finishes(lambda: bag.build_payload(out, entries, mode=mode, workers=3))
    assert isinstance(built, list)
    assert {b.relpath for b in built if not b.reused} == {"A/shrinks.bam", "B/vanishes.bam"}
    bag.finish_bag(out, INFO, built, fetch=mode == "fetch")
    assert bag.validate_bag(out, full=True) == []


def _wrong_size_build(
    out: Path, entries: list[bag.BagEntry], mode: bag.Mode, **kwargs: object
) -> tuple[ValidationFailed, int]:
    read: list[int] = []
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(
            out,
            entries,
            mode=mode,
            workers=1,
            on_progress=lambda nbytes, _files: read.append(nbytes),
            **kwargs,  # type: ignore[arg-type]
        )
    return err.value, sum(read)


@pytest.mark.parametrize("mode", ["copy", "link", "fetch"])
def test_a_wrong_manifest_size_fails_before_the_file_is_read(
    tmp_path: Path, mode: bag.Mode
) -> None:
    entries = write_sources(
        tmp_path / "src", {"A/wrong.bam": os.urandom(3 << 20), "B/right.txt": b"right"}
    )
    entries[0] = bag.BagEntry("A/wrong.bam", entries[0].source_uri, size=999)
    err, read = _wrong_size_build(tmp_path / "bag", entries, mode)
    (detail,) = err.details
    assert detail.field == "data/A/wrong.bam"
    assert (detail.value, detail.accepted) == (str(3 << 20), "999")
    assert "the manifest says 999" in detail.message
    assert read == len(b"right")  # not one byte of the 3 MiB file was read
    assert not (tmp_path / "bag/data/A/wrong.bam").exists()


@pytest.mark.parametrize("mode", ["copy", "fetch"])
def test_a_wrong_manifest_size_of_an_object_fails_before_it_is_downloaded(
    tmp_path: Path, seaweedfs: s3.SeaweedFS, s3_bucket: str, mode: bag.Mode
) -> None:
    cfg = seaweedfs.config()
    store = open_store(f"s3://{s3_bucket}", cfg)
    store.write("runs/wrong.bin", os.urandom(2 << 20))
    store.write("runs/right.bin", b"right")
    entries = [
        bag.BagEntry("wrong.bin", f"s3://{s3_bucket}/runs/wrong.bin", size=12345),
        bag.BagEntry("right.bin", f"s3://{s3_bucket}/runs/right.bin"),
    ]
    err, read = _wrong_size_build(tmp_path / "bag", entries, mode, s3=cfg)
    (detail,) = err.details
    assert detail.field == "data/wrong.bin"
    assert (detail.value, detail.accepted) == (str(2 << 20), "12345")
    assert read == len(b"right")
