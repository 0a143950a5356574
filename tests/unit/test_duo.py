"""Data Use Ontology codes: accepted as ids or shorthands, any case, reported precisely."""

from __future__ import annotations

import pytest

from steward.domain.duo import DUO_ID, DuoTerm, normalise, terms

GRU = "DUO:0000042"
HMB = "DUO:0000006"


def test_the_shipped_list_is_well_formed() -> None:
    table = terms()
    assert len(table) >= 20
    assert table[GRU] == DuoTerm(GRU, "GRU", "general research use")
    assert table[HMB].shorthand == "HMB"
    for term_id, term in table.items():
        assert term.id == term_id
        assert DUO_ID.match(term_id), term_id
        assert term.shorthand
        assert term.shorthand == term.shorthand.strip().upper()
        assert term.label
    shorthands = [t.shorthand for t in table.values()]
    assert len(shorthands) == len(set(shorthands))


@pytest.mark.parametrize(
    "raw", ["DUO:0000042", "duo:0000042", "Duo:0000042", "GRU", "gru", "Gru", "  gru\t"]
)
def test_ids_and_shorthands_are_accepted_in_any_case(raw: str) -> None:
    assert normalise([raw]) == ([GRU], [])


def test_every_shipped_term_is_accepted_by_id_and_by_shorthand() -> None:
    for term in terms().values():
        assert normalise([term.id.lower()]) == ([term.id], []), term
        assert normalise([term.shorthand.lower()]) == ([term.id], []), term


@pytest.mark.parametrize(
    "raw",
    ["DUO:12", "XYZ", "duo-0000042", "DUO:00000042", "DUO 0000042", "0000042", "DUO:000004a"],
)
def test_malformed_codes_are_reported_with_the_row(raw: str) -> None:
    codes, problems = normalise([raw], row=12)
    assert codes == []
    [problem] = problems
    assert problem.message == "malformed DUO code"
    assert problem.row == 12
    assert problem.field == "duo_codes"
    assert problem.value == raw
    assert problem.accepted is not None
    assert "DUO:NNNNNNN" in problem.accepted
    assert "GRU" in problem.accepted


@pytest.mark.parametrize("raw", ["DUO:9999999", "duo:9999999", "DUO:0000001"])
def test_well_formed_unknown_ids_are_reported_as_unknown(raw: str) -> None:
    codes, problems = normalise([raw], row=3)
    assert codes == []
    [problem] = problems
    assert problem.message == "unknown DUO code"
    assert (problem.row, problem.field, problem.value) == (3, "duo_codes", raw)
    assert problem.accepted == "see `steward duo list`"


def test_the_shorthands_named_as_examples_exist() -> None:
    _, [problem] = normalise(["XYZ"])
    assert problem.accepted is not None
    examples = problem.accepted.split("such as ", 1)[1].split(", ")
    assert normalise(examples) == (_ids(examples), [])


def _ids(shorthands: list[str]) -> list[str]:
    by_short = {t.shorthand: t.id for t in terms().values()}
    return [by_short[s] for s in shorthands]


def test_every_problem_is_listed_and_good_codes_are_kept_in_order() -> None:
    codes, problems = normalise(["HMB", "XYZ", "DUO:9999999", "gru", "DUO:12"], row=5)
    assert codes == [HMB, GRU]
    assert [(p.message, p.value, p.row) for p in problems] == [
        ("malformed DUO code", "XYZ", 5),
        ("unknown DUO code", "DUO:9999999", 5),
        ("malformed DUO code", "DUO:12", 5),
    ]


def test_duplicates_are_collapsed_keeping_the_first_position() -> None:
    codes, problems = normalise(["hmb", "GRU", "duo:0000006", "gru", "DUO:0000042", "HMB"])
    assert codes == [HMB, GRU]
    assert problems == []


def test_blank_entries_are_ignored() -> None:
    assert normalise(["", "  ", "GRU", "\t"]) == ([GRU], [])
    assert normalise([]) == ([], [])


def test_the_field_name_and_missing_row_are_passed_through() -> None:
    _, [problem] = normalise(["nope"], field="conditions")
    assert problem.field == "conditions"
    assert problem.row is None
    assert "row" not in problem.as_dict()
