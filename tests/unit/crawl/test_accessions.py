"""Accessions: where they are read from, and which spellings mean the same experiment."""

from __future__ import annotations

import re

import pytest

from steward.crawl.accessions import (
    AccessionMapping,
    AccessionRule,
    DuplicatePair,
    MappingError,
    belongs_to,
    forms,
    secondary_duplicates,
    value_at,
)

AE = re.compile(r"^E-[A-Z]{4}-\d+$")


def test_the_whole_match_a_named_group_or_the_only_group_is_the_accession() -> None:
    assert AccessionRule(AE).accession_in("E-MTAB-12") == "E-MTAB-12"
    assert AccessionRule(AE).accession_in("E-MTAB-12_old") is None
    named = re.compile(r"^(?P<study>x)?(?P<accession>E-[A-Z]{4}-\d+)_v\d+$")
    assert AccessionRule(named).accession_in("E-MTAB-1_v2") == "E-MTAB-1"
    assert AccessionRule(re.compile(r"^(GSE\d+)\.soft$")).accession_in("GSE9.soft") == "GSE9"


def test_file_names_are_read_without_the_globs_fixed_ending() -> None:
    rule = AccessionRule(AE, "file", "*.idf.txt")
    assert rule.accession_in_file_name("E-MTAB-1.idf.txt") == "E-MTAB-1"
    assert rule.accession_in_file_name("E-MTAB-1.sdrf.txt") is None  # not chosen by the glob
    assert rule.accession_in_file_name("notes.idf.txt") is None
    loose = AccessionRule(re.compile(r"E-[A-Z]{4}-\d+"), "file", "*_idf_*.txt")
    assert loose.accession_in_file_name("study_idf_E-GEOD-5.txt") == "E-GEOD-5"


def test_siblings_belong_by_prefix_up_to_a_boundary() -> None:
    assert belongs_to("E-MTAB-1.sdrf.txt", "E-MTAB-1")
    assert belongs_to("E-MTAB-1_raw.fq.gz", "E-MTAB-1")
    assert belongs_to("E-MTAB-1", "E-MTAB-1")
    assert not belongs_to("E-MTAB-10.idf.txt", "E-MTAB-1")
    assert not belongs_to("xE-MTAB-1.idf.txt", "E-MTAB-1")


def test_records_by_dotted_path() -> None:
    rule = AccessionRule(AE, "field", field="meta.acc")
    assert rule.accession_in_record({"meta": {"acc": "E-MTAB-3"}}) == "E-MTAB-3"
    assert rule.accession_in_record({"meta": {"acc": ["E-MTAB-3"]}}) is None
    assert rule.accession_in_record({"meta": None}) is None
    assert value_at({"a": {"b": 1}}, "a.b") == 1
    assert value_at([1], "a") is None


def test_a_mapping_reads_both_ways() -> None:
    geo = AccessionMapping("E-GEOD-{n}", "GSE{n}")
    assert geo.other("E-GEOD-123") == "GSE123"
    assert geo.other("GSE45") == "E-GEOD-45"
    assert geo.other("E-MTAB-1") is None
    assert geo.other("GSE12x") is None  # the whole accession must match
    ena = AccessionMapping("E-ERAD-{n}", "ERP{n:[0-9]{6}}")
    assert ena.other("E-ERAD-000123") == "ERP000123"
    assert ena.other("ERP000123") == "E-ERAD-000123"
    assert ena.other("E-ERAD-12") is None  # not six digits: not the other's spelling


@pytest.mark.parametrize(
    ("left", "right"),
    [("E-GEOD-{n}", "GSE{m}"), ("E-{n}-{n}", "X{n}"), ("E-{n:[}", "X{n}"), ("E-{n", "X")],
)
def test_bad_mappings_are_refused(left: str, right: str) -> None:
    with pytest.raises(MappingError):
        AccessionMapping(left, right)


def test_forms_follow_mappings_transitively() -> None:
    chain = (AccessionMapping("A{n}", "B{n}"), AccessionMapping("B{n}", "C{n}"))
    assert forms("A1", chain) == {"A1", "B1", "C1"}
    assert forms("C1", chain) == {"A1", "B1", "C1"}


def test_duplicates_by_secondary_accession_and_by_mapping() -> None:
    pairs = secondary_duplicates(
        [
            ("E-GEOD-10", []),
            ("GSE10", []),  # mapping only
            ("E-MTAB-5", ["GSE99"]),
            ("E-MTAB-6", ["E-GEOD-99"]),  # their secondaries map onto each other
            ("E-MTAB-7", ["E-MTAB-5"]),  # lists another's primary as its secondary
            ("E-MTAB-8", []),
        ]
    )
    assert pairs == [
        DuplicatePair("E-GEOD-10", "GSE10", "E-GEOD-10", "mapping"),
        DuplicatePair("E-MTAB-5", "E-MTAB-6", "E-GEOD-99", "mapping"),
        DuplicatePair("E-MTAB-5", "E-MTAB-7", "E-MTAB-5", "secondary-accession"),
    ]
    assert secondary_duplicates([("GSE1", []), ("E-GEOD-1", [])], mappings=()) == []
