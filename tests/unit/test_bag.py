"""The bag builder and validator on real files: structure, encodings, RO-Crate, every problem kind.

Interoperability with the ``bagit``/``bdbag``/``rocrate`` tools and the fault tests (kill -9,
files changing while read) are in tests/integration/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from steward.errors import Conflict, ValidationFailed
from steward.packaging import bag
from steward.packaging.bagit_files import decode_path, encode_path, parse_manifest
from steward.packaging.journal import load_journal

INFO = bag.BagInfo(
    name="CUP primary data",
    package_id="pkg_01TEST",
    source_organisation="UMCCR",
    created_by="sam",
    created_at=datetime(2025, 4, 1, 12, 30, tzinfo=UTC),
    description="FASTQ of project CUP\nsecond line",
)
META = {"sample_id": "S1", "library_id": "L1", "project_id": "CUP", "data_type": "fastq"}


def make_sources(root: Path, files: dict[str, bytes]) -> list[bag.BagEntry]:
    entries = []
    for rel, content in files.items():
        path = root / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        entries.append(bag.BagEntry(relpath=rel, source_uri=path.as_uri(), metadata=META))
    return entries


def build(
    tmp_path: Path,
    files: dict[str, bytes],
    *,
    mode: bag.Mode = "copy",
    name: str = "bag",
    **kwargs: object,
) -> tuple[Path, list[bag.BuiltFile], bag.BagSummary]:
    entries = make_sources(tmp_path, files)
    out = tmp_path / name
    built = bag.build_payload(out, entries, mode=mode, workers=2, **kwargs)  # type: ignore[arg-type]
    summary = bag.finish_bag(
        out, INFO, built, tag_files={"report.html": b"<p>report</p>"}, fetch=mode == "fetch"
    )
    return out, built, summary


FILES = {
    "CUP/S1/L1_R1.fastq.gz": os.urandom(70_000),
    "CUP/S1/L1_R2.fastq.gz": os.urandom(50_000),
    "CUP/S2/calls.vcf.gz": b"##fileformat=VCFv4.2\n",
    "CUP/empty.txt": b"",
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def problems(path: Path, *, full: bool = True) -> list[str]:
    return [str(p) for p in bag.validate_bag(path, full=full)]


# -- structure ---------------------------------------------------------------------------------


def test_a_copied_bag_has_every_bagit_file_in_the_rfc_format(tmp_path: Path) -> None:
    out, built, summary = build(tmp_path, FILES)
    assert (out / "bagit.txt").read_bytes() == (
        b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    )
    for rel, content in FILES.items():
        assert (out / "data" / rel).read_bytes() == content
    crate = (out / "data" / "ro-crate-metadata.json").read_bytes()

    manifest = (out / "manifest-sha256.txt").read_text()
    expected = {f"data/{rel}": sha256(c) for rel, c in FILES.items()}
    expected["data/ro-crate-metadata.json"] = sha256(crate)
    lines = manifest.splitlines()
    assert all(re.fullmatch(r"[0-9a-f]{64}  data/\S.*", line) for line in lines)
    assert {line[66:]: line[:64] for line in lines} == expected
    assert [line[66:] for line in lines] == sorted(expected)
    md5_lines = (out / "manifest-md5.txt").read_text().splitlines()
    assert {line[34:]: line[:32] for line in md5_lines}["data/CUP/S2/calls.vcf.gz"] == (
        hashlib.md5(FILES["CUP/S2/calls.vcf.gz"]).hexdigest()
    )

    total = sum(len(c) for c in FILES.values()) + len(crate)
    assert summary.payload_oxum == f"{total}.{len(FILES) + 1}"
    info = (out / "bag-info.txt").read_text()
    assert f"Payload-Oxum: {total}.5\n" in info
    assert "Source-Organization: UMCCR\n" in info
    assert "External-Identifier: pkg_01TEST\n" in info
    assert "Internal-Sender-Identifier: CUP primary data\n" in info
    assert "Bagging-Date: 2025-04-01\n" in info
    assert "External-Description: FASTQ of project CUP\n  second line\n" in info  # folded

    tags = {
        line[66:]: line[:64] for line in (out / "tagmanifest-sha256.txt").read_text().splitlines()
    }
    assert set(tags) == {
        "bagit.txt",
        "bag-info.txt",
        "manifest-sha256.txt",
        "manifest-md5.txt",
        "report.html",
    }
    for name, digest in tags.items():
        assert sha256((out / name).read_bytes()) == digest
    assert (out / "tagmanifest-md5.txt").is_file()
    assert not (out / ".steward").exists()
    assert not (out / "fetch.txt").exists()
    assert [b.relpath for b in built] == list(FILES)
    assert built[0].sha256 == sha256(FILES["CUP/S1/L1_R1.fastq.gz"])
    assert problems(out) == []


def test_the_same_input_gives_byte_identical_bags(tmp_path: Path) -> None:
    one, _, _ = build(tmp_path, FILES, name="one")
    two, _, _ = build(tmp_path, FILES, name="two")
    for name in ("bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"):
        assert (one / name).read_bytes() == (two / name).read_bytes()
    assert (one / "data/ro-crate-metadata.json").read_bytes() == (
        two / "data/ro-crate-metadata.json"
    ).read_bytes()


@pytest.mark.parametrize(
    ("path", "encoded"),
    [
        ("plain.txt", "plain.txt"),
        ("with space.txt", "with space.txt"),
        ("naïve/ünïcode ✓.txt", "naïve/ünïcode ✓.txt"),
        ("50%.txt", "50%25.txt"),
        ("%0A-literal.txt", "%250A-literal.txt"),
        ("line\nbreak\r.txt", "line%0Abreak%0D.txt"),
    ],
)
def test_manifest_paths_encode_only_percent_cr_and_lf(path: str, encoded: str) -> None:
    assert encode_path(path) == encoded
    assert decode_path(encoded) == path


def test_odd_file_names_survive_the_round_trip(tmp_path: Path) -> None:
    files = {
        "odd/with space.fastq": b"a",
        "odd/ünïcode ✓.bam": b"b",
        "odd/50% done.txt": b"c",
        "odd/new\nline.txt": b"d",
    }
    out, _, _ = build(tmp_path, files)
    manifest = (out / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert "  data/odd/50%25 done.txt\n" in manifest
    assert "  data/odd/new%0Aline.txt\n" in manifest
    assert "  data/odd/ünïcode ✓.bam\n" in manifest
    lines, bad = parse_manifest(manifest)
    assert bad == []
    assert {line.path for line in lines} >= {f"data/{rel}" for rel in files}
    assert problems(out) == []
    crate = json.loads((out / "data/ro-crate-metadata.json").read_text())
    ids = {e["@id"] for e in crate["@graph"]}
    assert "odd/with%20space.fastq" in ids
    assert "odd/50%25%20done.txt" in ids
    assert "odd/ünïcode%20✓.bam" in ids  # IRIs keep non-ASCII


# -- RO-Crate ----------------------------------------------------------------------------------


def test_ro_crate_describes_files_samples_types_and_the_builder(tmp_path: Path) -> None:
    out, built, _ = build(tmp_path, FILES)
    doc = json.loads((out / "data" / "ro-crate-metadata.json").read_text())
    assert doc["@context"][0] == "https://w3id.org/ro/crate/1.2/context"
    graph = {e["@id"]: e for e in doc["@graph"]}
    assert graph["ro-crate-metadata.json"]["conformsTo"] == {"@id": "https://w3id.org/ro/crate/1.2"}
    root = graph["./"]
    assert root["identifier"] == "pkg_01TEST"
    assert root["name"] == "CUP primary data"
    assert root["datePublished"].startswith("2025-04-01T12:30")
    assert {p["@id"] for p in root["hasPart"]} == set(FILES)
    fastq = graph["CUP/S1/L1_R1.fastq.gz"]
    assert fastq["@type"] == "File"
    assert fastq["contentSize"] == str(len(FILES["CUP/S1/L1_R1.fastq.gz"]))
    assert fastq["sha256"] == built[0].sha256
    assert fastq["encodingFormat"] == [
        "application/gzip",
        {"@id": "http://edamontology.org/format_1930"},
    ]
    assert {"@id": "#sample-S1"} in fastq["about"]
    assert graph["#sample-S1"]["@type"] == "BioSample"
    assert graph["#library-L1"]["isPartOf"] == {"@id": "#sample-S1"}
    assert fastq["additionalType"] == {"@id": "#data-type-fastq"}
    assert graph["#data-type-fastq"]["@type"] == "DefinedTerm"
    assert graph["#build"]["instrument"] == {"@id": "#steward"}
    assert graph["#steward"]["@type"] == "SoftwareApplication"
    assert graph[root["publisher"]["@id"]]["name"] == "UMCCR"
    assert graph["http://edamontology.org/format_3016"]["@type"] == "WebPage"  # the VCF
    # every reference points at an entity in the graph (flat, valid JSON-LD)
    refs = re.findall(r'\{"@id": "([^"]+)"\}', json.dumps(doc["@graph"], ensure_ascii=False))
    missing = {r for r in refs if r not in graph} - {"https://w3id.org/ro/crate/1.2"}
    assert missing == set()


# -- modes -------------------------------------------------------------------------------------


def test_link_mode_shares_the_source_inode(tmp_path: Path) -> None:
    out, _, _ = build(tmp_path, FILES, mode="link")
    for rel in FILES:
        assert os.stat(out / "data" / rel).st_ino == os.stat(tmp_path / "src" / rel).st_ino
    assert problems(out) == []


@pytest.mark.skipif(
    not Path("/dev/shm").is_dir() or os.stat("/dev/shm").st_dev == os.stat("/tmp").st_dev,
    reason="needs /dev/shm on a file system of its own",
)
def test_link_mode_refuses_other_file_systems_before_moving_anything(tmp_path: Path) -> None:
    entries = make_sources(Path("/dev/shm") / f"steward-{os.getpid()}", {"a.txt": b"a", "b": b"b"})
    try:
        with pytest.raises(ValidationFailed) as err:
            bag.build_payload(tmp_path / "bag", entries, mode="link")
        assert {d.field for d in err.value.details} == {"data/a.txt", "data/b"}
        assert "another file system" in err.value.details[0].message
        assert list((tmp_path / "bag" / "data").iterdir()) == []
    finally:
        for e in entries:
            Path(e.source_uri.removeprefix("file://")).unlink()


def test_fetch_mode_copies_nothing_and_lists_every_file(tmp_path: Path) -> None:
    out, built, summary = build(tmp_path, FILES, mode="fetch")
    assert [p.name for p in (out / "data").iterdir()] == ["ro-crate-metadata.json"]
    fetch = (out / "fetch.txt").read_text().splitlines()
    assert len(fetch) == len(FILES)
    for line, (rel, content) in zip(fetch, sorted(FILES.items()), strict=True):
        url, size, path = line.split(" ", 2)
        assert url == (tmp_path / "src" / rel).as_uri()
        assert (int(size), path) == (len(content), f"data/{rel}")
    assert summary.fetch_files == len(FILES)
    check = bag.check_bag(out, full=True)
    assert check.problems == []
    assert sorted(check.fetch_pending) == sorted(f"data/{r}" for r in FILES)
    assert not check.complete
    assert built[0].fetch_url == (tmp_path / "src" / "CUP/S1/L1_R1.fastq.gz").as_uri()


def test_fetch_mode_can_trust_a_complete_manifest_without_reading(tmp_path: Path) -> None:
    entries = make_sources(tmp_path, {"a.bin": b"actual content"})
    claimed = bag.BagEntry(
        relpath="a.bin",
        source_uri=entries[0].source_uri,
        size=len(b"actual content"),
        sha256="ab" * 32,  # not the real digest: proves the file was not read
        md5="cd" * 16,
    )
    built = bag.build_payload(tmp_path / "trusted", [claimed], mode="fetch", trust_manifest=True)
    assert (built[0].sha256, built[0].md5) == ("ab" * 32, "cd" * 16)
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(tmp_path / "verified", [claimed], mode="fetch")
    assert {d.accepted for d in err.value.details} == {"ab" * 32, "cd" * 16}


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="mode"):
        bag.build_payload(tmp_path / "b", [], mode="move")  # type: ignore[arg-type]


# -- the file list is checked before anything moves ------------------------------------------


def test_every_bad_entry_is_reported_at_once(tmp_path: Path) -> None:
    src = tmp_path / "real.txt"
    src.write_bytes(b"x")
    good = src.as_uri()
    entries = [
        bag.BagEntry("../escape.txt", good),
        bag.BagEntry("dup.txt", good),
        bag.BagEntry("dup.txt", good),
        bag.BagEntry("folder", good),
        bag.BagEntry("folder/inside.txt", good),
        bag.BagEntry("gone.txt", (tmp_path / "nope.txt").as_uri()),
        bag.BagEntry("also-gone.txt", (tmp_path / "nope2.txt").as_uri()),
        bag.BagEntry("ro-crate-metadata.json", good),
        bag.BagEntry("badsum.txt", good, sha256="xyz"),
        bag.BagEntry("ftp.txt", "ftp://host/file"),
    ]
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(tmp_path / "bag", entries)
    fields = [d.field for d in err.value.details]
    assert fields == [
        "data/../escape.txt",
        "data/dup.txt",
        "data/folder/inside.txt",
        "data/gone.txt",
        "data/also-gone.txt",
        "data/ro-crate-metadata.json",
        "data/badsum.txt",
        "data/ftp.txt",
    ]
    assert [d.row for d in err.value.details] == [1, 3, 5, 6, 7, 8, 9, 10]
    assert not any((tmp_path / "bag" / "data").iterdir())


def test_a_checksum_differing_from_the_manifest_names_file_and_both_values(tmp_path: Path) -> None:
    entries = make_sources(tmp_path, {"ok.txt": b"fine", "bad.txt": b"real bytes"})
    wrong = "0" * 64
    entries[1] = bag.BagEntry("bad.txt", entries[1].source_uri, sha256=wrong)
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(tmp_path / "bag", entries)
    (detail,) = err.value.details
    assert detail.field == "data/bad.txt"
    assert (detail.value, detail.accepted) == (sha256(b"real bytes"), wrong)
    assert wrong in detail.message
    assert sha256(b"real bytes") in detail.message
    # the good file is done and journaled; the bad one left nothing behind
    assert (tmp_path / "bag/data/ok.txt").read_bytes() == b"fine"
    assert not (tmp_path / "bag/data/bad.txt").exists()
    assert set(load_journal(tmp_path / "bag/.steward/build-journal.jsonl")) == {"ok.txt"}
    assert [p.name for p in (tmp_path / "bag").rglob("*") if p.name.startswith(".")] == [".steward"]


def test_a_size_differing_from_the_manifest_fails_before_reading(tmp_path: Path) -> None:
    entries = make_sources(tmp_path, {"a.txt": b"12345"})
    entries[0] = bag.BagEntry("a.txt", entries[0].source_uri, size=4)
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(tmp_path / "bag", entries)
    assert (err.value.details[0].value, err.value.details[0].accepted) == ("5", "4")


def test_a_folder_with_foreign_files_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "precious.doc").write_bytes(b"keep me")
    with pytest.raises(Conflict):
        bag.build_payload(tmp_path / "bag", make_sources(tmp_path, {"a": b"a"}))
    assert (tmp_path / "bag" / "precious.doc").read_bytes() == b"keep me"


def test_reserved_tag_file_names_are_refused(tmp_path: Path) -> None:
    entries = make_sources(tmp_path, {"a": b"a"})
    built = bag.build_payload(tmp_path / "bag", entries)
    with pytest.raises(ValidationFailed) as err:
        bag.finish_bag(
            tmp_path / "bag",
            INFO,
            built,
            tag_files={"bagit.txt": b"", "data/x": b"", "manifest-md5.txt": b"", "../x": b""},
        )
    assert len(err.value.details) == 4


# -- resume ----------------------------------------------------------------------------------


def test_a_rerun_skips_journaled_files_and_redoes_changed_ones(tmp_path: Path) -> None:
    files = {f"f{i:02d}.bin": os.urandom(20_000 + i) for i in range(12)}
    entries = make_sources(tmp_path, files)
    out = tmp_path / "bag"
    done = [0]

    def progress(_bytes: int, nfiles: int) -> None:
        done[0] += nfiles

    with pytest.raises(bag.BuildCancelled):
        bag.build_payload(
            out, entries, workers=1, on_progress=progress, should_stop=lambda: done[0] >= 5
        )
    journaled = load_journal(out / ".steward/build-journal.jsonl")
    assert 5 <= len(journaled) < len(files)
    # a journaled copy damaged since must be redone, not trusted
    victim = sorted(journaled)[0]
    (out / "data" / victim).write_bytes(b"damaged")
    built = bag.build_payload(out, entries, workers=2)
    reused = {b.relpath for b in built if b.reused}
    assert reused == set(journaled) - {victim}
    assert (out / "data" / victim).read_bytes() == files[victim]
    assert [b.sha256 for b in built] == [sha256(c) for c in files.values()]
    bag.finish_bag(out, INFO, built)
    assert problems(out) == []


def test_a_changed_source_is_not_skipped_on_rerun(tmp_path: Path) -> None:
    entries = make_sources(tmp_path, {"a.txt": b"version one"})
    out = tmp_path / "bag"
    bag.build_payload(out, entries)
    src = tmp_path / "src" / "a.txt"
    src.write_bytes(b"version two!")
    built = bag.build_payload(out, entries)
    assert not built[0].reused
    assert (out / "data/a.txt").read_bytes() == b"version two!"


def test_rebuilding_a_finished_bag_unfinishes_it_first(tmp_path: Path) -> None:
    out, _, _ = build(tmp_path, FILES)
    entries = make_sources(tmp_path, {"CUP/S1/L1_R1.fastq.gz": b"only this now"})
    built = bag.build_payload(out, entries)
    assert not (out / "tagmanifest-sha256.txt").exists()
    assert [p.name for p in (out / "data").rglob("*") if p.is_file()] == ["L1_R1.fastq.gz"]
    bag.finish_bag(out, INFO, built)
    assert not (out / "report.html").exists()  # stale tag files go too
    assert problems(out) == []


# -- validation: each kind of problem, all at once --------------------------------------------


def test_validation_finds_a_missing_file(tmp_path: Path) -> None:
    out, _, summary = build(tmp_path, FILES)
    (out / "data/CUP/S2/calls.vcf.gz").unlink()
    found = bag.validate_bag(out, full=False)
    assert any(
        d.field == "data/CUP/S2/calls.vcf.gz" and d.message.startswith("missing") for d in found
    )
    files = int(summary.payload_oxum.split(".")[1])
    assert any(
        d.message
        == f"Payload-Oxum file count differs: it says {files} files; the bag has {files - 1} files"
        for d in found
    )


def test_validation_finds_an_extra_file(tmp_path: Path) -> None:
    out, _, _ = build(tmp_path, FILES)
    (out / "data/CUP/sneaky.txt").write_bytes(b"x")
    found = bag.validate_bag(out, full=False)
    assert any(d.field == "data/CUP/sneaky.txt" and d.message.startswith("extra") for d in found)


def test_only_full_validation_finds_a_same_size_corruption(tmp_path: Path) -> None:
    out, built, _ = build(tmp_path, FILES)
    target = out / "data/CUP/S1/L1_R2.fastq.gz"
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))
    assert bag.validate_bag(out, full=False) == []
    found = bag.validate_bag(out, full=True)
    assert [(d.field, d.message.split(":")[0]) for d in found] == [
        ("data/CUP/S1/L1_R2.fastq.gz", "md5 differs from manifest-md5.txt"),
        ("data/CUP/S1/L1_R2.fastq.gz", "sha256 differs from manifest-sha256.txt"),
    ]
    assert found[1].message.endswith(
        f": it is {sha256(bytes(data))}, the manifest says {built[1].sha256}"
    )
    assert found[1].accepted == built[1].sha256
    assert found[1].value == sha256(bytes(data))


def test_validation_finds_a_wrong_payload_oxum(tmp_path: Path) -> None:
    out, _, summary = build(tmp_path, FILES)
    info = out / "bag-info.txt"
    info.write_text(info.read_text().replace(summary.payload_oxum, "1.1"))
    found = {(d.field, d.message.split(": it ")[0]) for d in bag.validate_bag(out, full=False)}
    files, size = summary.payload_oxum.split(".")[1], summary.payload_oxum.split(".")[0]
    assert ("bag-info.txt", "Payload-Oxum file count differs") in found
    assert ("bag-info.txt", "Payload-Oxum byte count differs") in found
    assert (
        "bag-info.txt",
        "sha256 differs from tagmanifest-sha256.txt (the file was changed)",
    ) in found
    messages = [d.message for d in bag.validate_bag(out, full=False)]
    assert (
        f"Payload-Oxum file count differs: it says 1 files; the bag has {files} files" in messages
    )
    assert f"Payload-Oxum byte count differs: it says 1 bytes; the bag has {size} bytes" in messages


def test_validation_finds_a_tampered_tag_file(tmp_path: Path) -> None:
    out, _, _ = build(tmp_path, FILES)
    (out / "report.html").write_bytes(b"<p>forged</p>")
    (out / "notes.txt").write_bytes(b"added later")
    found = [(d.field, d.message.split(": it ")[0]) for d in bag.validate_bag(out, full=False)]
    assert ("report.html", "md5 differs from tagmanifest-md5.txt (the file was changed)") in found
    assert (
        "notes.txt",
        "a tag file no tag manifest lists (added after the bag was made?)",
    ) in found


def test_validation_lists_every_problem_not_only_the_first(tmp_path: Path) -> None:
    out, _, _ = build(tmp_path, FILES)
    (out / "data/CUP/S2/calls.vcf.gz").unlink()
    (out / "data/CUP/extra.txt").write_bytes(b"x")
    (out / "data/CUP/S1/L1_R1.fastq.gz").write_bytes(b"short")
    manifest = out / "manifest-md5.txt"
    manifest.write_text(manifest.read_text() + "nonsense\n")
    (out / "bagit.txt").write_text("BagIt-Version: 2.0\nTag-File-Character-Encoding: UTF-8\n")
    fields = {d.field for d in bag.validate_bag(out, full=True)}
    assert {
        "data/CUP/S2/calls.vcf.gz",
        "data/CUP/extra.txt",
        "data/CUP/S1/L1_R1.fastq.gz",
        "manifest-md5.txt",
        "bagit.txt",
        "bag-info.txt",
    } <= fields


def test_validation_of_a_holey_bag_counts_pending_files_not_missing(tmp_path: Path) -> None:
    out, _, _ = build(tmp_path, FILES, mode="fetch")
    assert bag.validate_bag(out, full=True) == []
    fetch = out / "fetch.txt"
    lines = fetch.read_text().splitlines()
    fetch.write_text("\n".join(lines[1:]) + "\n")  # one file no longer fetchable
    found = bag.validate_bag(out, full=False)
    assert any(d.message.startswith("missing") for d in found)


def test_validation_of_an_unfinished_build_says_so(tmp_path: Path) -> None:
    entries = make_sources(tmp_path, FILES)
    bag.build_payload(tmp_path / "bag", entries)
    found = {(d.field, d.message) for d in bag.validate_bag(tmp_path / "bag", full=False)}
    assert ("bagit.txt", "missing: the bag has no bagit.txt") in found
    assert (".steward/", "the build did not finish (its work folder is still there)") in found


def test_validation_of_a_folder_that_is_not_there(tmp_path: Path) -> None:
    assert [d.message for d in bag.validate_bag(tmp_path / "nothing")] == [
        "not a folder: there is nothing at this path"
    ]


def test_bags_written_by_bagit_python_with_a_literal_percent_still_validate(
    tmp_path: Path,
) -> None:
    out, _, _ = build(tmp_path, {"a%b.txt": b"x"})
    for name in ("manifest-sha256.txt", "manifest-md5.txt"):
        path = out / name
        path.write_text(path.read_text().replace("a%25b.txt", "a%b.txt"))
    found = [
        d for d in bag.validate_bag(out, full=True) if not (d.field or "").startswith("manifest")
    ]
    tag_only = [d for d in found if "tagmanifest" not in d.message]
    assert tag_only == []


def test_objects_in_s3_cannot_be_hard_linked(tmp_path: Path) -> None:
    entries = [bag.BagEntry("a.bam", "s3://bucket/runs/a.bam"), bag.BagEntry("b", "s3://b2/k")]
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(tmp_path / "bag", entries, mode="link")
    assert [d.field for d in err.value.details] == ["data/a.bam", "data/b"]
    assert all(d.accepted == "mode 'copy' or 'fetch'" for d in err.value.details)
