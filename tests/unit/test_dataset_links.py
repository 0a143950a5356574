"""Which datasets are one experiment by accession: "already ingested" and duplicate pairs."""

from __future__ import annotations

from steward.crawl.accessions import AccessionMapping
from steward.services.dataset_links import (
    AccessionLink,
    DatasetFacts,
    accession_links,
    already_ingested,
    forms_of,
)


def facts(accession: str, state: str, *secondary: str, project: str = "p1") -> DatasetFacts:
    return DatasetFacts(project, accession, state, tuple(secondary))


def test_an_external_dataset_is_ingested_when_any_form_of_it_is_past_external() -> None:
    found = already_ingested(
        [
            facts("GSE5", "external"),  # E-GEOD-5 by the default mapping
            facts("E-GEOD-5", "loading"),
            facts("GSE6", "external"),  # listed as a secondary accession of E-MTAB-6
            facts("E-MTAB-6", "published", "GSE6"),
            facts("E-MTAB-7", "external", "GSE7"),  # its secondary maps to E-GEOD-7
            facts("E-GEOD-7", "processed"),
            facts("GSE8", "external"),
            facts("E-GEOD-8", "missing"),  # gone from every place: not ingested
            facts("GSE9", "external"),
            facts("E-GEOD-9", "external"),  # external too: not ingested
            facts("GSE10", "external"),
            facts("E-GEOD-10", "loading", project="p2"),  # another project
        ]
    )
    assert found == {
        ("p1", "GSE5"): ("E-GEOD-5",),
        ("p1", "GSE6"): ("E-MTAB-6",),
        ("p1", "E-MTAB-7"): ("E-GEOD-7",),
        ("p1", "GSE8"): (),
        ("p1", "GSE9"): (),
        ("p1", "E-GEOD-9"): (),
        ("p1", "GSE10"): (),
    }


def test_the_configured_mappings_are_the_ones_used() -> None:
    rows = [facts("SRP1", "external"), facts("PRJ1", "incoming")]
    assert already_ingested(rows) == {("p1", "SRP1"): ()}
    srp = (AccessionMapping("SRP{n}", "PRJ{n}"),)
    assert already_ingested(rows, srp) == {("p1", "SRP1"): ("PRJ1",)}
    assert forms_of(rows[0], srp) == {"SRP1", "PRJ1"}


def test_links_put_the_dataset_behind_first() -> None:
    links = accession_links(
        [
            facts("E-GEOD-5", "external"),
            facts("E-MTAB-1", "loading", "GSE5"),
            facts("E-MTAB-2", "loading", "E-MTAB-3"),
            facts("E-MTAB-3", "loading"),
            facts("E-MTAB-4", "withdrawn", "E-MTAB-3"),  # withdrawn: left out
        ]
    )
    assert links == [
        AccessionLink("p1", "E-GEOD-5", "E-MTAB-1", "E-GEOD-5", "mapping"),
        AccessionLink("p1", "E-MTAB-3", "E-MTAB-2", "E-MTAB-3", "secondary-accession"),
    ]
    # the config's stage order decides who is ahead
    reordered = accession_links(
        [facts("E-GEOD-5", "external"), facts("E-MTAB-1", "loading", "GSE5")],
        stages=("loading", "external"),
    )
    assert [(x.dataset, x.other) for x in reordered] == [("E-MTAB-1", "E-GEOD-5")]
