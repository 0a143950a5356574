"""Layout planning: where each manifest row lands under ``data/``, and why it cannot escape."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.errors import ValidationFailed
from steward.packaging.layout import DEFAULT_LAYOUT, plan_layout, sanitise_component
from steward.packaging.manifest_model import DATA_TYPES, Manifest, ManifestRow, section_of


def make(**kw: object) -> ManifestRow:
    values: dict[str, object] = {
        "source": "samples",
        "line": 2,
        "sample_id": "S1",
        "library_id": "L1",
        "subject_id": "P1",
        "project_id": "PRJ",
        "data_type": "fastq",
        "run_id": "R1",
        "lane": "1",
        "uri": "s3://bkt/a.fq",
        "file_name": "a.fq",
    }
    values.update(kw)
    return ManifestRow(**values)  # type: ignore[arg-type]


def test_layout_templates() -> None:
    m = Manifest((make(), make(line=3, data_type="vcf", run_id="", file_name="x.vcf", lane=None)))
    assert [p for _, p in plan_layout(m)] == ["PRJ/fastq/R1/L1/a.fq", "PRJ/vcf/L1/x.vcf"]
    plan = plan_layout(m, "{section}/{subject_id}_{sample_id}/lane-{lane}/{file}")
    assert [p for _, p in plan] == ["fastq/P1_S1/lane-1/a.fq", "secondary/P1_S1/lane-/x.vcf"]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{project}/{file}", "unknown placeholder {project}"),
        ("{lane:03}/{file}", "placeholders take no format"),
        ("{file!r}", "placeholders take no format"),
        ("/{file}", "must be relative"),
        ("{file", "unreadable braces"),
        ("../{file}", "'..' is not a folder name"),
        ("all/the.same", "has no placeholder"),
        ("", "the layout is empty"),
    ],
)
def test_bad_layout_templates(template: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        plan_layout(Manifest((make(),)), template)
    assert message in exc.value.details[0].message
    if "placeholder {" in message:
        assert "{workflow_name}" in (exc.value.details[0].accepted or "")


def test_layout_collisions_name_both_rows() -> None:
    rows = (
        make(),
        make(source="workflow", line=5, uri="s3://bkt/other/a.fq"),
        make(line=3, file_name="A.FQ", uri="s3://bkt/A.FQ"),
        make(line=4, library_id="L1/a.fq", file_name="x", uri="s3://bkt/x"),
    )
    with pytest.raises(ValidationFailed) as exc:
        plan_layout(Manifest(rows))
    messages = [(d.row, d.message) for d in exc.value.details]
    assert messages == [
        (5, "workflow line 5 and samples line 2 would both be stored at 'PRJ/fastq/R1/L1/a.fq'"),
        (
            3,
            "samples line 3 and samples line 2 would both be stored at 'PRJ/fastq/R1/L1/A.FQ' "
            "(as 'PRJ/fastq/R1/L1/a.fq'; only letter case differs)",
        ),
    ]
    # without a lane the first row is the file "L1"; the second needs "L1" to be a folder
    nested = (make(lane=None), make(line=3, uri="s3://bkt/z", lane="9"))
    with pytest.raises(ValidationFailed) as exc:
        plan_layout(Manifest(nested), "{library_id}/{lane}")
    assert [d.message for d in exc.value.details] == [
        "samples line 2 would be stored at 'L1', a folder samples line 3 needs"
    ]


def test_names_too_long_and_rows_without_a_path() -> None:
    rows = (make(library_id="é" * 128), make(line=3, lane=None, library_id=""))
    with pytest.raises(ValidationFailed) as exc:
        plan_layout(Manifest(rows), "{library_id}{lane}")
    assert [(d.row, d.message) for d in exc.value.details] == [
        (2, "samples line 2: a name longer than 255 bytes"),
        (3, "samples line 3: the layout gives this file no path"),
    ]


def test_values_cannot_escape_or_hide() -> None:
    row = make(
        project_id="../..",
        library_id="a/b",
        run_id=".hidden",
        sample_id="\x1b[31m",
        subject_id="CON",
        file_name="x\u202egpj.exe",
    )
    ((_, path),) = plan_layout(
        Manifest((row,)), "{project_id}/{subject_id}/{sample_id}/{run_id}/{library_id}/{file}"
    )
    assert path == "_._/_CON/_[31m/_hidden/a_b/x_gpj.exe"


_COMPONENT_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    values=st.fixed_dictionaries(
        dict.fromkeys(
            ("project_id", "sample_id", "library_id", "subject_id", "run_id", "lane"),
            _COMPONENT_TEXT,
        )
    ),
    file_name=_COMPONENT_TEXT.filter(str.strip),
    template=st.sampled_from(
        [
            DEFAULT_LAYOUT,
            "{run_id}{lane}/x.{sample_id}/{file}",
            "..{project_id}/{library_id}..{file}",
        ]
    ),
)
def test_layout_never_escapes_and_never_leaves_empty_components(
    values: dict[str, str], file_name: str, template: str
) -> None:
    ((_, path),) = plan_layout(Manifest((make(file_name=file_name, **values),)), template)
    assert path
    assert not path.startswith("/")
    for part in path.split("/"):
        assert part
        assert part == sanitise_component(part)
        assert not part.startswith(".")
        assert part.strip() == part
        assert "\\" not in part
        assert "%" not in part
        assert all(c.isprintable() or c == " " for c in part)
    root = Path("/pkg/data")
    assert Path(os.path.normpath(root / path)).is_relative_to(root)


def test_sections() -> None:
    assert [section_of(t) for t in DATA_TYPES] == [
        "fastq",
        "secondary",
        "secondary",
        "secondary",
        "secondary",
        "other",
    ]


def test_percent_never_reaches_a_layout_name() -> None:
    """RFC 8493 writes '%' as '%25' in manifests, which bagit-python 1.9 and bdbag 1.8 do not
    decode: such a bag fails their validation. The layout maps '%' like the other unsafe
    characters, so every bag Steward builds is accepted by those tools."""
    assert sanitise_component("50%_done%25.fq") == "50__done_25.fq"
    row = make(library_id="L%1", run_id="R%", file_name="a%0Ab%.fq")
    ((_, path),) = plan_layout(Manifest((row,)))
    assert path == "PRJ/fastq/R_/L_1/a_0Ab_.fq"
    assert "%" not in path
