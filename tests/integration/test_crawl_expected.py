"""Expected-files manifests with real trees, SQLite and PostgreSQL: a crawl names the files a
dataset lacks, has in excess or holds at the wrong size, keeps a record of each missing file
(since when, until when), and the dataset's history says when it was incomplete."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from steward.crawl.config import parse_crawl_config
from steward.db.models import Dataset, DatasetFile, Event
from steward.services import crawl, datasets
from steward.services.crawl_summary import CrawlSummary
from tests.conftest import Consortium
from tests.crawl_trees import ACCESSION, write_tree


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # a manifest's checksum, not security


SHEET = "path\tsize\tmd5\nraw/a.fq\t5\t{a}\nraw/b.fq\t3\t{b}\nraw/c.fq\t9\t\n".format(
    a=_md5(b"ACGT\n"), b=_md5(b"TT\n")
)


def build(root: Path) -> None:
    write_tree(
        root / "incoming",
        {
            # a sheet: b.fq missing, c.fq the wrong size, x.fq not listed; the sidecar, the
            # IDF (metadata) and the manifest itself are never "extra"
            "E-MTAB-1/manifest.tsv": SHEET,
            "E-MTAB-1/raw/a.fq": "ACGT\n",
            "E-MTAB-1/raw/a.fq.md5": _md5(b"ACGT\n"),
            "E-MTAB-1/raw/c.fq": "ACGT\n",
            "E-MTAB-1/raw/x.fq": "extra\n",
            "E-MTAB-1/E-MTAB-1.idf.txt": "Investigation Title\tLiver\n",
            # a BagIt bag: its payload manifest expects data/r2.fq, which is not there
            "E-MTAB-2/bagit.txt": "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
            "E-MTAB-2/manifest-md5.txt": f"{_md5(b'r1')}  data/r1.fq\n{_md5(b'r2')}\tdata/r2.fq\n",
            "E-MTAB-2/tagmanifest-md5.txt": f"{_md5(b'x')} bagit.txt\n",
            "E-MTAB-2/data/r1.fq": "r1",
            # complete: no problem at all
            "E-MTAB-3/manifest.csv": "File Name,Size\nrun.fq,3\n",
            "E-MTAB-3/run.fq": "abc",
        },
    )


def config(root: Path) -> Any:
    return parse_crawl_config(
        {
            "sources": [
                {
                    "name": "incoming",
                    "project": "p1",
                    "url": str(root / "incoming"),
                    "stage": "incoming",
                    "pattern": ACCESSION,
                    "extractors": ["mage-tab-idf", "expected-files"],
                }
            ]
        }
    )


def run(c: Consortium, root: Path, **kw: Any) -> CrawlSummary:
    return crawl.run_crawl(c.db, c.db.settings, actor=c.steward, config=config(root), **kw)


def problems(c: Consortium, accession: str) -> dict[str, dict[str, Any]]:
    view = datasets.detail(c.db, actor=c.steward, dataset=accession, files=None).dataset
    return {p["kind"]: p for p in view.problems}


def files(c: Consortium, accession: str) -> dict[str, DatasetFile]:
    with c.db.read() as s:
        (dataset_id,) = s.scalars(select(Dataset.id).where(Dataset.accession == accession))
        rows = s.scalars(select(DatasetFile).where(DatasetFile.dataset_id == dataset_id))
        return {f.path: f for f in rows}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    build(root)
    return root


def test_missing_extra_and_wrong_sized_files_are_problems_with_a_record_of_each_missing_one(
    consortium: Consortium, tree: Path
) -> None:
    c = consortium
    first = run(c, tree)
    found = problems(c, "E-MTAB-1")
    assert found["missing-files"]["count"] == 1
    assert found["missing-files"]["examples"] == ["raw/b.fq"]
    assert found["missing-files"]["manifests"] == ["manifest.tsv"]
    assert found["extra-files"]["examples"] == ["raw/x.fq"]  # not the sidecar, IDF or manifest
    assert found["size-mismatch"]["examples"] == ["raw/c.fq (9 bytes expected, 5 found)"]
    bag = problems(c, "E-MTAB-2")
    assert bag["missing-files"]["examples"] == ["data/r2.fq"]
    assert "extra-files" not in bag  # bagit.txt and the tag manifest are the bag's own
    assert problems(c, "E-MTAB-3") == {}
    # the manifests are not metadata people read
    view = datasets.detail(c.db, actor=c.steward, dataset="E-MTAB-1", files=None).dataset
    assert view.title == "Liver"
    assert not any(k.startswith("expected_files") for k in view.fields)

    record = files(c, "E-MTAB-1")
    missing = record["E-MTAB-1/raw/b.fq"]
    assert (missing.outcome, missing.size, missing.checksum) == (
        "missing",
        3,
        "md5:" + _md5(b"TT\n"),
    )
    assert missing.first_seen_at >= first.started_at
    assert record["E-MTAB-1/raw/a.fq"].outcome == "present"
    assert files(c, "E-MTAB-2")["E-MTAB-2/data/r2.fq"].outcome == "missing"

    # still missing a crawl later (a quick one: the folder kept its time): the record says
    # until when it was found missing, and since when
    second = run(c, tree)
    again = files(c, "E-MTAB-1")["E-MTAB-1/raw/b.fq"]
    assert again.outcome == "missing"
    assert again.first_seen_at == missing.first_seen_at
    assert again.last_seen_at >= second.started_at > missing.last_seen_at

    # it arrives: present from now on, the problem cleared — and the history keeps both
    write_tree(tree / "incoming", {"E-MTAB-1/raw/b.fq": "TT\n"})
    third = run(c, tree)
    arrived = files(c, "E-MTAB-1")["E-MTAB-1/raw/b.fq"]
    assert arrived.outcome == "present"
    assert arrived.first_seen_at >= third.started_at
    assert "missing-files" not in problems(c, "E-MTAB-1")
    with c.db.read() as s:
        (dataset_id,) = s.scalars(select(Dataset.id).where(Dataset.accession == "E-MTAB-1"))
        history = [
            (e.type, json.dumps(e.data), e.at)
            for e in s.scalars(
                select(Event).where(Event.subject_id == dataset_id).order_by(Event.seq)
            )
        ]
    said_missing = [at for kind, data, at in history if "raw/b.fq" in data and "missing" in data]
    assert said_missing
    assert said_missing[0] < third.started_at
    later = [(kind, data) for kind, data, at in history if at >= third.started_at]
    assert later
    assert all("missing-files" not in data for _, data in later)


def test_a_broken_manifest_is_a_problem_that_names_its_line(
    consortium: Consortium, tree: Path
) -> None:
    c = consortium
    write_tree(
        tree / "incoming",
        {
            "E-MTAB-4/manifest.tsv": "name\tsize\nrun.fq\t3\n",
            "E-MTAB-5/manifest.tsv": "path\nok.fq\n../../etc/passwd\n",
            "E-MTAB-6/manifest-sha256.txt": f"{_md5(b'x')} data/x.fq\n",  # an MD5: too short
            "E-MTAB-7/manifest.tsv": "path\tsize\nrun.fq\tbig\n",
        },
    )
    run(c, tree)
    messages = {
        accession: " ".join(
            str(p.get("message")) for p in problems(c, accession).values() if p["kind"] == "invalid"
        )
        for accession in ("E-MTAB-4", "E-MTAB-5", "E-MTAB-6", "E-MTAB-7")
    }
    assert "no path column" in messages["E-MTAB-4"]
    assert "name, size" in messages["E-MTAB-4"]
    assert "line 3" in messages["E-MTAB-5"]
    assert "outside the dataset" in messages["E-MTAB-5"]
    assert "line 1" in messages["E-MTAB-6"]
    assert "CHECKSUM PATH" in messages["E-MTAB-6"]
    assert "line 2" in messages["E-MTAB-7"]
    assert "'big'" in messages["E-MTAB-7"]
    for accession in messages:
        assert "missing-files" not in problems(c, accession)
