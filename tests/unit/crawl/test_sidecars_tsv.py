"""JSON/YAML sidecars and TSV sheets."""

from __future__ import annotations

import pytest

from steward.crawl.extractors.base import ExtractionFailed
from steward.crawl.extractors.sidecars import JsonSidecar, YamlSidecar
from steward.crawl.extractors.tsv import MAX_VALUES, TsvExtractor, field_name


def test_json_sidecar_fields() -> None:
    result = JsonSidecar().extract('{"title": "T", "organism": ["Homo sapiens"], "n": 3}', path="")
    assert result.fields == {"title": "T", "organism": ["Homo sapiens"], "n": 3}


def test_yaml_sidecar_turns_dates_into_text() -> None:
    result = YamlSidecar().extract("title: T\nreleased: 2024-03-01\ntags: [a, b]\n", path="")
    assert result.fields == {"title": "T", "released": "2024-03-01", "tags": ["a", "b"]}


@pytest.mark.parametrize(
    ("extractor", "text", "message"),
    [
        (JsonSidecar(), '{"title": "T",\n  oops}', "line 2"),
        (JsonSidecar(), '["a list"]', "not a mapping"),
        (YamlSidecar(), "title: [unclosed\nnext: 1\n", "line 2, column 5: while parsing"),
        (YamlSidecar(), "", "empty"),
        (YamlSidecar(), "a: 1\n---\nb: 2\n", "single document"),
    ],
)
def test_broken_sidecars_are_refused_with_the_place(
    extractor: JsonSidecar | YamlSidecar, text: str, message: str
) -> None:
    with pytest.raises(ExtractionFailed, match=message):
        extractor.extract(text, path="")


def test_yaml_errors_never_quote_the_document() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    with pytest.raises(ExtractionFailed) as exc:
        YamlSidecar().extract(f"key: {secret}: [\n", path="")
    assert secret not in str(exc.value)


def test_tsv_columns_become_fields_of_distinct_values() -> None:
    sheet = (
        "Sample\tOrganism Part\tOrganism\n"
        "s1\tliver\tHomo sapiens\n"
        "s2\tliver\tHomo sapiens\n"
        "s3\t\tMus musculus\textra\n"
    )
    result = TsvExtractor().extract(sheet, path="samples.tsv")
    assert result.fields == {
        "sample": ["s1", "s2", "s3"],
        "organism_part": ["liver"],
        "organism": ["Homo sapiens", "Mus musculus"],
    }
    assert result.notes == ("line 4 has 4 cells but the header has 3",)
    assert field_name(" Cell-Type (curated) ") == "cell_type_curated"


def test_tsv_keeps_a_bounded_number_of_values() -> None:
    sheet = "id\n" + "".join(f"v{i}\n" for i in range(MAX_VALUES + 5))
    result = TsvExtractor().extract(sheet, path="big.tsv")
    assert len(result.fields["id"]) == MAX_VALUES
    assert "more than 100 distinct values" in result.notes[0]
    with pytest.raises(ExtractionFailed):
        TsvExtractor().extract("\n\n", path="empty.tsv")
