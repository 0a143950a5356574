"""Paths of a manifest uploaded to the server: only the places the server lists are open."""

from __future__ import annotations

from pathlib import Path

import pytest

from steward.packaging.manifest_paths import PathRejected, Roots, normalise_uri

SETTING = "STEWARD_API_SOURCE_ROOTS"


def test_only_the_listed_places_are_open(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir()
    (tmp_path / "upload").mkdir()
    roots = Roots.make(None, [str(tmp_path / "open"), "s3://bucket/in"], confined_by=SETTING)
    assert normalise_uri(str(tmp_path / "open" / "a.fq"), roots)[1] == "a.fq"
    assert normalise_uri("s3://bucket/in/x/a.fq", roots)[0] == "s3://bucket/in/x/a.fq"
    for refused in (str(tmp_path / "upload" / "a.fq"), "s3://bucket/out/a.fq", "s3://other/a"):
        with pytest.raises(PathRejected) as caught:
            normalise_uri(refused, roots)
        assert SETTING in (caught.value.accepted or "")
    with pytest.raises(PathRejected, match="base_dir"):
        normalise_uri("runs/a.fq", roots)  # relative, and no base named


def test_with_nothing_listed_nothing_is_open_not_even_s3(tmp_path: Path) -> None:
    roots = Roots.make(tmp_path, [], confined_by=SETTING)
    for refused in (str(tmp_path / "a.fq"), "a.fq", "s3://bucket/a.fq"):
        with pytest.raises(PathRejected) as caught:
            normalise_uri(refused, roots)
        assert "none on this server" in (caught.value.accepted or "")


def test_a_named_base_inside_a_place_reads_relative_paths(tmp_path: Path) -> None:
    base = tmp_path / "open" / "cohort"
    base.mkdir(parents=True)
    roots = Roots.make(base, [str(tmp_path / "open")], confined_by=SETTING)
    assert normalise_uri("runs/a.fq", roots)[0] == (base / "runs" / "a.fq").as_uri()
    (base / "out.fq").symlink_to(tmp_path / "elsewhere.fq")
    with pytest.raises(PathRejected, match="leads to"):
        normalise_uri("out.fq", roots)


def test_unconfined_manifests_keep_their_own_folder(tmp_path: Path) -> None:
    roots = Roots.make(tmp_path, [])
    assert normalise_uri("a.fq", roots)[0] == (tmp_path / "a.fq").as_uri()
    assert normalise_uri("s3://any/a.fq", roots)[0] == "s3://any/a.fq"
