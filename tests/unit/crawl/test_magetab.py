"""MAGE-TAB IDF and SDRF, on a test set written by hand from the MAGE-TAB 1.1 specification.

``magetab/E-MTAB-1001.idf.txt`` has quoted values holding tabs and doubled quotes, a comment
line, an empty line, several people with several roles (one with no e-mail and an empty middle
initial), secondary accessions split both by tabs and by ``;``, a ``Comment [AEExperimentType]``
spelled with a space, and Windows line ends. ``E-MTAB-1001.sdrf.txt`` has two organisms, a
commented-out row, a quoted row, a row padded with empty cells and one with a stray cell.
``E-MTAB-1003.idf.txt`` is Latin-1 (see test_extract.py for the fallback); ``E-MTAB-1002.idf.txt``
never closes a quote; ``not-an-idf.idf.txt`` is an error page saved under an IDF's name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.crawl.extractors.base import ExtractionFailed
from steward.crawl.extractors.magetab import IdfExtractor, SdrfExtractor
from steward.crawl.extractors.tabular import read_rows, split_tag

SET = Path(__file__).parent / "magetab"


def text(name: str) -> str:
    return (SET / name).read_text(encoding="utf-8")


def test_idf_fields() -> None:
    result = IdfExtractor().extract(text("E-MTAB-1001.idf.txt"), path="E-MTAB-1001.idf.txt")
    fields = result.fields
    assert fields["title"] == 'RNA-seq of human liver, "fasting" vs fed'
    assert fields["description"] == "Livers were sampled after 24 h of fasting\tor after a meal."
    assert fields["experiment_type"] == ["RNA-seq of coding RNA"]
    assert fields["secondary_accessions"] == ["GSE5001", "ERP000123", "PRJEB1234"]
    assert fields["accession"] == "E-MTAB-1001"
    assert fields["release_date"] == "2024-03-01"
    assert fields["mage_tab_version"] == "1.1"
    assert fields["sdrf_files"] == ["E-MTAB-1001.sdrf.txt"]
    assert fields["submitters"] == ["Ann B Smith"]
    assert fields["curators"] == ["Marie Curie"]
    assert fields["persons"] == [
        {
            "name": "Ann B Smith",
            "email": "ann@example.org",
            "affiliation": "EBI",
            "roles": ["submitter", "investigator"],
        },
        {
            "name": "Jörg Müller",
            "email": "joerg@example.org",
            "affiliation": 'Uni Heidelberg, Dept. "A"',
            "roles": ["investigator"],
        },
        {"name": "Marie Curie", "affiliation": "EBI", "roles": ["curator"]},
    ]
    assert result.notes == ()


def test_idf_tags_ignore_case_and_spaces_and_stop_at_an_sdrf_section() -> None:
    combined = (
        "[IDF]\n"
        "investigation title\tOne\n"
        "COMMENT [aeexperimenttype]\tChIP-seq\n"
        "Investigation Title\tTwo\n"
        "[SDRF]\n"
        "Source Name\tCharacteristics[organism]\n"
        "s1\tHomo sapiens\n"
    )
    result = IdfExtractor().extract(combined, path="x.idf.txt")
    assert result.fields["title"] == "One"
    assert result.fields["experiment_type"] == ["ChIP-seq"]
    assert "Source Name" not in str(result.fields)
    assert result.notes == ("Investigation Title has 2 values; the first is used",)


def test_sdrf_fields() -> None:
    result = SdrfExtractor().extract(text("E-MTAB-1001.sdrf.txt"), path="E-MTAB-1001.sdrf.txt")
    assert result.fields == {
        "organism": ["Homo sapiens", "Mus musculus"],
        "library_strategy": ["RNA-Seq"],
        "library_source": ["TRANSCRIPTOMIC"],
        "library_selection": ["cDNA"],
        "library_layout": ["PAIRED", "SINGLE"],
        "sources": 3,
        "assays": 4,
        "rows": 4,
    }
    assert result.notes == (
        "line 6 has 16 cells but the header has 15; the extra cells are ignored",
    )


def test_a_broken_file_says_where_it_is_broken() -> None:
    with pytest.raises(ExtractionFailed, match="line 3: a quoted value is never closed"):
        IdfExtractor().extract(text("E-MTAB-1002.idf.txt"), path="E-MTAB-1002.idf.txt")


def test_a_file_that_is_not_magetab_is_refused() -> None:
    with pytest.raises(ExtractionFailed, match="not an IDF"):
        IdfExtractor().extract(text("not-an-idf.idf.txt"), path="not-an-idf.idf.txt")
    with pytest.raises(ExtractionFailed, match="not an SDRF"):
        SdrfExtractor().extract(text("not-an-idf.idf.txt"), path="x.sdrf.txt")
    with pytest.raises(ExtractionFailed, match="no header row"):
        SdrfExtractor().extract("# only a comment\n\n", path="x.sdrf.txt")


def test_extractors_choose_files_by_name_ignoring_case() -> None:
    idf, sdrf = IdfExtractor(), SdrfExtractor()
    assert idf.wants("sub/E-MTAB-1.IDF.txt")
    assert not idf.wants("E-MTAB-1.sdrf.txt")
    assert sdrf.wants("E-MTAB-1.sdrf.tsv")
    assert not sdrf.wants("sdrf.txt/data.fq")  # the folder's name does not count


def test_rows_keep_line_numbers_through_multi_line_values() -> None:
    rows = read_rows('a\t"one\ntwo"\n# comment\n\nb\t\\"x\\"\t"y\\""\n"#quoted"\tz\t\t\n')
    assert [(r.line, r.cells) for r in rows] == [
        (1, ("a", "one\ntwo")),
        (5, ("b", '\\"x\\"', 'y"')),  # backslashes are literal outside quotes
        (6, ("#quoted", "z")),  # a quoted # is data, not a comment
    ]
    assert split_tag("Characteristics [Organism Part]") == ("characteristics", "organism part")
