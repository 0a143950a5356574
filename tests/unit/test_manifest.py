"""Manifests: real CSV/TSV/XLSX files and real data files in a temporary folder.

Every check has a test that fails without it; one test puts many problems in one manifest and
asserts that each is reported with its line and column.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from steward.errors import NotFound, ValidationFailed
from steward.packaging.manifest import (
    DATA_TYPES,
    DEFAULT_LAYOUT,
    FileFacts,
    Manifest,
    filter_manifest,
    load_manifest,
    local_path,
    local_stat,
    plan_layout,
)

EXAMPLE = Path(__file__).parent.parent / "data" / "manifests" / "example"
HEADER = [
    "sample_id",
    "library_id",
    "subject_id",
    "project_id",
    "data_type",
    "run_id",
    "lane",
    "uri",
    "size",
    "md5",
]
WF_HEADER = ["library_id", "workflow_name", "portal_run_id", "uri"]


def write(path: Path, rows: Sequence[Any], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return path


def write_xlsx(path: Path, rows: Sequence[Any], extra_sheet: bool = False) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "samples"
    for row in rows:
        ws.append(list(row))
    if extra_sheet:
        wb.create_sheet("notes").append(["ignore me"])
    wb.save(path)
    return path


def data(root: Path, rel: str, content: bytes = b"ACGT\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def row(lib: str = "L1", uri: str = "d/a.fq", **kw: object) -> list[object]:
    values: dict[str, object] = {
        "sample_id": "S1",
        "library_id": lib,
        "subject_id": "P1",
        "project_id": "PRJ",
        "data_type": "fastq",
        "run_id": "R1",
        "lane": "1",
        "uri": uri,
        "size": "",
        "md5": "",
    }
    values.update(kw)
    return [values[h] for h in HEADER]


def problems(exc: pytest.ExceptionInfo[ValidationFailed]) -> set[tuple[str | None, int | None]]:
    return {(d.field, d.row) for d in exc.value.details}


def fails(*args: object, **kw: object) -> pytest.ExceptionInfo[ValidationFailed]:
    with pytest.raises(ValidationFailed) as exc:
        load_manifest(*args, **kw)  # type: ignore[arg-type]
    return exc


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Three small data files beside where the manifests will be written."""
    data(tmp_path, "d/a.fq", b"AAAA\n")
    data(tmp_path, "d/b.fq", b"BBBBBBBB\n")
    data(tmp_path, "d/c.bam", b"BAM")
    return tmp_path


# --- reading -------------------------------------------------------------------------------


def test_example_manifests_load_join_and_lay_out() -> None:
    m = load_manifest(EXAMPLE / "samples.csv", EXAMPLE / "workflow.csv")
    assert [(r.source, r.line, r.library_id, r.data_type) for r in m.rows] == [
        ("samples", 2, "LIB1", "fastq"),
        ("samples", 3, "LIB1", "fastq"),
        ("samples", 4, "LIB2", "fastq"),
        ("workflow", 2, "LIB1", "bam"),
        ("workflow", 3, "LIB1", "vcf"),
    ]
    first, wf = m.rows[0], m.rows[3]
    assert first.uri == (EXAMPLE / "files/RUN1/LIB1_R1.fastq.gz").resolve().as_uri()
    assert first.extra == {"Note": "first read"}
    assert (wf.sample_id, wf.subject_id, wf.project_id) == ("SAM1", "SUBJ1", "PROJA")
    assert (wf.run_id, wf.workflow_name, wf.lane) == ("20250401abcd", "tumor-normal", None)
    assert m.rows[2].size == 16  # not in the manifest: filled in from storage
    assert m.libraries_without_files == ("LIB3",)
    assert m.projects == ("PROJA", "PROJB")
    assert m.data_types == ("fastq", "bam", "vcf")
    assert m.total_size == 16 * 3 + 4 + 21
    assert [r.line for r in m.by_section()["secondary"]] == [2, 3]
    assert "Note" in m.warnings[0].message
    paths = [p for _, p in plan_layout(m, DEFAULT_LAYOUT)]
    assert paths[0] == "PROJA/fastq/RUN1/LIB1/LIB1_R1.fastq.gz"
    assert paths[3] == "PROJA/bam/20250401abcd/LIB1/LIB1.bam"


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".xlsx"])
def test_every_format_reads_the_same(tree: Path, suffix: str) -> None:
    rows: list[list[Any]] = [HEADER, row(size=5, md5="AB" * 16), row("L2", "d/b.fq", lane=2)]
    path = tree / f"m{suffix}"
    if suffix == ".xlsx":
        # numbers as a spreadsheet stores them: 5.0 is "5", a lane of 2.0 is "2"
        rows[1][HEADER.index("size")] = 5.0
        rows[2][HEADER.index("lane")] = 2.0
        write_xlsx(path, rows)
    else:
        write(path, rows, "," if suffix == ".csv" else "\t")
    m = load_manifest(path)
    assert [(r.line, r.library_id, r.lane, r.size, r.md5) for r in m.rows] == [
        (2, "L1", "1", 5, "ab" * 16),
        (3, "L2", "2", 9, None),
    ]


def test_xlsx_other_sheets_are_a_warning_and_rows_keep_sheet_numbers(tree: Path) -> None:
    path = write_xlsx(tree / "m.xlsx", [HEADER, [], row()], extra_sheet=True)
    m = load_manifest(path)
    assert m.rows[0].line == 3
    assert any("only the first sheet" in w.message for w in m.warnings)


def test_damaged_xlsx(tmp_path: Path) -> None:
    (tmp_path / "m.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    exc = fails(tmp_path / "m.xlsx")
    assert "not a readable Excel workbook" in exc.value.details[0].message


def test_txt_must_be_tab_separated(tree: Path) -> None:
    exc = fails(write(tree / "m.txt", [HEADER, row()]))
    assert "separated by commas" in exc.value.details[0].message


@pytest.mark.parametrize("name", ["m.xls", "m.json", "manifest"])
def test_unsupported_kinds_of_file(tree: Path, name: str) -> None:
    (tree / name).write_text("sample_id\n")
    exc = fails(tree / name)
    assert exc.value.details[0].accepted is not None
    assert ".xlsx" in exc.value.details[0].accepted


def test_missing_manifest_file(tmp_path: Path) -> None:
    exc = fails(tmp_path / "nope.csv")
    assert exc.value.details[0].message == f"no such file: {tmp_path / 'nope.csv'}"


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "blank.csv").write_bytes(b"\n \n")
    assert fails(tmp_path / "empty.csv").value.details[0].message == "the file is empty"
    assert fails(tmp_path / "blank.csv").value.details[0].message == "the file is empty"
    exc = fails(write(tmp_path / "header.csv", [HEADER]))
    assert exc.value.details[0].message == "the file has a header but no rows"


def test_not_utf8_names_every_bad_line_and_keeps_checking(tree: Path) -> None:
    text = ",".join(HEADER) + "\n" + ",".join(map(str, row())) + "\n"
    raw = text.encode() + "S\xe9,L2,P,PRJ,fastq,R1,1,d/b.fq,,\n".encode("latin-1")
    raw += ",".join(map(str, row("L3", "d/missing.fq"))).encode() + b"\n"
    raw += "S\xe9,L4,P,PRJ,fastq,R1,1,d/c.fq,,\n".encode("latin-1")
    (tree / "m.csv").write_bytes(raw)
    exc = fails(tree / "m.csv")
    assert problems(exc) == {("m.csv", 3), ("m.csv", 5), ("m.csv:uri", 4)}
    assert "0xe9 is not UTF-8" in exc.value.details[0].message


def test_utf8_bom_is_fine_and_utf16_is_named(tree: Path) -> None:
    text = ",".join(HEADER) + "\r\n" + ",".join(map(str, row())) + "\r\n"
    (tree / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_manifest(tree / "bom.csv").rows[0].sample_id == "S1"
    (tree / "u16.csv").write_bytes(text.encode("utf-16"))
    exc = fails(tree / "u16.csv")
    assert [d.message.split(" (")[0] for d in exc.value.details] == [
        "the file is UTF-16 little-endian text"
    ]


SAMPLE_TEXT = ",".join(HEADER) + "\n" + ",".join(map(str, row())) + "\n"


@pytest.mark.parametrize(
    ("encoding", "named"),
    [
        ("utf-16-le", "UTF-16 little-endian text without a byte-order mark"),
        ("utf-16-be", "UTF-16 big-endian text without a byte-order mark"),
        ("utf-32-le", "UTF-32 little-endian text without a byte-order mark"),
        ("utf-32", "UTF-32 little-endian text (it starts with that encoding's byte-order mark"),
    ],
)
def test_wide_encodings_are_named_not_blamed_on_columns(
    tree: Path, encoding: str, named: str
) -> None:
    # read as UTF-8, NUL bytes decode "fine" and the header matched no column at all
    (tree / "m.csv").write_bytes(SAMPLE_TEXT.encode(encoding))
    exc = fails(tree / "m.csv")
    (only,) = exc.value.details
    assert named in only.message
    assert "read as UTF-8" in only.message
    assert (only.field, only.row) == ("m.csv", 1)
    assert only.value is not None
    assert only.value.startswith("first bytes: ")
    assert only.accepted is not None
    assert only.accepted.startswith("UTF-8 text")


def test_a_workbook_saved_under_a_text_name_is_named(tree: Path) -> None:
    write_xlsx(tree / "m.xlsx", [HEADER, row()])
    (tree / "m.csv").write_bytes((tree / "m.xlsx").read_bytes())
    (only,) = fails(tree / "m.csv").value.details
    assert "zip archive (an Excel .xlsx workbook?)" in only.message
    assert "name it .xlsx" in only.message


def test_a_stray_latin1_byte_names_encoding_line_and_offset(tree: Path) -> None:
    header = (",".join(HEADER) + "\n").encode()
    raw = header + "S\xe9,L1,P1,PRJ,fastq,R1,1,d/a.fq,,\n".encode("latin-1")
    (tree / "m.csv").write_bytes(raw)
    exc = fails(tree / "m.csv")
    # the only row is unreadable: that is the one problem, not "a header but no rows"
    (only,) = exc.value.details
    assert (only.field, only.row) == ("m.csv", 2)
    assert "0xe9 is not UTF-8" in only.message
    assert f"byte offset {len(header) + 1} of the file, position 2 of the line" in only.message
    assert "in Windows-1252/Latin-1 it is 'é'" in only.message
    assert only.value == "Sé,L1,P1,PRJ,fastq,R1,1,d/a.fq,,"
    assert only.accepted is not None
    assert "UTF-8" in only.accepted


@pytest.mark.parametrize("column", ["sample_id", "lane", "note"])
def test_a_nul_character_in_any_value_is_refused(tree: Path, column: str) -> None:
    # PostgreSQL cannot store NUL, in a column or in JSON: refused by line, not a crash later
    values = dict(zip([*HEADER, "note"], [*row(), "fine"], strict=True))
    values[column] = f"{values[column]}\x00x"
    write(tree / "m.csv", [[*HEADER, "note"], list(values.values())])
    details = fails(tree / "m.csv").value.details
    (only,) = [d for d in details if "NUL character" in d.message]
    assert (only.field, only.row, only.value) == (
        f"m.csv:{column}",
        2,
        f"{values[column][:-2]}\\0x",
    )


def test_an_undecodable_sample_line_does_not_accuse_the_workflow_rows(tree: Path) -> None:
    raw = SAMPLE_TEXT.encode() + "S\xe9,L2,P1,PRJ,fastq,R1,1,d/b.fq,,\n".encode("latin-1")
    (tree / "s.csv").write_bytes(raw)
    write(tree / "w.csv", [WF_HEADER, ["L2", "tn", "a1", "d/c.bam"]])
    exc = fails(tree / "s.csv", tree / "w.csv")
    # L2 is on the unreadable line: "library L2 is not in s.csv" would be false
    assert problems(exc) == {("s.csv", 3)}


def test_ragged_rows_truncation_and_unclosed_quotes(tree: Path) -> None:
    good = ",".join(map(str, row()))
    lines = [",".join(HEADER), good + ",,", good[: good.index("d/a.fq")], good + ",extra"]
    lines += [good + ',"x', "S,L9"]
    (tree / "m.csv").write_text("\n".join(lines))
    exc = fails(tree / "m.csv")
    details = exc.value.details
    # line 2: trailing empty cells are harmless; line 3: truncated; line 4: an extra value;
    # line 5: an unclosed quote swallows the rest of the file
    assert [(d.row, d.message.split(" (")[0]) for d in details] == [
        (3, "8 fields, but the header has 10"),
        (4, "11 fields, but the header has 10"),
        (5, "cannot read this line: unexpected end of data"),
    ]


def test_line_numbers_count_quoted_newlines(tree: Path) -> None:
    text = ",".join([*HEADER, "note"]) + "\n"
    text += ",".join(map(str, row())) + ',"two\nlines"\n'
    text += ",".join(map(str, row("L2", "d/b.fq", lane="zero"))) + ",\n"
    (tree / "m.csv").write_text(text)
    assert problems(fails(tree / "m.csv")) == {("m.csv:lane", 4)}


def test_values_in_nameless_columns_are_refused_but_empty_ones_are_not(tree: Path) -> None:
    write(tree / "ok.csv", [[*HEADER, ""], [*row(), ""]])
    assert len(load_manifest(tree / "ok.csv").rows) == 1
    write(tree / "bad.csv", [[*HEADER, ""], [*row(), "surprise"]])
    assert problems(fails(tree / "bad.csv")) == {("bad.csv:column 11", 2)}


# --- columns and aliases -------------------------------------------------------------------


def test_missing_columns_name_the_accepted_spellings(tree: Path) -> None:
    header = [h for h in HEADER if h not in ("library_id", "uri")]
    exc = fails(write(tree / "m.csv", [header, ["x"] * len(header)]))
    details = {d.field: d for d in exc.value.details}
    assert set(details) == {"m.csv:library_id", "m.csv:uri"}
    assert details["m.csv:uri"].row == 1
    assert "file_path" in (details["m.csv:uri"].accepted or "")
    assert "library" in (details["m.csv:library_id"].accepted or "")


def test_header_spellings_and_caller_aliases(tree: Path) -> None:
    header = [
        "Sample ID",
        "LIMS-Lib",
        "subject",
        "Project",
        "Type",
        "Instrument Run ID",
        "lane",
        "File Path",
        "md5sum",
        "SHA256",
    ]
    write(tree / "m.csv", [header, ["S1", "L1", "P", "PRJ", "FASTQ", "R1", "", "d/a.fq", "", ""]])
    m = load_manifest(tree / "m.csv", aliases={"library_id": ["lims lib"]})
    assert (m.rows[0].library_id, m.rows[0].data_type, m.rows[0].lane) == ("L1", "fastq", None)
    # without the caller's alias the library column is unknown, hence missing
    assert ("m.csv:library_id", 1) in problems(fails(tree / "m.csv"))


def test_headers_with_invisible_characters_still_match(tree: Path) -> None:
    header = [f"{h[:3]}\u200b{h[3:]}" if h == "library_id" else h for h in HEADER]
    header[0] = "\ufeff\u2060Sample\u00a0ID"
    m = load_manifest(write(tree / "m.csv", [header, row()]))
    assert (m.rows[0].sample_id, m.rows[0].library_id) == ("S1", "L1")
    assert m.warnings == ()


def test_caller_alias_overrides_a_default_spelling(tree: Path) -> None:
    header = ["sample", "library", *HEADER[2:]]  # this LIMS's "sample" holds the library
    write(tree / "m.csv", [header, ["L1", "S1", *row()[2:]]])
    m = load_manifest(tree / "m.csv", aliases={"library_id": "sample", "sample_id": ["library"]})
    assert (m.rows[0].library_id, m.rows[0].sample_id) == ("L1", "S1")


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ({"library_id": ["id"], "sample_id": ["ID"]}, "given for both library_id and sample_id"),
        ({"bogus": ["x"]}, "no such manifest column"),
        ({"library_id": ["sample_id"]}, "is the name of column sample_id"),
    ],
)
def test_inconsistent_aliases(tree: Path, aliases: dict[str, list[str]], message: str) -> None:
    write(tree / "m.csv", [HEADER, row()])
    exc = fails(tree / "m.csv", aliases=aliases)
    assert message in exc.value.details[0].message


def test_an_extra_column_named_twice(tree: Path) -> None:
    write(tree / "m.csv", [[*HEADER, "Note", "note"], [*row(), "a", "b"]])
    assert problems(fails(tree / "m.csv")) == {("m.csv:note", 1)}


def test_two_columns_meaning_the_same(tree: Path) -> None:
    write(tree / "m.csv", [[*HEADER, "path"], [*row(), "d/b.fq"]])
    exc = fails(tree / "m.csv")
    assert problems(exc) == {("m.csv:uri", 1)}
    assert "'uri' and 'path' both mean uri" in exc.value.details[0].message


# --- values --------------------------------------------------------------------------------


def test_empty_required_values(tree: Path) -> None:
    rows = [
        HEADER,
        row(sample_id=""),
        row("", "d/b.fq"),
        row(uri=""),  # a data type but no file: not a listing-only row
        row("L4", "d/c.bam", data_type="bam", run_id=""),  # run may be empty except for fastq
        row("L5", "d/e.fq", run_id=""),
        row("L6", "", data_type="", run_id="", subject_id=""),
    ]
    exc = fails(write(tree / "m.csv", rows), check_files=False)
    assert problems(exc) == {
        ("m.csv:sample_id", 2),
        ("m.csv:library_id", 3),
        ("m.csv:uri", 4),
        ("m.csv:run_id", 6),
        ("m.csv:subject_id", 7),
    }


def test_data_types_lanes_sizes_and_checksums(tree: Path) -> None:
    rows = [
        HEADER,
        row(data_type="fasta"),
        row("L2", "d/b.fq", lane="0"),
        row("L3", "d/c.bam", size="-1", data_type="BAM"),
        row("L4", "d/x1", md5="abc-3"),
        [*row("L5", "d/x2", md5="Z" * 32)],
    ]
    for name in ("x1", "x2"):
        data(tree, f"d/{name}")
    write(tree / "m.csv", rows)
    exc = fails(tree / "m.csv")
    assert problems(exc) == {
        ("m.csv:data_type", 2),
        ("m.csv:lane", 3),
        ("m.csv:size", 4),
        ("m.csv:md5", 5),
        ("m.csv:md5", 6),
    }
    unknown = exc.value.details[0]
    assert unknown.value == "fasta"
    assert unknown.accepted == ", ".join(DATA_TYPES)


def test_sha256_must_be_64_hex_digits(tree: Path) -> None:
    header = [*HEADER, "sha256"]
    rows = [header, [*row(), "A" * 64], [*row("L2", "d/b.fq"), "a" * 63]]
    exc = fails(write(tree / "m.csv", rows))
    assert problems(exc) == {("m.csv:sha256", 3)}


def test_duplicate_rows_and_files(tree: Path) -> None:
    rows = [HEADER, row(), row(), row("L2", "d/b.fq"), row("L3", "./d/b.fq")]
    exc = fails(write(tree / "m.csv", rows))
    assert [(d.field, d.row, d.message) for d in exc.value.details] == [
        ("m.csv", 3, "this row repeats line 2"),
        ("m.csv:uri", 5, f"this file ({(tree / 'd/b.fq').as_uri()}) is already listed at line 4"),
    ]


def test_a_library_belongs_to_one_sample_subject_and_project(tree: Path) -> None:
    rows = [HEADER, row(), row(uri="d/b.fq", sample_id="S2", project_id="OTHER")]
    exc = fails(write(tree / "m.csv", rows))
    assert problems(exc) == {("m.csv:sample_id", 3), ("m.csv:project_id", 3)}
    assert "line 2" in exc.value.details[0].message


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("../../etc/passwd", "'..' is not allowed"),
        ("d/../../etc/passwd", "'..' is not allowed"),
        ("/etc/passwd", "outside the folders"),
        ("file:///etc/passwd", "outside the folders"),
        ("file://elsewhere/etc/passwd", "must name this machine"),
        ("d\\a.fq", "backslashes"),
        ("d/", "names a folder"),
        ("s3:///key", "without a bucket"),
        ("s3://bucket", "must name an object"),
        ("s3://Bad_Bucket!/k", "not a valid bucket name"),
        ("s3://bucket/a/../k", "not allowed in object keys"),
        ("gs://bucket/k", "gs:// is not supported"),
        ("file:///data/a.fq?x=1", "with ? or #"),
        ("file://data/a.fq", "must name this machine"),
        ("d/a\x00.fq", "NUL character"),
    ],
)
def test_paths_that_may_not_be_used(tree: Path, uri: str, message: str) -> None:
    exc = fails(write(tree / "m.csv", [HEADER, row(uri=uri)]), check_files=False)
    (detail,) = exc.value.details
    assert (detail.field, detail.row, detail.value) == ("m.csv:uri", 2, uri)
    assert message in detail.message


def test_symlinks_are_judged_by_where_they_lead(tmp_path: Path) -> None:
    base, outside = tmp_path / "base", tmp_path / "outside"
    data(outside, "secret.txt", b"secret")
    data(base, "d/a.fq")
    (base / "d" / "leak.fq").symlink_to(outside / "secret.txt")
    (base / "d" / "ok.fq").symlink_to(base / "d" / "a.fq")
    write(base / "m.csv", [HEADER, row(uri="d/ok.fq"), row("L2", uri="d/leak.fq")])
    exc = fails(base / "m.csv")
    assert problems(exc) == {("m.csv:uri", 3)}
    assert str((outside / "secret.txt").resolve()) in exc.value.details[0].message
    # the same link is fine once the folder it leads to is allowed
    m = load_manifest(base / "m.csv", allowed_roots=[str(outside)])
    assert m.rows[1].uri == (base / "d" / "leak.fq").as_uri()  # the path as written
    assert m.rows[1].size == len(b"secret")


def test_absolute_paths_and_base_dir(tmp_path: Path) -> None:
    store, elsewhere = tmp_path / "store", tmp_path / "manifests"
    absolute = data(store, "run/a b#1.fq", b"xyz")
    data(store, "run/b.fq")
    write(elsewhere / "m.csv", [HEADER, row(uri=str(absolute)), row("L2", uri="run/b.fq")])
    # relative paths resolve against base_dir, which is also a root for absolute ones
    m = load_manifest(elsewhere / "m.csv", base_dir=store)
    assert [r.uri for r in m.rows] == [absolute.as_uri(), (store / "run/b.fq").as_uri()]
    assert problems(fails(elsewhere / "m.csv")) == {("m.csv:uri", 2), ("m.csv:uri", 3)}

    write(elsewhere / "m.csv", [HEADER, row(uri=absolute.as_uri())])
    assert problems(fails(elsewhere / "m.csv")) == {("m.csv:uri", 2)}
    m = load_manifest(elsewhere / "m.csv", allowed_roots=[store.as_uri()])
    assert local_path(m.rows[0].uri) == absolute
    assert (m.rows[0].file_name, m.rows[0].size) == ("a b#1.fq", 3)


def test_s3_roots_restrict_s3_uris(tree: Path) -> None:
    write(tree / "m.csv", [HEADER, row(uri="s3://good/p/a.fq"), row("L2", "s3://other/a.fq")])
    exc = fails(tree / "m.csv", allowed_roots=["s3://good/p/"], check_files=False)
    assert problems(exc) == {("m.csv:uri", 3)}
    m = load_manifest(tree / "m.csv", check_files=False)
    assert m.rows[1].uri == "s3://other/a.fq"


# --- files in storage ----------------------------------------------------------------------


def test_missing_files_and_wrong_sizes(tree: Path) -> None:
    rows = [
        HEADER,
        row(size=5),
        row("L2", "d/b.fq", size=3),
        row("L3", "d/nope.fq"),
        row("L4", "d"),
    ]
    exc = fails(write(tree / "m.csv", rows))
    details = {(d.field, d.row): d for d in exc.value.details}
    assert set(details) == {("m.csv:size", 3), ("m.csv:uri", 4), ("m.csv:uri", 5)}
    assert details[("m.csv:size", 3)].accepted == "9"
    folder = (tree / "d").as_uri()
    assert details[("m.csv:uri", 5)].message == f"no such file: {folder}"  # not a file
    assert load_manifest(tree / "m.csv", check_files=False).rows[2].size is None


def test_storage_errors_become_details(tree: Path) -> None:
    (tree / "d" / "loop1").symlink_to("loop2")
    (tree / "d" / "loop2").symlink_to("loop1")
    exc = fails(write(tree / "m.csv", [HEADER, row(uri="d/loop1")]))
    assert [(d.row, d.message) for d in exc.value.details] == [
        (2, f"cannot check {(tree / 'd' / 'loop1').as_uri()}: Too many levels of symbolic links")
    ]


class Bucket:
    """A stat over an in-memory listing, standing in for what the storage adapter reports."""

    def __init__(self, objects: dict[str, FileFacts]) -> None:
        self.objects = objects
        self.calls = 0

    def __call__(self, uri: str) -> FileFacts | None:
        self.calls += 1
        if uri.endswith("boom"):
            raise NotFound("access denied to the bucket")
        if uri.startswith("file://"):
            return local_stat(uri)
        return self.objects.get(uri)


def test_s3_files_through_a_stat(tree: Path) -> None:
    md5 = "0123456789abcdef" * 2
    bucket = Bucket(
        {
            "s3://bkt/a.fq": FileFacts(10, "DEEP_ARCHIVE", md5),
            "s3://bkt/b.fq": FileFacts(10, None, md5),
        }
    )
    rows = [
        HEADER,
        row(uri="s3://bkt/a.fq", md5=md5.upper()),
        row("L2", "s3://bkt/b.fq", md5="f" * 32),
        row("L3", "s3://bkt/gone.fq"),
        row("L4", "s3://bkt/boom"),
        row("L5", "d/a.fq"),
    ]
    exc = fails(write(tree / "m.csv", rows), stat=bucket)
    details = {(d.field, d.row): d.message for d in exc.value.details}
    assert details == {
        ("m.csv:md5", 3): f"the manifest says md5 {'f' * 32}; storage reports {md5}",
        ("m.csv:uri", 4): "no such file: s3://bkt/gone.fq",
        ("m.csv:uri", 5): "cannot check s3://bkt/boom: access denied to the bucket",
    }
    write(tree / "m.csv", rows[:2] + rows[-1:])
    m = load_manifest(tree / "m.csv", stat=bucket)
    assert (m.rows[0].size, m.rows[0].storage_class, m.rows[0].md5) == (10, "DEEP_ARCHIVE", md5)


def test_s3_files_without_a_stat_are_one_problem(tree: Path) -> None:
    rows = [HEADER, row(uri="s3://bkt/a.fq"), row("L2", "s3://bkt/b.fq"), row("L3", "d/nope.fq")]
    exc = fails(write(tree / "m.csv", rows))
    assert [(d.row, d.message) for d in exc.value.details] == [
        (2, "2 s3:// file(s) cannot be checked without storage access (no stat was given)"),
        (4, f"no such file: {(tree / 'd' / 'nope.fq').as_uri()}"),
    ]
    assert load_manifest(tree / "m.csv", check_files=False).rows[0].uri == "s3://bkt/a.fq"


def test_stat_calls_run_concurrently(tree: Path) -> None:
    # each call waits for another one to start: one at a time, the barrier would break
    barrier = threading.Barrier(4, timeout=10)
    threads: set[int] = set()

    def stat(uri: str) -> FileFacts | None:
        threads.add(threading.get_ident())
        barrier.wait()
        return FileFacts(1)

    rows = [HEADER] + [row(f"L{i}", f"s3://bkt/{i}.fq") for i in range(8)]
    m = load_manifest(write(tree / "m.csv", rows), stat=stat, workers=4)
    assert len(m.rows) == 8
    assert len(threads) == 4


# --- everything at once --------------------------------------------------------------------


def test_many_problems_are_all_reported_with_line_and_column(tree: Path) -> None:
    rows = [
        [*HEADER, "comment"],
        [*row(), "fine"],
        [*row("L2", "../outside.fq"), ""],  # 3
        [*row("L3", "d/b.fq", data_type="fasta", lane="x"), ""],  # 4
        [*row("L4", "d/missing.fq", size="12"), ""],  # 5
        [*row("L5", "d/c.bam", data_type="bam", size="99", md5="nothex"), ""],  # 6
        [*row(), "fine"],  # 7: repeats line 2
        [*row("L8", "d/a.fq", sample_id=""), ""],  # 8: empty sample, same file as line 2
        ["S9", "L9", "P", "PRJ"],  # 9: truncated
    ]
    write(tree / "samples.csv", rows)
    write(
        tree / "wf.tsv",
        [
            WF_HEADER,
            ["L1", "dragen", "wr1", "d/c.bam"],
            ["NOPE", "dragen", "wr1", "d/b.fq"],
            ["L1", "", "wr1", "d/x.vcf"],
        ],
        "\t",
    )
    exc = fails(tree / "samples.csv", tree / "wf.tsv")
    assert [(d.field, d.row) for d in exc.value.details] == [
        ("samples.csv:uri", 3),
        ("samples.csv:data_type", 4),
        ("samples.csv:lane", 4),
        ("samples.csv:uri", 5),
        ("samples.csv:md5", 6),
        ("samples.csv:size", 6),
        ("samples.csv", 7),
        ("samples.csv:sample_id", 8),
        ("samples.csv:uri", 8),
        ("samples.csv", 9),
        ("wf.tsv:uri", 2),  # d/c.bam is in samples.csv too
        ("wf.tsv:uri", 3),  # and d/b.fq
        ("wf.tsv:library_id", 3),
        ("wf.tsv:workflow_name", 4),
        ("wf.tsv:uri", 4),
    ]
    assert str(exc.value) == (
        "the manifests have 15 problems (samples.csv: 10, wf.tsv: 5); nothing was built"
    )
    # what was given is in every message, not only in the JSON's "value"
    for d in exc.value.details:
        assert d.value is None or d.value in str(d), d
    wf_missing = exc.value.details[12]
    assert (wf_missing.value, wf_missing.message) == ("NOPE", "library NOPE is not in samples.csv")


# --- ids that only look alike ----------------------------------------------------------------


def test_look_alike_library_ids_warn_by_default_and_are_refused_when_strict(tree: Path) -> None:
    data(tree, "d/d.fq")
    rows = [
        HEADER,
        row("L1", "d/a.fq"),
        row("l1", "d/b.fq"),  # letter case
        row("L1\u200b", "d/c.bam", data_type="bam"),  # a zero-width space
        row("L2", "d/d.fq", sample_id="S2"),
    ]
    write(tree / "m.csv", rows)
    m = load_manifest(tree / "m.csv")
    assert len(m.rows) == 4  # accepted, but not silently
    (warning,) = m.warnings
    assert (warning.field, warning.row) == ("m.csv:library_id", 3)
    assert "'L1' (line 2), 'l1' (line 3) and 'L1<U+200B>' (line 4)" in warning.message
    assert "letter case" in warning.message
    assert "U+200B ZERO WIDTH SPACE" in warning.message
    exc = fails(tree / "m.csv", strict_ids=True)
    (problem,) = exc.value.details
    assert problem.message.startswith(warning.message.split("; ")[0])
    assert "--strict-ids" in problem.message
    assert problem.accepted == "one spelling for each of the libraries, e.g. 'L1'"


@pytest.mark.parametrize(
    ("hidden", "name"),
    [
        ("\u00a0", "U+00A0 NO-BREAK SPACE"),
        ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("\u200d", "U+200D ZERO WIDTH JOINER"),
        ("\u2060", "U+2060 WORD JOINER"),
    ],
)
def test_ids_with_invisible_characters(tree: Path, hidden: str, name: str) -> None:
    write(tree / "m.csv", [HEADER, row(sample_id=f"S{hidden}1")])
    (warning,) = load_manifest(tree / "m.csv").warnings
    assert (warning.field, warning.row) == ("m.csv:sample_id", 2)
    assert name in warning.message
    assert warning.value == f"'S<U+{ord(hidden):04X}>1'"
    (problem,) = fails(tree / "m.csv", strict_ids=True).value.details
    assert name in problem.message


def test_case_twins_in_other_id_columns(tree: Path) -> None:
    write(
        tree / "m.csv",
        [HEADER, row(project_id="PRJ"), row("L2", "d/b.fq", project_id="prj", run_id="r1")],
    )
    warnings = {w.field: w for w in load_manifest(tree / "m.csv").warnings}
    assert set(warnings) == {"m.csv:project_id", "m.csv:run_id"}
    assert "kept as different projects" in warnings["m.csv:project_id"].message


def test_a_workflow_library_that_only_looks_like_one_is_named(tree: Path) -> None:
    write(tree / "s.csv", [HEADER, row()])
    write(tree / "w.csv", [WF_HEADER, ["L1\u200b", "tn", "a1", "d/c.bam"]])
    exc = fails(tree / "s.csv", tree / "w.csv")
    (problem,) = [d for d in exc.value.details if d.field == "w.csv:library_id"]
    assert problem.message == (
        "library 'L1<U+200B>' is not in s.csv; 'L1' is, which differs only by characters "
        "nobody can see (U+200B ZERO WIDTH SPACE)"
    )


def test_a_filter_value_that_only_looks_like_one_is_named(tree: Path) -> None:
    write(tree / "m.csv", [HEADER, row()])
    with pytest.raises(ValidationFailed) as exc:
        filter_manifest(load_manifest(tree / "m.csv"), samples=["s1"])
    assert exc.value.details[0].message == "no sample 's1' in the manifest (did you mean 'S1'?)"


# --- workflow manifests --------------------------------------------------------------------


def test_workflow_rows_join_on_library_and_are_cross_checked(tree: Path) -> None:
    data(tree, "w/L1.bam.bai")
    data(tree, "w/L1.vcf.gz")
    data(tree, "w/L1.html")
    write(tree / "s.csv", [HEADER, row(), row("L2", "d/b.fq", sample_id="S2")])
    header = ["Library", "Workflow", "analysis_run_id", "path", "project", "sequencing_run_id"]
    write(
        tree / "w.csv",
        [
            header,
            ["L1", "tn", "a1", "w/L1.bam.bai", "PRJ", "R1"],
            ["L1", "tn", "a1", "w/L1.vcf.gz", "", ""],
            ["L2", "tn", "a2", "w/L1.html", "", ""],
        ],
    )
    m = load_manifest(tree / "s.csv", tree / "w.csv")
    wf = [r for r in m.rows if r.source == "workflow"]
    assert [(r.library_id, r.sample_id, r.data_type, r.run_id) for r in wf] == [
        ("L1", "S1", "bam", "a1"),
        ("L1", "S1", "vcf", "a1"),
        ("L2", "S2", "secondary", "a2"),
    ]
    assert wf[0].extra == {"sequencing_run_id": "R1"}
    assert wf[0].section == "secondary"
    write(tree / "w.csv", [header, ["L1", "tn", "a1", "w/L1.vcf.gz", "OTHER", ""]])
    exc = fails(tree / "s.csv", tree / "w.csv")
    assert problems(exc) == {("w.csv:project_id", 2)}
    assert exc.value.details[0].accepted == "PRJ"


def test_a_file_in_both_manifests_is_a_duplicate(tree: Path) -> None:
    write(tree / "s.csv", [HEADER, row()])
    write(tree / "w.csv", [WF_HEADER, ["L1", "tn", "a1", "d/a.fq"]])
    exc = fails(tree / "s.csv", tree / "w.csv")
    assert [(d.field, d.row, d.message) for d in exc.value.details] == [
        (
            "w.csv:uri",
            2,
            f"this file ({(tree / 'd/a.fq').as_uri()}) is already listed at line 2 of s.csv",
        ),
    ]


def test_an_unreadable_sample_file_does_not_accuse_the_workflow_rows(tree: Path) -> None:
    (tree / "s.csv").write_text(",".join(HEADER) + '\nS1,"L1\n')
    write(tree / "w.csv", [WF_HEADER, ["L1", "tn", "a1", "d/c.bam"]])
    exc = fails(tree / "s.csv", tree / "w.csv")
    assert problems(exc) == {("s.csv", 2)}


def test_manifests_with_the_same_name_are_told_apart(tree: Path) -> None:
    write(tree / "a" / "m.csv", [HEADER, row(uri="../d/a.fq")])
    write(tree / "b" / "m.csv", [WF_HEADER, ["L1", "tn", "a1", "nope.bam"]])
    exc = fails(tree / "a" / "m.csv", tree / "b" / "m.csv", base_dir=tree)
    fields = [d.field or "" for d in exc.value.details]
    assert fields[0].startswith(str(tree / "a" / "m.csv"))
    assert fields[1].startswith(str(tree / "b" / "m.csv"))


# --- filters -------------------------------------------------------------------------------


@pytest.fixture
def two_projects(tree: Path) -> Manifest:
    data(tree, "d/w.vcf")
    rows = [
        HEADER,
        row(),
        row("L2", "d/b.fq", project_id="OTHER", sample_id="S2", run_id="R2"),
        row("L3", "d/c.bam", sample_id="S3", data_type="bam", run_id=""),
        row("L4", "", sample_id="S4", data_type="", run_id="R1"),  # listed, no files
    ]
    write(tree / "s.csv", rows)
    write(tree / "w.csv", [WF_HEADER, ["L1", "tn", "a1", "d/w.vcf"]])
    return load_manifest(tree / "s.csv", tree / "w.csv")


def lines(m: Manifest) -> list[tuple[str, int]]:
    return [(r.source, r.line) for r in m.rows]


def test_filters(two_projects: Manifest) -> None:
    m = two_projects
    assert lines(filter_manifest(m)) == lines(m)
    assert lines(filter_manifest(m, projects=["PRJ"])) == [
        ("samples", 2),
        ("samples", 4),
        ("workflow", 2),
    ]
    assert lines(filter_manifest(m, samples=["S2"])) == [("samples", 3)]
    assert lines(filter_manifest(m, libraries=["L3", "L2"])) == [("samples", 3), ("samples", 4)]
    assert lines(filter_manifest(m, data_types=["BAM", "vcf"])) == [("samples", 4), ("workflow", 2)]
    # a sequencing run brings the workflow outputs of the libraries sequenced in it
    assert lines(filter_manifest(m, runs=["R1"])) == [("samples", 2), ("workflow", 2)]
    assert lines(filter_manifest(m, runs=["a1"])) == [("workflow", 2)]
    assert lines(filter_manifest(m, projects=["PRJ"], data_types=["fastq"])) == [("samples", 2)]


def test_libraries_without_files_after_filtering(two_projects: Manifest) -> None:
    assert two_projects.libraries_without_files == ("L4",)
    fastq = filter_manifest(two_projects, projects=["PRJ"], data_types=["fastq"])
    assert fastq.libraries_without_files == ("L3", "L4")
    assert filter_manifest(two_projects, runs=["R2"]).libraries_without_files == ()


def test_filter_values_that_match_nothing(two_projects: Manifest) -> None:
    with pytest.raises(ValidationFailed) as exc:
        filter_manifest(
            two_projects,
            projects=["PRJ", "PJR"],
            samples=["S9"],
            runs=["R3"],
            data_types=["cram", "fasta"],
        )
    details = {(d.field, d.value): d.accepted for d in exc.value.details}
    assert details == {
        ("project", "PJR"): "OTHER, PRJ",
        ("sample", "S9"): "S1, S2, S3, S4",
        ("run", "R3"): "R1, R2, a1",
        ("data_type", "cram"): "fastq, bam, vcf",
        ("data_type", "fasta"): ", ".join(DATA_TYPES),
    }


def test_filters_that_select_nothing_together(two_projects: Manifest) -> None:
    with pytest.raises(ValidationFailed) as exc:
        filter_manifest(two_projects, projects=["OTHER"], data_types=["bam"])
    assert str(exc.value) == "no file matches all the filters together"
    assert {d.field for d in exc.value.details} == {"project", "data_type"}
