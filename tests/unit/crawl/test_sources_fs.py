"""Listing folder trees: datasets, incremental state, and every awkward thing a tree can hold."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steward.crawl.config import SourceConfig
from steward.crawl.extract import extract_metadata
from steward.crawl.extractors.magetab import IdfExtractor
from steward.crawl.listing import open_source
from steward.crawl.model import Change, FoundDataset, ListingOutcome, ProblemKind, SourceStatus
from steward.crawl.sources_fs import FolderSource
from steward.errors import ValidationFailed
from tests.crawl_trees import shared_tmp, source, unprivileged, write_tree

IDF = "MAGE-TAB Version\t1.1\nInvestigation Title\tT\n"
TREE = {
    "E-MTAB-1/E-MTAB-1.idf.txt": IDF,
    "E-MTAB-1/raw/r1.fq.gz": b"\x1f\x8b" * 10,
    "group a/E-GEOD-2/E-GEOD-2.idf.txt": IDF,
    "group a/E-GEOD-2/E-MTAB-9/nested.txt": "a dataset inside a dataset is part of it",
    "group a/notes.txt": "not in any dataset",
    "Größe Daten/E-MTAB-3/raw data/ünïcødé reads.fq": "ACGT",
    "empty-group/.keep": "",
}
OLD = 1_600_000_000_000_000_000  # a fixed past time (ns), so later changes always differ


@pytest.fixture
def root() -> Iterator[Path]:
    with shared_tmp() as path:
        write_tree(path, TREE)
        yield path


def listing(
    config: SourceConfig, previous: dict[str, Any] | None = None, *, quick: bool = False
) -> tuple[dict[str, FoundDataset], ListingOutcome]:
    found, outcome = open_source(config, quick=quick).list(previous).collect()
    by_key = {f.key: f for f in found}
    assert len(by_key) == len(found)
    # the state is JSON: what the caller stores is exactly what comes back
    state = json.loads(json.dumps(outcome.state))
    assert state == outcome.state
    return by_key, outcome


def age(root: Path) -> None:
    """Give every folder and file the same old time, so any later change shows."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            os.utime(path, ns=(OLD, OLD))


def test_datasets_are_folders_named_by_accession_at_any_depth(root: Path) -> None:
    found, outcome = listing(source(url=str(root)))
    assert sorted(found) == ["E-MTAB-1", "Größe Daten/E-MTAB-3", "group a/E-GEOD-2"]
    first = found["E-MTAB-1"]
    assert (first.accession, first.base, first.location) == (
        "E-MTAB-1",
        "E-MTAB-1",
        str(root / "E-MTAB-1"),
    )
    assert [(f.path, f.size) for f in first.files or ()] == [
        ("E-MTAB-1.idf.txt", len(IDF)),
        ("raw/r1.fq.gz", 20),
    ]
    nested = found["group a/E-GEOD-2"]
    assert [f.path for f in nested.files or ()] == ["E-GEOD-2.idf.txt", "E-MTAB-9/nested.txt"]
    unicode = found["Größe Daten/E-MTAB-3"]
    assert [f.path for f in unicode.files or ()] == ["raw data/ünïcødé reads.fq"]
    assert all(f.change is Change.NEW for f in found.values())
    assert (outcome.status, outcome.found, outcome.new, outcome.problems) == (
        SourceStatus.OK,
        3,
        3,
        (),
    )


def test_include_and_exclude(root: Path) -> None:
    config = source(url=str(root), include=["**/*.idf.txt", "**/*.fq"], exclude=["Größe Daten"])
    found, _ = listing(config)
    assert sorted(found) == ["E-MTAB-1", "group a/E-GEOD-2"]
    assert [f.path for f in found["E-MTAB-1"].files or ()] == ["E-MTAB-1.idf.txt"]


def test_an_unchanged_recrawl_reads_no_file_and_reports_nothing_changed(root: Path) -> None:
    config = source(url=str(root))
    _, first = listing(config)
    for path in root.rglob("*"):  # nobody may read any file now: listing must not need to
        if path.is_file():
            path.chmod(0o000)
    with unprivileged():
        found, again = listing(config, first.state)
        changed = [f for f in found.values() if f.change is not Change.UNCHANGED]
        reads: list[str] = []

        def read(file: Any) -> bytes:
            reads.append(file.path)
            raise AssertionError("an unchanged dataset's metadata was read")

        for dataset in changed:
            extract_metadata(dataset.files or (), [IdfExtractor()], read)
    assert changed == []
    assert reads == []
    assert (again.status, again.new, again.changed, again.removed) == (SourceStatus.OK, 0, 0, ())


def test_changes_are_new_changed_and_removed(root: Path) -> None:
    config = source(url=str(root))
    _, first = listing(config)
    (root / "E-MTAB-1" / "raw" / "r1.fq.gz").write_bytes(b"longer content now")
    write_tree(root, {"E-MTAB-4/E-MTAB-4.idf.txt": IDF})
    (root / "group a" / "E-GEOD-2" / "E-GEOD-2.idf.txt").unlink()
    (root / "group a" / "E-GEOD-2" / "E-MTAB-9" / "nested.txt").unlink()
    (root / "group a" / "E-GEOD-2" / "E-MTAB-9").rmdir()
    (root / "group a" / "E-GEOD-2").rmdir()
    found, outcome = listing(config, first.state)
    assert {k: str(f.change) for k, f in found.items()} == {
        "E-MTAB-1": "changed",
        "E-MTAB-4": "new",
        "Größe Daten/E-MTAB-3": "unchanged",
    }
    assert [(r.accession, r.key) for r in outcome.removed] == [("E-GEOD-2", "group a/E-GEOD-2")]
    assert outcome.unknown == ()
    assert "group a/E-GEOD-2" not in outcome.state["datasets"]


def test_a_symlink_loop_is_reported_and_not_followed(root: Path) -> None:
    (root / "group a" / "loop").symlink_to(root / "group a")
    (root / "E-MTAB-1" / "raw" / "back").symlink_to(root / "E-MTAB-1")
    (root / "alias").symlink_to(root / "Größe Daten")
    (root / "dangling").symlink_to(root / "nowhere")
    found, outcome = listing(source(url=str(root)))
    assert sorted(found) == ["E-MTAB-1", "Größe Daten/E-MTAB-3", "group a/E-GEOD-2"]
    kinds = {(p.kind, Path(p.where).name) for p in outcome.problems}
    assert kinds == {
        (ProblemKind.SYMLINK_LOOP, "loop"),
        (ProblemKind.SYMLINK_LOOP, "back"),
        (ProblemKind.SEEN_TWICE, "alias"),  # "Größe Daten" sorts first and is listed there
        (ProblemKind.BROKEN_LINK, "dangling"),
    }
    assert outcome.status is SourceStatus.OK  # nothing was hidden
    assert found["E-MTAB-1"].complete


def test_a_folder_that_cannot_be_read_makes_the_source_partial(root: Path) -> None:
    config = source(url=str(root))
    _, first = listing(config)
    (root / "group a").chmod(0o000)
    (root / "E-MTAB-1" / "raw").chmod(0o000)
    with unprivileged():
        found, outcome = listing(config, first.state)
    assert outcome.status is SourceStatus.PARTIAL
    denied = sorted(Path(p.where).name for p in outcome.problems)
    assert denied == ["group a", "raw"]
    assert {p.kind for p in outcome.problems} == {ProblemKind.PERMISSION_DENIED}
    assert all(p.hides_data for p in outcome.problems)
    # what the unreadable folder held last time is unknown, not removed, and kept in the state
    assert [r.key for r in outcome.unknown] == ["group a/E-GEOD-2"]
    assert outcome.removed == ()
    assert (
        outcome.state["datasets"]["group a/E-GEOD-2"] == first.state["datasets"]["group a/E-GEOD-2"]
    )
    # a dataset whose sub-folder is unreadable is found, marked incomplete, its last whole
    # listing kept for the next comparison
    partial = found["E-MTAB-1"]
    assert partial.complete is False
    assert [f.path for f in partial.files or ()] == ["E-MTAB-1.idf.txt"]
    assert (
        outcome.state["datasets"]["E-MTAB-1"]["digest"]
        == first.state["datasets"]["E-MTAB-1"]["digest"]
    )
    (root / "group a").chmod(0o755)
    (root / "E-MTAB-1" / "raw").chmod(0o755)
    found, healed = listing(config, outcome.state)
    assert healed.status is SourceStatus.OK
    assert {str(f.change) for f in found.values()} == {"unchanged"}


def test_a_missing_root_fails_the_source_and_forgets_nothing(root: Path) -> None:
    config = source(url=str(root))
    _, first = listing(config)
    gone = source(url=str(root / "moved"))
    # a state made for another URL is not trusted...
    found, reset = listing(gone, first.state)
    assert reset.status is SourceStatus.FAILED
    assert ProblemKind.STATE_RESET in {p.kind for p in reset.problems}
    # ...and for the same URL, a failed listing keeps every dataset as unknown
    root.rename(root.with_name(root.name + "-away"))
    try:
        found, failed = listing(config, first.state)
    finally:
        root.with_name(root.name + "-away").rename(root)
    assert found == {}
    assert failed.status is SourceStatus.FAILED
    assert "does not exist" in failed.problems[0].message
    assert len(failed.unknown) == 3
    assert failed.removed == ()
    assert failed.state["datasets"] == first.state["datasets"]


def test_datasets_marked_by_file_in_a_flat_folder(root: Path) -> None:
    write_tree(
        root,
        {
            "flat/E-MTAB-1.idf.txt": IDF,
            "flat/E-MTAB-1.sdrf.txt": "Source Name\n",
            "flat/E-MTAB-1_raw.fq.gz": "reads",
            "flat/E-MTAB-10.idf.txt": IDF,
            "flat/E-MTAB-10.sdrf.txt": "Source Name\n",
            "flat/unrelated.txt": "x",
            "flat/E-MTAB-2.sdrf.txt": "an SDRF without its IDF marks nothing",
        },
    )
    config = source(url=str(root / "flat"), found_in="file", file="*.idf.txt")
    found, outcome = listing(config)
    assert sorted(found) == ["E-MTAB-1", "E-MTAB-10"]
    assert [f.path for f in found["E-MTAB-1"].files or ()] == [
        "E-MTAB-1.idf.txt",
        "E-MTAB-1.sdrf.txt",
        "E-MTAB-1_raw.fq.gz",
    ]
    assert found["E-MTAB-1"].location == str(root / "flat" / "E-MTAB-1.idf.txt")
    assert outcome.status is SourceStatus.OK


def test_names_that_are_not_utf8_are_reported(root: Path) -> None:
    bad = os.fsencode(root / "E-MTAB-1") + b"/caf\xe9.txt"
    with open(bad, "wb") as handle:
        handle.write(b"x")
    found, outcome = listing(source(url=str(root)))
    (problem,) = outcome.problems
    assert problem.kind is ProblemKind.BAD_NAME
    assert problem.where.endswith("caf\\xe9.txt")
    assert outcome.status is SourceStatus.PARTIAL
    assert found["E-MTAB-1"].complete is False


def test_quick_recrawls_trust_folder_times(root: Path) -> None:
    config = source(url=str(root))
    age(root)
    _, first = listing(config)
    found, quick = listing(config, first.state, quick=True)
    assert all(f.files is None and f.change is Change.UNCHANGED for f in found.values())
    assert quick.state["datasets"] == first.state["datasets"]
    # a new file changes its folder's time: seen even in a quick crawl
    write_tree(root, {"E-MTAB-1/raw/r2.fq.gz": "more"})
    found, _ = listing(config, first.state, quick=True)
    assert found["E-MTAB-1"].change is Change.CHANGED
    assert found["E-MTAB-1"].files is not None
    # a file rewritten in place leaves its folder's time alone: only a full crawl sees it
    age(root)
    _, settled = listing(config)
    target = root / "E-MTAB-1" / "E-MTAB-1.idf.txt"
    target.write_text(IDF.replace("T", "U"), encoding="utf-8")
    os.utime(root / "E-MTAB-1", ns=(OLD, OLD))
    found, _ = listing(config, settled.state, quick=True)
    assert found["E-MTAB-1"].change is Change.UNCHANGED
    found, _ = listing(config, settled.state)
    assert found["E-MTAB-1"].change is Change.CHANGED


def test_reading_a_file_of_a_dataset(root: Path) -> None:
    folder = FolderSource(source(url=str(root)))
    found, _ = folder.list().collect()
    dataset = next(f for f in found if f.key == "E-MTAB-1")
    idf = next(f for f in dataset.files or () if f.path.endswith(".idf.txt"))
    assert folder.read(dataset, idf) == IDF.encode()
    assert folder.read(dataset, idf, limit=3) == IDF.encode()[:4]
    escape = type(idf)("../../etc/passwd", 1)
    with pytest.raises(ValidationFailed):
        folder.read(dataset, escape)
