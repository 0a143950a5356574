"""The listing state: trusted only when it belongs to the same source configuration."""

from __future__ import annotations

from typing import Any

import pytest

from steward.crawl.model import Change, FoundFile, ProblemKind, SourceStatus
from steward.crawl.tracking import FORMAT, Tracker, files_digest
from tests.crawl_trees import source

CONFIG = source(url="/data")


def state_with(key: str, digest: str) -> dict[str, Any]:
    tracker = Tracker(CONFIG, None)
    tracker.found(
        accession=key, key=key, base=key, location=f"/data/{key}", files=(), digest=digest
    )
    return tracker.outcome().state


def test_digests_depend_on_names_sizes_and_times_not_order() -> None:
    a, b = FoundFile("a", 1, mtime_ns=5), FoundFile("b", 2, mtime_ns=6)
    assert files_digest([a, b]) == files_digest([b, a])
    assert files_digest([a]) != files_digest([FoundFile("a", 1, mtime_ns=7)])
    assert files_digest([a]) != files_digest([FoundFile("a", 2, mtime_ns=5)])
    assert files_digest([FoundFile("a", 1, etag="x")]) != files_digest(
        [FoundFile("a", 1, etag="y")]
    )


@pytest.mark.parametrize(
    "damage",
    [
        {"format": "something-else"},
        {"kind": "s3"},
        {"source": "another-configuration"},
        {"datasets": ["not", "a", "mapping"]},
        {"datasets": {"E-1": {"digest": "only"}}},
    ],
)
def test_a_foreign_or_damaged_state_is_not_trusted(damage: dict[str, Any]) -> None:
    state = {**state_with("E-1", "sha256:1"), **damage}
    tracker = Tracker(CONFIG, state)
    found = tracker.found(
        accession="E-1", key="E-1", base="E-1", location="/data/E-1", files=(), digest="sha256:1"
    )
    assert found.change is Change.NEW
    outcome = tracker.outcome()
    assert [p.kind for p in outcome.problems] == [ProblemKind.STATE_RESET]
    assert outcome.status is SourceStatus.OK  # a reset hides nothing
    assert outcome.state["format"] == FORMAT


def test_the_same_key_twice_is_a_lister_bug() -> None:
    tracker = Tracker(CONFIG, None)
    tracker.found(accession="E-1", key="E-1", base="E-1", location="x", files=())
    with pytest.raises(ValueError, match="twice"):
        tracker.found(accession="E-1", key="E-1", base="E-1", location="x", files=())


def test_a_listing_must_be_read_to_its_end_before_its_outcome() -> None:
    from steward.crawl.listing import open_source

    listing = open_source(CONFIG).list()
    with pytest.raises(RuntimeError, match="not been read"):
        _ = listing.outcome
