"""``steward dataset verify|files|duplicates`` on trees built here, after a real crawl, on
SQLite and PostgreSQL.

The world: project p1 fed by three folder sources — ``external`` (E-GEOD-5, GEO's GSE5),
``loading`` and ``loading-2`` (E-MTAB-2 in both: the same stage twice). E-MTAB-1 carries
SODAR-style checksum sidecars: good, wrong, uppercase, ``md5sum`` lines with file names,
a sidecar whose data file is gone, one that holds no checksum, a SHA-256 one; and GSE5 as a
secondary accession. E-MTAB-2 holds a copy of one of E-MTAB-1's data files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from steward.adapters import s3api
from steward.crawl.config import parse_crawl_config
from steward.db.models import AuditEntry, DatasetFile, Event
from steward.services import crawl, datasets
from tests.conftest import CliResult, Consortium
from tests.crawl_trees import ACCESSION, idf, sdrf, write_tree
from tests.s3 import SeaweedFS

Cli = Callable[..., CliResult]
SAME = b"ACGTACGTAC\n"  # in E-MTAB-1 (raw/good.fq) and E-MTAB-2 (raw/copy.fq)
BAD, CLAIMED, UPPER, SHA = b"GGGG\n", b"CCCC\n", b"TTTTTT\n", b"CCCCCCC\n"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def metadata(accession: str, title: str, **fields: Any) -> dict[str, str]:
    return {
        f"{accession}/{accession}.idf.txt": idf(title, **fields),
        f"{accession}/{accession}.sdrf.txt": sdrf("Homo sapiens"),
    }


def build(root: Path) -> None:
    for name in ("external", "loading", "loading-2"):
        (root / name).mkdir(parents=True, exist_ok=True)
    write_tree(root / "external", {"E-GEOD-5/E-GEOD-5.txt": "from GEO, series 5\n"})
    write_tree(root / "loading", metadata("E-MTAB-1", "Liver", secondary=("GSE5",)))
    raw = "E-MTAB-1/raw"
    write_tree(
        root / "loading",
        {
            f"{raw}/good.fq": SAME,
            f"{raw}/good.fq.md5": f"{md5(SAME)}  good.fq\n",  # as md5sum writes it
            f"{raw}/bad.fq": BAD,
            f"{raw}/bad.fq.md5": md5(CLAIMED) + "\n",
            f"{raw}/upper.fq": UPPER,
            f"{raw}/upper.fq.md5": md5(UPPER).upper(),  # no name, no newline
            f"{raw}/gone.fq.md5": md5(b"lost\n") + "  gone.fq\n",
            f"{raw}/broken.fq": b"AAAA\n",
            f"{raw}/broken.fq.md5": "see the lab notebook\n",
            f"{raw}/sha.fq": SHA,
            f"{raw}/sha.fq.sha256": f"{sha256(SHA)} *sha.fq\n",  # binary mode
        },
    )
    for where in ("loading", "loading-2"):
        write_tree(root / where, metadata("E-MTAB-2", "Brain"))
        write_tree(root / where, {"E-MTAB-2/raw/copy.fq": SAME})


def sources_document(root: Path) -> dict[str, Any]:
    return {
        "sources": [
            {
                "name": name,
                "project": "p1",
                "url": str(root / name),
                "stage": name.removesuffix("-2"),
                "pattern": ACCESSION,
                "extractors": ["mage-tab-idf", "mage-tab-sdrf"],
            }
            for name in ("external", "loading", "loading-2")
        ]
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    build(root)
    return root


@pytest.fixture
def sources(tree: Path, tmp_path: Path) -> Path:
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(sources_document(tree)), encoding="utf-8")
    return path


def run_crawl(c: Consortium, tree: Path, *, full: bool = False) -> None:
    config = parse_crawl_config(sources_document(tree))
    summary = crawl.run_crawl(c.db, c.db.settings, actor=c.steward, config=config, full=full)
    assert summary.status == "ok"


def file_rows(c: Consortium, accession: str) -> dict[str, tuple[str, str | None]]:
    """Path → (outcome, checksum) of a dataset's files."""
    with c.db.read() as s:
        sid = datasets.resolve(s, c.steward, accession)
        return {
            f.path: (f.outcome, f.checksum)
            for f in s.scalars(select(DatasetFile).where(DatasetFile.dataset_id == sid))
        }


def as_json(result: CliResult) -> Any:
    assert result.err == "" or result.code != 0, result.err
    return json.loads(result.out)


# ---- verify -----------------------------------------------------------------------------------
def test_verify_reports_every_mismatch_missing_file_and_bad_sidecar_as_an_event(
    consortium: Consortium, tree: Path, cli: Cli
) -> None:
    c = consortium
    run_crawl(c, tree)
    result = cli("dataset", "verify", "E-MTAB-1", "--as", c.steward, "--json")
    assert result.code == 1, result.err  # a sidecar does not match
    found = json.loads(result.out)
    assert {k: found[k] for k in ("checked", "matched", "mismatched", "missing")} == {
        "checked": 6,
        "matched": 3,  # good (md5sum line), upper (upper-case hex), sha (sha256, binary mode)
        "mismatched": 1,
        "missing": 1,
    }
    assert (found["bad_sidecars"], found["unreadable"], found["all_match"]) == (1, 0, False)
    assert found["without_sidecar"] == 0  # the IDF and SDRF are metadata, not data
    raw = "E-MTAB-1/raw"
    assert found["mismatches"] == [
        {
            "source": "loading",
            "path": f"{raw}/bad.fq",
            "algorithm": "md5",
            "expected": md5(CLAIMED),
            "actual": md5(BAD),
            "sidecar": f"{raw}/bad.fq.md5",
        }
    ]
    problems = {(p["kind"], p["path"]) for p in found["problems"]}
    assert problems == {("missing", f"{raw}/gone.fq"), ("bad-sidecar", f"{raw}/broken.fq.md5")}
    # the event, with the counts and the mismatch
    history = as_json(cli("dataset", "history", "E-MTAB-1", "--as", c.viewer, "--json"))
    verified = [e for e in history["timeline"] if e["type"] == "verified"]
    assert len(verified) == 1
    data = verified[0]["data"]
    assert (data["mismatched"], data["missing"], data["bad_sidecars"]) == (1, 1, 1)
    assert [m["path"] for m in data["mismatches"]] == [f"{raw}/bad.fq"]
    assert verified[0]["actor"] == c.steward
    # the per-file record: outcome and the checksum computed, in the stored form
    rows = file_rows(c, "E-MTAB-1")
    assert rows[f"{raw}/good.fq"] == ("verified", f"md5:{md5(SAME)}")
    assert rows[f"{raw}/upper.fq"] == ("verified", f"md5:{md5(UPPER)}")
    assert rows[f"{raw}/sha.fq"] == ("verified", f"sha256:{sha256(SHA)}")
    assert rows[f"{raw}/bad.fq"] == ("mismatch", f"md5:{md5(BAD)}")
    assert rows[f"{raw}/broken.fq"] == ("present", None)
    assert rows["E-MTAB-1/E-MTAB-1.idf.txt"] == ("present", None)
    shown = as_json(cli("dataset", "show", "E-MTAB-1", "--as", c.viewer, "--json"))
    outcomes = {f["path"]: f["outcome"] for f in shown["files"]}
    assert outcomes[f"{raw}/bad.fq"] == "mismatch"
    table = cli("dataset", "verify", "E-MTAB-1", "--as", c.steward)
    assert table.code == 1
    assert "PROBLEMS" in table.out
    assert "bad.fq" in table.out
    assert "gone.fq" in table.out


def test_a_fixed_tree_verifies_clean_and_a_rewritten_file_loses_its_verdict(
    consortium: Consortium, tree: Path, cli: Cli
) -> None:
    c = consortium
    run_crawl(c, tree)
    assert cli("dataset", "verify", "E-MTAB-1", "--as", c.steward).code == 1
    raw = tree / "loading" / "E-MTAB-1" / "raw"
    (raw / "bad.fq.md5").write_text(md5(BAD) + "  bad.fq\n", encoding="utf-8")
    (raw / "gone.fq.md5").unlink()
    (raw / "broken.fq.md5").unlink()
    run_crawl(c, tree)
    fixed = cli("dataset", "verify", "E-MTAB-1", "--as", c.steward, "--json")
    assert fixed.code == 0, fixed.out
    found = json.loads(fixed.out)
    assert (found["checked"], found["matched"], found["all_match"]) == (4, 4, True)
    assert found["without_sidecar"] == 1  # broken.fq lost its sidecar
    rows = file_rows(c, "E-MTAB-1")
    assert rows["E-MTAB-1/raw/bad.fq"][0] == "verified"
    assert rows["E-MTAB-1/raw/broken.fq"][0] == "present"
    # A crawl that sees a file rewritten drops what was verified and hashed of it; the
    # unchanged files keep theirs. Rewritten in place, its folder keeps its time: a quick
    # re-crawl does not look at it, a full one does.
    (raw / "good.fq").write_bytes(b"rewritten, longer\n")
    run_crawl(c, tree)
    assert file_rows(c, "E-MTAB-1")["E-MTAB-1/raw/good.fq"][0] == "verified"
    run_crawl(c, tree, full=True)
    rows = file_rows(c, "E-MTAB-1")
    assert rows["E-MTAB-1/raw/good.fq"] == ("present", None)
    assert rows["E-MTAB-1/raw/upper.fq"] == ("verified", f"md5:{md5(UPPER)}")
    again = json.loads(cli("dataset", "verify", "E-MTAB-1", "--as", c.steward, "--json").out)
    assert [m["path"] for m in again["mismatches"]] == ["E-MTAB-1/raw/good.fq"]
    # A verified file that goes is removed like any other; its sidecar is then an orphan.
    (raw / "sha.fq").unlink()
    run_crawl(c, tree)
    assert file_rows(c, "E-MTAB-1")["E-MTAB-1/raw/sha.fq"][0] == "removed"
    orphan = json.loads(cli("dataset", "verify", "E-MTAB-1", "--as", c.steward, "--json").out)
    assert [(p["kind"], p["path"]) for p in orphan["problems"]] == [
        ("missing", "E-MTAB-1/raw/sha.fq")
    ]


def test_only_staff_verify_and_strangers_hear_not_found(
    consortium: Consortium, tree: Path, cli: Cli
) -> None:
    c = consortium
    run_crawl(c, tree)
    unknown = cli("dataset", "verify", "E-NOPE-1", "--as", c.outsider)
    assert unknown.code == 1
    for who in (c.outsider, c.requester):
        hidden = cli("dataset", "verify", "E-MTAB-1", "--as", who)
        assert hidden.code == 1
        assert hidden.err.replace("E-MTAB-1", "E-NOPE-1") == unknown.err
    with c.db.read() as s:
        sid = datasets.resolve(s, c.steward, "E-MTAB-1")
    by_id = cli("dataset", "verify", sid, "--as", c.outsider)
    assert by_id.code == 1
    assert f"no dataset {sid!r}" in by_id.err
    refused = cli("dataset", "verify", "E-MTAB-1", "--as", c.viewer)
    assert refused.code == 1
    assert "may not verify" in refused.err
    with c.db.read() as s:
        denied = set(
            s.scalars(
                select(AuditEntry.actor).where(
                    AuditEntry.subject_id == sid, AuditEntry.outcome == "denied"
                )
            )
        )
        verified = s.scalars(select(Event).where(Event.type == "verified")).all()
    assert denied == {c.outsider, c.viewer}
    assert verified == []  # nothing was recorded for a refusal
    assert file_rows(c, "E-MTAB-1")["E-MTAB-1/raw/good.fq"] == ("present", None)
    # through a server, the server's own sources only (test_cli_remote_dataset_tracker.py)
    remote = cli("--server", "http://127.0.0.1:9", "--token", "t", "dataset", "verify", "E-MTAB-1",
                 "--sources", str(tree / "sources.yaml"))  # fmt: skip
    assert remote.code == 2
    assert "is not taken with --server" in remote.err


def test_verify_names_a_source_it_cannot_read(
    consortium: Consortium, tree: Path, cli: Cli, tmp_path: Path
) -> None:
    c = consortium
    run_crawl(c, tree)
    # The config now says the external source is an endpoint: its records have no files.
    document = sources_document(tree)
    document["sources"][0] |= {"url": "https://geo.invalid/records", "extractors": []}
    path = tmp_path / "endpoint.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = cli("dataset", "verify", "E-GEOD-5", "--sources", str(path), "--as", c.steward)
    assert result.code == 2, result.err
    assert "'external' is an endpoint source" in result.err
    assert "folder sources, and on s3 sources" in result.err


# ---- files ------------------------------------------------------------------------------------
def test_files_lists_the_record_and_fetches_a_metadata_file(
    consortium: Consortium, tree: Path, cli: Cli, tmp_path: Path
) -> None:
    c = consortium
    run_crawl(c, tree)
    listed = as_json(cli("dataset", "files", "E-MTAB-1", "--as", c.viewer, "--json"))
    kinds = {f["path"]: (f["kind"], f["extractors"]) for f in listed["files"]}
    assert kinds["E-MTAB-1/E-MTAB-1.idf.txt"] == ("metadata", ["mage-tab-idf"])
    assert kinds["E-MTAB-1/E-MTAB-1.sdrf.txt"] == ("metadata", ["mage-tab-sdrf"])
    assert kinds["E-MTAB-1/raw/good.fq"] == ("data", [])
    assert kinds["E-MTAB-1/raw/good.fq.md5"] == ("checksum", [])
    assert [f["kind"] for f in listed["files"]][:2] == ["metadata", "metadata"]
    table = cli("dataset", "files", "E-MTAB-1", "--as", c.viewer)
    assert table.code == 0
    assert "E-MTAB-1/raw/good.fq" in table.out
    assert "metadata" in table.out
    # --get: to stdout, to a file (atomic, no overwrite without --force)
    idf = (tree / "loading" / "E-MTAB-1" / "E-MTAB-1.idf.txt").read_text(encoding="utf-8")
    got = cli(
        "dataset", "files", "E-MTAB-1", "--get", "E-MTAB-1/E-MTAB-1.idf.txt", "--as", c.viewer
    )
    assert got.code == 0, got.err
    assert got.out == idf
    target = tmp_path / "out" / "idf.txt"
    target.parent.mkdir()
    args = ("dataset", "files", "E-MTAB-1", "--get", "E-MTAB-1/E-MTAB-1.idf.txt")
    written = cli(*args, "-o", str(target), "--as", c.viewer)
    assert written.code == 0, written.err
    assert target.read_text(encoding="utf-8") == idf
    target.write_text("mine", encoding="utf-8")
    again = cli(*args, "-o", str(target), "--as", c.viewer)
    assert again.code == 2
    assert "already exists" in again.err
    assert target.read_text(encoding="utf-8") == "mine"
    forced = cli(*args, "-o", str(target), "--force", "--as", c.viewer)
    assert forced.code == 0
    assert target.read_text(encoding="utf-8") == idf
    assert [p.name for p in target.parent.iterdir()] == ["idf.txt"]  # no temporary left
    as_data = as_json(cli(*args, "--as", c.viewer, "--json"))
    assert (as_data["encoding"], as_data["content"]) == ("utf-8", idf)
    # E-MTAB-2 is in loading and loading-2: the path names a file of each; --source picks
    two = ("dataset", "files", "E-MTAB-2", "--get", "E-MTAB-2/E-MTAB-2.idf.txt")
    assert cli(*two, "--source", "loading-2", "--as", c.viewer).code == 0
    # not a metadata file; not a file of the dataset; a dataset one may not see
    data = cli("dataset", "files", "E-MTAB-1", "--get", "E-MTAB-1/raw/good.fq", "--as", c.viewer)
    assert data.code == 2
    assert "not a metadata file" in data.err
    nope = cli("dataset", "files", "E-MTAB-1", "--get", "E-MTAB-1/nope.txt", "--as", c.viewer)
    assert nope.code == 1
    assert "E-MTAB-1 has no file 'E-MTAB-1/nope.txt'" in nope.err
    unknown = cli("dataset", "files", "E-NOPE-1", "--as", c.outsider)
    for call in (
        ("dataset", "files", "E-MTAB-1", "--as", c.outsider),
        ("dataset", "files", "E-MTAB-1", "--get", "E-MTAB-1/E-MTAB-1.idf.txt", "--as", c.outsider),
    ):
        hidden = cli(*call)
        assert hidden.code == 1
        assert hidden.err.replace("E-MTAB-1", "E-NOPE-1") == unknown.err
    stray = cli("dataset", "files", "E-MTAB-1", "-o", str(target), "--as", c.viewer)
    assert stray.code == 2
    assert "--get" in stray.err


def test_a_removed_file_stays_in_the_record(consortium: Consortium, tree: Path, cli: Cli) -> None:
    c = consortium
    run_crawl(c, tree)
    (tree / "loading" / "E-MTAB-1" / "raw" / "upper.fq").unlink()
    run_crawl(c, tree)
    listed = as_json(cli("dataset", "files", "E-MTAB-1", "--as", c.viewer, "--json"))
    assert {f["path"]: f["outcome"] for f in listed["files"]}["E-MTAB-1/raw/upper.fq"] == (
        "removed"
    )
    sdrf = tree / "loading" / "E-MTAB-1" / "E-MTAB-1.sdrf.txt"
    sdrf.unlink()
    run_crawl(c, tree)
    gone = cli(
        "dataset", "files", "E-MTAB-1", "--get", "E-MTAB-1/E-MTAB-1.sdrf.txt", "--as", c.viewer
    )
    assert gone.code == 1
    assert "was removed" in gone.err


# ---- duplicates -------------------------------------------------------------------------------
def pairs(result: CliResult) -> set[tuple[str, str, str]]:
    found = as_json(result)
    return {(p["dataset"], p["other"], p["reason"]) for p in found["pairs"]}


def test_duplicates_by_stage_and_by_secondary_accession(
    consortium: Consortium, tree: Path, cli: Cli
) -> None:
    c = consortium
    run_crawl(c, tree)
    result = cli("dataset", "duplicates", "--as", c.viewer, "--json")
    assert result.code == 0, result.err
    assert pairs(result) == {
        ("E-MTAB-2", "E-MTAB-2", "same-stage"),  # in loading and loading-2
        ("E-GEOD-5", "E-MTAB-1", "secondary-accession"),  # GSE5 through the mapping
    }
    detail = {p["reason"]: p["detail"] for p in json.loads(result.out)["pairs"]}
    assert detail["secondary-accession"] == "share the accession E-GEOD-5 (through a mapping)"
    assert detail["same-stage"].startswith("loading: ")
    assert "loading-2" in detail["same-stage"]
    table = cli("dataset", "duplicates", "--project", "p1", "--as", c.viewer)
    assert table.code == 0
    assert "secondary-accession" in table.out
    assert pairs(cli("dataset", "duplicates", "--as", c.outsider, "--json")) == set()
    hidden = cli("dataset", "duplicates", "--project", "p1", "--as", c.outsider)
    assert hidden.code == 1
    assert "no project 'p1'" in hidden.err


def test_duplicates_by_content_hash_each_file_once(
    consortium: Consortium, tree: Path, cli: Cli
) -> None:
    c = consortium
    run_crawl(c, tree)
    args = ("dataset", "duplicates", "--by-content", "--as", c.steward, "--json")
    first = cli(*args)
    assert first.code == 0, first.err
    assert ("E-MTAB-1", "E-MTAB-2", "same-content") in pairs(first)
    content = json.loads(first.out)["content"]
    same = next(p for p in json.loads(first.out)["pairs"] if p["reason"] == "same-content")
    assert same["files"] == 1
    assert {(e["path"], e["other_path"]) for e in same["examples"]} == {
        ("E-MTAB-1/raw/good.fq", "E-MTAB-2/raw/copy.fq")
    }
    # good.fq's MD5 comes from its sidecar; the two copies in E-MTAB-2 are read
    assert content["reused"] == {"sidecar": 1}
    assert (content["hashed_files"], content["hashed_bytes"]) == (2, 2 * len(SAME))
    assert content["stored"] == 2
    # A second run reads nothing: every checksum is known, from the record or the sidecar.
    second = json.loads(cli(*args).out)
    assert (second["content"]["hashed_files"], second["content"]["hashed_bytes"]) == (0, 0)
    assert second["content"]["reused"] == {"sidecar": 1, "stored": 2}
    assert second["pairs"] == json.loads(first.out)["pairs"]
    # The record is keyed by size and time: content changed under the same size and time
    # is not read again (which is how a re-run hashes nothing) ...
    copy = tree / "loading" / "E-MTAB-2" / "raw" / "copy.fq"
    st = copy.stat()
    copy.write_bytes(b"T" * (len(SAME) - 1) + b"\n")
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    third = json.loads(cli(*args).out)
    assert third["content"]["hashed_files"] == 0
    # ... while a new time is a new file: read once more, and it no longer matches.
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    fourth = json.loads(cli(*args).out)
    assert fourth["content"]["hashed_files"] == 1
    assert fourth["content"]["changed_since_crawl"] == 1
    assert fourth["content"]["stored"] == 0  # the record describes the file as it was
    kept = {(p["dataset"], p["other"], p["reason"]) for p in fourth["pairs"]}
    assert ("E-MTAB-1", "E-MTAB-2", "same-content") in kept  # loading-2's copy still is
    assert {e["other_source"] for p in fourth["pairs"] for e in p["examples"]} == {"loading-2"}


def test_comparing_content_is_for_staff(consortium: Consortium, tree: Path, cli: Cli) -> None:
    c = consortium
    run_crawl(c, tree)
    refused = cli("dataset", "duplicates", "--by-content", "--as", c.viewer)
    assert refused.code == 1
    assert "steward or admin" in refused.err
    assert file_rows(c, "E-MTAB-2")["E-MTAB-2/raw/copy.fq"] == ("present", None)


# ---- s3 sources -------------------------------------------------------------------------------
def test_s3_sources_verify_and_compare_by_etag(
    consortium: Consortium,
    cli: Cli,
    seaweedfs: SeaweedFS,
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = consortium
    objects = {
        **{f"loading/{k}": v.encode() for k, v in metadata("E-MTAB-1", "Liver").items()},
        "loading/E-MTAB-1/raw/good.fq": SAME,
        "loading/E-MTAB-1/raw/good.fq.md5": f"{md5(SAME)}  good.fq\n".encode(),
        "loading/E-MTAB-1/raw/bad.fq": BAD,
        "loading/E-MTAB-1/raw/bad.fq.md5": md5(CLAIMED).encode(),
        **{f"loading/{k}": v.encode() for k, v in metadata("E-MTAB-2", "Brain").items()},
        "loading/E-MTAB-2/raw/copy.fq": SAME,
    }
    for key, body in objects.items():
        assert s3api.request(seaweedfs.config(), "PUT", s3_bucket, key, body=body).status == 200
    monkeypatch.setenv("CHECK_KEY", seaweedfs.access_key)
    monkeypatch.setenv("CHECK_SECRET", seaweedfs.secret_key)
    entry = {
        "name": "bucket",
        "project": "p1",
        "url": f"s3://{s3_bucket}/loading",
        "stage": "loading",
        "pattern": ACCESSION,
        "extractors": ["mage-tab-idf", "mage-tab-sdrf"],
        "endpoint": seaweedfs.endpoint,
        "access_key_env": "CHECK_KEY",
        "secret_key_env": "CHECK_SECRET",
    }
    path = tmp_path / "s3.json"
    path.write_text(json.dumps({"sources": [entry]}), encoding="utf-8")
    config = parse_crawl_config({"sources": [entry]})
    summary = crawl.run_crawl(
        c.db, c.db.settings, actor=c.steward, config=config, environ=os.environ
    )
    assert summary.status == "ok"
    # without the config, Steward cannot know the bucket's endpoint and keys: it says so
    blind = cli("dataset", "verify", "E-MTAB-1", "--as", c.steward)
    assert blind.code == 2
    assert "'bucket' is an s3 source that the sources config does not name" in blind.err
    result = cli(
        "dataset", "verify", "E-MTAB-1", "--sources", str(path), "--as", c.steward, "--json"
    )
    assert result.code == 1, result.err
    found = json.loads(result.out)
    assert (found["checked"], found["matched"], found["mismatched"]) == (2, 1, 1)
    assert [m["path"] for m in found["mismatches"]] == ["E-MTAB-1/raw/bad.fq"]
    assert file_rows(c, "E-MTAB-1")["E-MTAB-1/raw/good.fq"] == ("verified", f"md5:{md5(SAME)}")
    idf = cli(
        "dataset", "files", "E-MTAB-2", "--get", "E-MTAB-2/E-MTAB-2.idf.txt",
        "--sources", str(path), "--as", c.viewer,
    )  # fmt: skip
    assert idf.code == 0, idf.err
    assert idf.out == metadata("E-MTAB-2", "Brain")["E-MTAB-2/E-MTAB-2.idf.txt"]
    # single-part uploads: the ETag is the MD5, so nothing needs reading
    dup = cli(
        "dataset", "duplicates", "--by-content", "--sources", str(path), "--as", c.steward,
        "--json",
    )  # fmt: skip
    assert dup.code == 0, dup.err
    shown = json.loads(dup.out)
    assert ("E-MTAB-1", "E-MTAB-2", "same-content") in {
        (p["dataset"], p["other"], p["reason"]) for p in shown["pairs"]
    }
    assert shown["content"]["hashed_files"] == 0
    assert shown["content"]["reused"] == {"etag": 1, "stored": 1}
