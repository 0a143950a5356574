"""``steward package …`` and ``steward share …`` as a person or a script uses them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from steward.services import access
from tests.conftest import CliResult, Consortium
from tests.packaging_data import Dataset, make_dataset, tree_digests

Cli = Callable[..., CliResult]


@pytest.fixture
def data(tmp_path: Path) -> Dataset:
    return make_dataset(tmp_path / "ds")


def _create(cli: Cli, data: Dataset, *extra: str) -> dict[str, object]:
    r = cli(
        "--as",
        "sam",
        "--json",
        "package",
        "create",
        "cup",
        "-p",
        "p1",
        "-m",
        str(data.manifest),
        "--workflow-manifest",
        str(data.workflow_manifest),
        *extra,
    )
    assert r.code == 0, r.out + r.err
    view = json.loads(r.out)
    assert isinstance(view, dict)
    return view


def test_create_list_show_files_validate_report(
    cli: Cli, consortium: Consortium, data: Dataset
) -> None:
    view = _create(cli, data)
    assert view["state"] == "built"
    pkg = str(view["id"])
    listed = cli("--as", "vic", "package", "list", "--state", "built", "--name", "cu")
    assert listed.code == 0
    assert pkg in listed.out
    assert "packages" in listed.out
    none = cli("--as", "vic", "--json", "package", "list", "--created-to", "2000-01-01")
    assert json.loads(none.out) == []
    # States in any case, as for requests; sorted newest first; an unknown order is named.
    upper = cli("--as", "vic", "--json", "package", "list", "--state", "BUILT", "--sort", "-id")
    assert [p["id"] for p in json.loads(upper.out)] == [pkg]
    bad = cli("--as", "vic", "package", "list", "--sort", "colour")
    assert bad.code == 2
    assert "colour" in bad.err
    assert "-created" in bad.err
    shown = cli("--as", "vic", "package", "show", pkg)
    assert shown.code == 0
    assert "build_started" in shown.out
    assert "fastq" in shown.out
    files = json.loads(cli("--as", "vic", "--json", "package", "files", pkg).out)
    assert len(files) == 12
    assert all(len(f["sha256"]) == 64 for f in files)
    ok = cli("--as", "vic", "package", "validate", pkg, "--full")
    assert ok.code == 0, ok.out + ok.err
    assert "valid" in ok.out
    where = cli("--as", "vic", "package", "report", pkg)
    assert where.code == 0
    assert Path(where.out.strip()).name == "report.html"


def test_validate_lists_every_problem_and_exits_1(
    cli: Cli, consortium: Consortium, data: Dataset, settings: object
) -> None:
    view = _create(cli, data)
    bag = Path(str(settings.home)) / "packages" / str(view["id"])
    victims = sorted((bag / "data").rglob("*.fastq.gz"))[:2]
    victims[0].write_bytes(b"tampered")  # wrong size and checksum
    victims[1].unlink()
    (bag / "data" / "extra.txt").write_text("not in the manifest")
    fast = cli("--as", "sam", "package", "validate", str(view["id"]), "--fast")
    assert fast.code == 1
    for name in (victims[0].name, victims[1].name, "extra.txt"):
        assert name in fast.out
    full = cli("--as", "sam", "--json", "package", "validate", str(view["id"]), "--full")
    assert full.code == 1
    assert len(json.loads(full.out)["problems"]) >= 3


def test_bad_manifest_is_a_usage_error_with_every_problem(
    cli: Cli, consortium: Consortium, data: Dataset
) -> None:
    lines = data.manifest.read_text().splitlines()
    lines[1] = lines[1].replace("fastq", "fasta")
    lines[3] = lines[3].replace("L001", "")
    data.manifest.write_text("\n".join(lines) + "\n")
    r = cli(
        "--as", "sam", "--json", "package", "create", "cup", "-p", "p1", "-m", str(data.manifest)
    )
    assert r.code == 2
    problem = json.loads(r.out)
    assert problem["code"] == "validation-failed"
    rows = {e.get("row") for e in problem["errors"]}
    assert {2, 4} <= rows
    assert json.loads(cli("--as", "sam", "--json", "package", "list").out) == []


def test_requesters_may_not_create_packages(
    cli: Cli, consortium: Consortium, data: Dataset
) -> None:
    r = cli("--as", "ada", "package", "create", "cup", "-p", "p1", "-m", str(data.manifest))
    assert r.code == 1
    assert "ada" in r.err


def test_push_to_a_folder_and_show_the_registry(
    cli: Cli, consortium: Consortium, data: Dataset, tmp_path: Path, settings: object
) -> None:
    view = _create(cli, data)
    pkg = str(view["id"])
    dest = tmp_path / "out"
    r = cli("--as", "sam", "--json", "share", "push", pkg, "--to", str(dest))
    assert r.code == 0, r.out + r.err
    share = json.loads(r.out)
    assert share["state"] == "succeeded"
    bag = Path(str(settings.home)) / "packages" / pkg
    assert tree_digests(dest / "cup") == tree_digests(bag)
    shown = cli("--as", "vic", "share", "show", share["id"], "--objects")
    assert shown.code == 0
    assert "bag-info.txt" in shown.out
    assert "verified" in shown.out
    listed = json.loads(cli("--as", "vic", "--json", "share", "list", "--package", pkg).out)
    assert [s["id"] for s in listed] == [share["id"]]
    bad = cli("--as", "sam", "share", "presign", pkg, "--expires", "soon")
    assert bad.code == 2
    assert "duration" in bad.err


def test_workflows_are_shown(cli: Cli, consortium: Consortium) -> None:
    for name in ("package", "share"):
        r = cli("workflow", "show", name, "--mermaid")
        assert r.code == 0
        assert "stateDiagram-v2" in r.out


def test_admin_can_see_packages_of_any_project(
    cli: Cli, consortium: Consortium, data: Dataset
) -> None:
    view = _create(cli, data)
    access.create_project(consortium.db, actor="admin", project_id="p2")
    listed = json.loads(cli("--as", "admin", "--json", "package", "list").out)
    assert [v["id"] for v in listed] == [view["id"]]


def _add_to_manifest(data: Dataset, *rows: str, note: bool = True) -> None:
    """Append rows (comma-separated, in the manifest's columns) and a column nobody asked for."""
    lines = data.manifest.read_text().splitlines()
    if note:
        lines = [lines[0] + ",Note"] + [line + "," for line in lines[1:]]
    data.manifest.write_text("\n".join([*lines, *rows]) + "\n")


def test_create_and_show_print_the_manifest_warnings(
    cli: Cli, consortium: Consortium, data: Dataset
) -> None:
    (data.root / "runs" / "RUN1" / "empty.fastq.gz").write_bytes(b"")
    _add_to_manifest(
        data,
        "S000,l000,SBJ000,PRJA,fastq,RUN1,2,runs/RUN1/empty.fastq.gz,",  # l000 looks like L000
    )
    r = cli("--as", "sam", "package", "create", "cup", "-p", "p1", "-m", str(data.manifest))
    assert r.code == 0, r.out + r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, r.err
    assert "columns kept but not used: Note" in warnings[0]
    assert "'L000' (line 2, 3) and 'l000' (line 9)" in r.err.replace("lines ", "line ")
    assert "1 file is empty (0 bytes): data/PRJA/fastq/RUN1/l000/empty.fastq.gz" in r.err
    pkg = r.out.split()[0]
    shown = cli("--as", "vic", "package", "show", pkg)
    assert shown.code == 0, shown.err
    section = shown.out[shown.out.index("warnings (from the manifest and its files):") :]
    for text in (
        "columns kept but not used: Note",
        "differ only by letter case",
        "empty (0 bytes)",
    ):
        assert text in section
    # --json is unchanged apart from additions: the package's own warnings, and all of them
    detail = json.loads(cli("--as", "vic", "--json", "package", "show", pkg).out)
    assert len(detail["package"]["warnings"]) == 2
    assert detail["warnings"][:2] == detail["package"]["warnings"]
    assert "empty (0 bytes)" in detail["warnings"][2]


def test_look_alike_ids_are_refused_with_strict_ids_or_the_setting(
    cli: Cli, consortium: Consortium, data: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data.root / "runs" / "RUN1" / "more.fastq.gz").write_bytes(b"ACGT")
    _add_to_manifest(
        data, "S000,L000\u200b,SBJ000,PRJA,fastq,RUN1,2,runs/RUN1/more.fastq.gz", note=False
    )
    args = ("--as", "sam", "package", "create", "cup", "-p", "p1", "-m", str(data.manifest))
    strict = cli(*args, "--strict-ids", "--no-build")
    assert strict.code == 2
    assert "U+200B ZERO WIDTH SPACE" in strict.err
    assert "refused because ids are checked strictly" in strict.err
    monkeypatch.setenv("STEWARD_MANIFEST_IDS", "refuse")
    assert cli(*args, "--no-build").code == 2
    assert json.loads(cli("--as", "sam", "--json", "package", "list").out) == []
    lenient = cli(*args, "--lenient-ids", "--no-build")
    assert lenient.code == 0, lenient.err
    assert "warning:" in lenient.err
    assert "U+200B ZERO WIDTH SPACE" in lenient.err


def test_allow_root_help_says_what_it_allows(cli: Cli) -> None:
    r = cli("package", "create", "--help")
    text = " ".join(r.out.replace("│", " ").split())
    assert "Also let the manifest name local files inside this folder" in text
    assert "(judged after following symbolic links)" in text
    assert "limits s3:// files to that prefix" in text
