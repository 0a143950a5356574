"""The crawl's decisions, without storage or a database: which places are gone, which stage
wins, when a dataset is missing, who duplicates whom, and which events follow."""

from __future__ import annotations

from typing import Any

import pytest

from steward.crawl.accessions import DEFAULT_MAPPINGS
from steward.crawl.model import SourceStatus
from steward.domain.datasets import STAGES
from steward.services.crawl_plan import (
    Duplicates,
    Found,
    Ranks,
    SourceResult,
    Stored,
    StoredPlace,
    duplicates,
    plan,
    shape_of,
)

RANKS = Ranks(STAGES)
OK = SourceResult(SourceStatus.OK)


def found(source: str, stage: str, accession: str = "E-MTAB-1", **fields: Any) -> Found:
    return Found(
        project="p1",
        accession=accession,
        source=source,
        stage=stage,
        technologies=(),
        key=accession,
        base=accession,
        location=f"/{source}/{accession}",
        digest="sha256:x",
        complete=True,
        files=(),
        fields=fields or None,
    )


def place(source: str, stage: str, *, present: bool = True) -> StoredPlace:
    return StoredPlace(
        source, "E-MTAB-1", f"/{source}/E-MTAB-1", stage, (), {}, (), "sha256:x", True, present
    )


def stored(state: str, *places: StoredPlace, **fields: Any) -> Stored:
    return Stored(
        id="ds_1",
        project="p1",
        accession="E-MTAB-1",
        state=state,
        fields=fields,
        technologies=(),
        problems=(),
        duplicate_of=None,
        secondary_accessions=(),
        places=places,
    )


def commands(
    state: Stored | None, seen: list[Found], results: dict[str, SourceResult]
) -> list[str]:
    shape = shape_of("p1", "E-MTAB-1", state, seen, results, RANKS)
    return [command for command, _ in plan(shape, Duplicates()).events]


def test_a_place_is_gone_only_when_its_source_listed_it_completely() -> None:
    assert OK.gone("E-MTAB-1")
    assert not SourceResult(SourceStatus.FAILED).gone("E-MTAB-1")
    assert not SourceResult(SourceStatus.OK, unknown=frozenset({"E-MTAB-1"})).gone("E-MTAB-1")
    partial = SourceResult(SourceStatus.PARTIAL, removed=frozenset({"E-MTAB-2"}))
    assert partial.gone("E-MTAB-2")
    assert not partial.gone("E-MTAB-1")  # a part it could not read may hold it


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (SourceStatus.OK, ["remove-location", "vanish"]),
        (SourceStatus.FAILED, []),
        (SourceStatus.PARTIAL, []),
    ],
)
def test_a_dataset_goes_missing_only_when_every_place_of_it_is_known_gone(
    status: SourceStatus, expected: list[str]
) -> None:
    before = stored("published", place("pub", "published"))
    assert commands(before, [], {"pub": SourceResult(status)}) == expected


def test_a_place_in_a_source_not_crawled_is_kept_and_still_ranks() -> None:
    before = stored("published", place("pub", "published"), place("load", "loading"))
    # only "load" was crawled, and it no longer has it: the published place still stands
    assert commands(before, [], {"load": OK}) == ["remove-location"]


def test_the_highest_ranked_stage_wins_in_the_configs_order() -> None:
    seen = [found("inc", "incoming"), found("pub", "published")]
    assert shape_of("p1", "E-MTAB-1", None, seen, {}, RANKS).stage == "published"
    backwards = Ranks(tuple(reversed(STAGES)))
    assert shape_of("p1", "E-MTAB-1", None, seen, {}, backwards).stage == "incoming"


def test_a_missing_dataset_found_again_reappears_in_its_stage() -> None:
    before = stored("missing", place("load", "loading", present=False))
    events = commands(before, [found("load", "loading")], {"load": OK})
    assert events == ["add-location", "reappear-in-loading"]


def test_metadata_of_the_higher_place_wins_and_changes_carry_old_and_new() -> None:
    before = stored("loading", place("load", "loading"), title="Old")
    seen = [found("load", "loading", title="Old"), found("pub", "published", title="New")]
    shape = shape_of("p1", "E-MTAB-1", before, seen, {"load": OK, "pub": OK}, RANKS)
    events = dict(plan(shape, Duplicates()).events)
    assert events["change-metadata"]["changed"] == {"title": {"old": "Old", "new": "New"}}
    assert "move-to-published" in events


def test_the_dataset_behind_is_the_duplicate_of_the_one_ahead() -> None:
    external = shape_of("p1", "GSE5", None, [found("ext", "external", "GSE5")], {}, RANKS)
    mtab = shape_of(
        "p1",
        "E-MTAB-1",
        None,
        [found("load", "loading", secondary_accessions=["E-GEOD-5"])],
        {},
        RANKS,
    )
    found_dups = duplicates([external, mtab], RANKS, DEFAULT_MAPPINGS)
    assert found_dups["GSE5"].duplicate_of == "E-MTAB-1"
    assert found_dups["E-MTAB-1"].duplicate_of is None
    assert found_dups["GSE5"].problems[0]["reason"] == "mapping"
