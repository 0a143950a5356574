"""Steward's bags checked by independent tools: ``bagit`` (Library of Congress), ``bdbag`` and
the ``rocrate`` library — and built from objects in a real S3 server (SeaweedFS)."""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

import bagit  # type: ignore[import-untyped]
import pytest
from rocrate.rocrate import ROCrate  # type: ignore[import-untyped]

from steward.adapters.storage import open_store
from steward.config import Settings
from steward.errors import ValidationFailed
from steward.packaging import bag
from steward.services import package_build, packages
from steward.services.packages import PackageSpec
from tests import s3
from tests.conftest import Consortium

INFO = bag.BagInfo(
    name="interop",
    package_id="pkg_01INTEROP",
    source_organisation="UMCCR",
    created_by="sam",
    created_at=datetime(2025, 4, 1, tzinfo=UTC),
)
FILES = {
    "PRJA/S1/L1_R1.fastq.gz": os.urandom(300_000),
    "PRJA/S1/L1_R2.fastq.gz": os.urandom(200_000),
    "PRJA/S1/with space ü.bam": os.urandom(10_000),
    "PRJB/S2/calls.vcf.gz": b"##fileformat=VCFv4.2\n",
    "PRJB/empty.txt": b"",
}
BDBAG = str(Path(sys.executable).parent / "bdbag")


def entries_for(root: Path, files: dict[str, bytes]) -> list[bag.BagEntry]:
    out = []
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        sample = rel.split("/")[1]
        out.append(
            bag.BagEntry(
                rel,
                path.as_uri(),
                size=len(content),
                metadata={"sample_id": sample, "project_id": rel.split("/")[0]},
            )
        )
    return out


def make_bag(tmp_path: Path, mode: bag.Mode, **kwargs: object) -> Path:
    entries = entries_for(tmp_path / "src", FILES)
    out = tmp_path / f"bag-{mode}"
    built = bag.build_payload(out, entries, mode=mode, **kwargs)  # type: ignore[arg-type]
    bag.finish_bag(
        out, INFO, built, tag_files={"report.html": b"<h1>r</h1>"}, fetch=mode == "fetch"
    )
    return out


def run_bdbag(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = s3.loopback_env()
    env["HOME"] = str(tmp_path / "home")  # bdbag writes its config and keychain under ~
    return subprocess.run(
        [BDBAG, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def crate_file_ids(bag_dir: Path) -> set[str]:
    crate = ROCrate(str(bag_dir / "data"))
    return {e.id for e in crate.data_entities}


@pytest.mark.parametrize("mode", ["copy", "link"])
def test_bagit_bdbag_and_rocrate_accept_the_bag(tmp_path: Path, mode: bag.Mode) -> None:
    out = make_bag(tmp_path, mode)
    bagit.Bag(str(out)).validate()  # raises on any problem
    assert sorted(bagit.Bag(str(out)).algorithms) == ["md5", "sha256"]
    result = run_bdbag(tmp_path, "--validate", "full", str(out))
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr
    ids = crate_file_ids(out)
    assert ids == {rel.replace(" ", "%20") for rel in FILES}
    assert bag.validate_bag(out, full=True) == []


def test_the_tools_reject_the_bag_after_tampering(tmp_path: Path) -> None:
    out = make_bag(tmp_path, "copy")
    target = out / "data/PRJA/S1/L1_R2.fastq.gz"
    data = bytearray(target.read_bytes())
    data[0] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(bagit.BagValidationError) as err:
        bagit.Bag(str(out)).validate()
    assert any(isinstance(d, bagit.ChecksumMismatch) for d in err.value.details)
    result = run_bdbag(tmp_path, "--validate", "full", str(out))
    assert result.returncode != 0
    assert "L1_R2.fastq.gz" in result.stderr
    found = bag.validate_bag(out, full=True)
    assert {d.field for d in found} == {"data/PRJA/S1/L1_R2.fastq.gz"}

    (out / "data/PRJB/calls-extra.txt").write_bytes(b"x")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(out)).validate(fast=True)


@pytest.fixture
def http_mirror(tmp_path: Path) -> Iterator[str]:
    """A loopback HTTP server publishing the source folder, as a download mirror would."""
    root = tmp_path / "src"
    root.mkdir(exist_ok=True)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_holey_bag_is_completed_by_bdbag_from_its_fetch_urls(
    tmp_path: Path, http_mirror: str
) -> None:
    out = make_bag(
        tmp_path,
        "fetch",
        fetch_url=lambda e: f"{http_mirror}/{quote(e.relpath)}",
    )
    doc = json.loads((out / "data/ro-crate-metadata.json").read_text())
    urls = {e["@id"]: e.get("url") for e in doc["@graph"] if e.get("@type") == "File"}
    assert urls["PRJB/empty.txt"] == f"{http_mirror}/PRJB/empty.txt"
    assert crate_file_ids(out) == {rel.replace(" ", "%20") for rel in FILES}

    # Before fetching: Steward calls it valid with files pending; the other tools call it
    # incomplete (bagit counts only present files against Payload-Oxum).
    check = bag.check_bag(out, full=True)
    assert check.problems == []
    assert len(check.fetch_pending) == len(FILES)
    with pytest.raises(bagit.BagValidationError, match="Payload-Oxum"):
        bagit.Bag(str(out)).validate()
    before = run_bdbag(tmp_path, "--validate", "full", str(out))
    assert before.returncode != 0
    assert "fetch.txt" in before.stderr

    resolved = run_bdbag(tmp_path, "--resolve-fetch", "all", str(out))
    assert resolved.returncode == 0, resolved.stderr
    for rel, content in FILES.items():
        assert (out / "data" / rel).read_bytes() == content
    after = run_bdbag(tmp_path, "--validate", "full", str(out))
    assert after.returncode == 0, after.stderr
    bagit.Bag(str(out)).validate()
    check = bag.check_bag(out, full=True)
    assert (check.problems, check.fetch_pending, check.complete) == ([], [], True)


def test_bagit_python_does_not_decode_percent_in_paths_as_rfc_8493_requires(
    tmp_path: Path,
) -> None:
    """Known gap (bagit-python issue #157): a '%' in a file name is written as %25 per RFC 8493
    §2.1.3, which bagit-python reads literally. Steward's validator accepts both spellings."""
    entries = entries_for(tmp_path / "src", {"PRJ/S9/a%b.txt": b"x"})
    out = tmp_path / "bag"
    bag.finish_bag(out, INFO, bag.build_payload(out, entries))
    assert "data/PRJ/S9/a%25b.txt" in (out / "manifest-sha256.txt").read_text()
    assert bag.validate_bag(out, full=True) == []
    with pytest.raises(bagit.BagValidationError) as err:
        bagit.Bag(str(out)).validate()
    assert {type(d).__name__ for d in err.value.details} == {"FileMissing", "UnexpectedFile"}


AWKWARD_SOURCES = {
    # source file name → where the default layout puts it below data/PRJA/fastq/RUN1/<library>/
    "50%_done_R1.fastq.gz": "50__done_R1.fastq.gz",
    "a%25b_R1.fastq.gz": "a_25b_R1.fastq.gz",
    "it's a $weird `name` & co #1 [x] ~+;=,@!_R1.fastq.gz": (
        "it's a $weird `name` & co #1 [x] ~+;=,@!_R1.fastq.gz"
    ),
    "ünïcødé 日本 файл_R1.fastq.gz": "ünïcødé 日本 файл_R1.fastq.gz",
    "what? yes: <maybe>_R1.fastq.gz": "what_ yes_ _maybe__R1.fastq.gz",
}


def test_a_package_with_percent_and_other_awkward_names_passes_bagit_and_bdbag(
    consortium: Consortium, settings: Settings, tmp_path: Path
) -> None:
    """docs/packages.md says bagit and bdbag accept Steward's bags: true also when a source
    file or a manifest value holds '%' (which those tools misread as RFC 8493 writes it), so
    the layout maps it to '_'; the original name stays in the package's file list."""
    src = tmp_path / "src"
    src.mkdir()
    rows = []
    for i, name in enumerate(AWKWARD_SOURCES):
        (src / name).write_bytes(f"reads of {name}\n".encode())
        rows.append(
            {
                "sample_id": f"S{i}",
                "library_id": "L%1" if i == 0 else f"L{i}",
                "subject_id": f"SBJ{i}",
                "project_id": "PRJA",
                "data_type": "fastq",
                "run_id": "RUN1",
                "lane": "1",
                "path": name,
            }
        )
    manifest = src / "samples.csv"
    with manifest.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    view, _ = packages.create(
        consortium.db,
        settings,
        actor=consortium.steward,
        project=consortium.project,
        spec=PackageSpec(name="awkward", manifest=manifest),
    )
    pkg = package_build.build(consortium.db, settings, actor=consortium.steward, package_id=view.id)
    assert pkg.state == "built"
    out = packages.bag_dir(settings, pkg.id)
    listed = packages.files(consortium.db, actor=consortium.steward, package_id=pkg.id)
    expected = {
        f"PRJA/fastq/RUN1/{'L_1' if i == 0 else f'L{i}'}/{laid_out}": source
        for i, (source, laid_out) in enumerate(AWKWARD_SOURCES.items())
    }
    assert {
        f.relpath.removeprefix("data/"): unquote(f.source_uri).rsplit("/", 1)[1] for f in listed
    } == expected
    assert "%" not in (out / "manifest-sha256.txt").read_text("utf-8")

    bagit.Bag(str(out)).validate()  # raises on any problem
    result = run_bdbag(tmp_path, "--validate", "full", str(out))
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr
    assert {unquote(i) for i in crate_file_ids(out)} == set(expected)
    assert bag.validate_bag(out, full=True) == []


# -- sources in object storage --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["copy", "fetch"])
def test_a_bag_built_from_objects_in_s3(
    tmp_path: Path, seaweedfs: s3.SeaweedFS, s3_bucket: str, mode: bag.Mode
) -> None:
    store = open_store(f"s3://{s3_bucket}", seaweedfs.config())
    entries = []
    for rel, content in FILES.items():
        key = f"runs/{rel}"
        store.write(key, content)
        entries.append(
            bag.BagEntry(rel, f"s3://{s3_bucket}/{quote(key)}", metadata={"sample_id": "S1"})
        )
    out = tmp_path / "bag"
    built = bag.build_payload(out, entries, mode=mode, s3=seaweedfs.config(), workers=4)
    vcf = next(b for b in built if b.relpath == "PRJB/S2/calls.vcf.gz")
    assert vcf.source_etag == vcf.md5  # a single-part upload: the ETag is the MD5
    bag.finish_bag(out, INFO, built, fetch=mode == "fetch")
    check = bag.check_bag(out, full=True)
    assert check.problems == []
    if mode == "copy":
        for rel, content in FILES.items():
            assert (out / "data" / rel).read_bytes() == content
        bagit.Bag(str(out)).validate()
        assert check.fetch_pending == []
    else:
        lines = (out / "fetch.txt").read_text().splitlines()
        assert f"s3://{s3_bucket}/runs/PRJA/S1/with%20space%20%C3%BC.bam 10000 " in "\n".join(lines)
        assert len(check.fetch_pending) == len(FILES)


def test_a_missing_object_is_named(tmp_path: Path, seaweedfs: s3.SeaweedFS, s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}", seaweedfs.config())
    store.write("there.txt", b"here")
    entries = [
        bag.BagEntry("there.txt", f"s3://{s3_bucket}/there.txt"),
        bag.BagEntry("gone.txt", f"s3://{s3_bucket}/gone.txt"),
    ]
    with pytest.raises(ValidationFailed) as err:
        bag.build_payload(tmp_path / "bag", entries, s3=seaweedfs.config())
    (detail,) = err.value.details
    assert detail.field == "data/gone.txt"
    assert "gone.txt" in detail.message


def test_fetch_mode_can_take_checksums_from_the_manifest_for_objects(
    tmp_path: Path, seaweedfs: s3.SeaweedFS, s3_bucket: str
) -> None:
    store = open_store(f"s3://{s3_bucket}", seaweedfs.config())
    store.write("a.bin", b"object bytes")
    claimed = bag.BagEntry(
        "a.bin", f"s3://{s3_bucket}/a.bin", size=12, sha256="ab" * 32, md5="cd" * 16
    )
    built = bag.build_payload(
        tmp_path / "bag", [claimed], mode="fetch", s3=seaweedfs.config(), trust_manifest=True
    )
    assert (built[0].sha256, built[0].md5) == ("ab" * 32, "cd" * 16)  # taken, not read
    assert built[0].fetch_url == f"s3://{s3_bucket}/a.bin"
    wrong_size = bag.BagEntry("a.bin", claimed.source_uri, size=13, sha256="ab" * 32, md5="cd" * 16)
    with pytest.raises(ValidationFailed):  # a size that disagrees means: read it after all
        bag.build_payload(
            tmp_path / "bag2",
            [wrong_size],
            mode="fetch",
            s3=seaweedfs.config(),
            trust_manifest=True,
        )
