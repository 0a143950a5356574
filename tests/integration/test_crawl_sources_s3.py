"""The S3 source against a real S3 server (SeaweedFS, with signatures checked), past 1,000 keys."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from steward.adapters import s3api
from steward.crawl.config import SourceConfig
from steward.crawl.extract import extract_metadata
from steward.crawl.extractors.magetab import IdfExtractor
from steward.crawl.listing import open_source
from steward.crawl.model import Change, FoundDataset, ListingOutcome, SourceStatus
from steward.crawl.reach import Reach, reachable
from tests.crawl_trees import source
from tests.s3 import SeaweedFS

IDF = "MAGE-TAB Version\t1.1\nInvestigation Title\tStudy {n}\n"
DATASETS, FILES = 30, 35  # 1,050 data objects, plus metadata and strays


def put(server: SeaweedFS, bucket: str, objects: dict[str, bytes]) -> None:
    cfg = server.config()

    def one(item: tuple[str, bytes]) -> None:
        resp = s3api.request(cfg, "PUT", bucket, item[0], body=item[1])
        assert resp.status == 200, resp.body

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, objects.items()))


def delete(server: SeaweedFS, bucket: str, keys: list[str]) -> None:
    for key in keys:
        assert s3api.request(server.config(), "DELETE", bucket, key).status in (200, 204)


def env(server: SeaweedFS, *, secret: str | None = None) -> dict[str, str]:
    return {"CRAWL_KEY": server.access_key, "CRAWL_SECRET": secret or server.secret_key}


def bucket_source(server: SeaweedFS, url: str, **fields: Any) -> SourceConfig:
    return source(
        url=url,
        endpoint=server.endpoint,
        access_key_env="CRAWL_KEY",
        secret_key_env="CRAWL_SECRET",
        retries=2,
        **fields,
    )


def crawl(
    config: SourceConfig, environ: dict[str, str], previous: dict[str, Any] | None = None
) -> tuple[dict[str, FoundDataset], ListingOutcome]:
    found, outcome = open_source(config, environ=environ).list(previous).collect()
    assert json.loads(json.dumps(outcome.state)) == outcome.state
    assert environ["CRAWL_SECRET"] not in json.dumps(outcome.summary())
    return {f.key: f for f in found}, outcome


@pytest.fixture
def big(seaweedfs: SeaweedFS, s3_bucket: str) -> str:
    objects = {
        f"loading/E-MTAB-{d}/raw/r{f:03d}.fq": f"reads {d}.{f}".encode()
        for d in range(1, DATASETS + 1)
        for f in range(FILES)
    }
    objects.update(
        {f"loading/E-MTAB-{d}/E-MTAB-{d}.idf.txt": IDF.format(n=d).encode() for d in (1, 2)}
    )
    objects["loading/README.txt"] = b"not a dataset"
    objects["loading/tmp/E-MTAB-99/x"] = b"excluded"
    objects["elsewhere/E-MTAB-500/x"] = b"outside the prefix"
    put(seaweedfs, s3_bucket, objects)
    return s3_bucket


def test_more_than_a_thousand_keys_are_listed_into_datasets(seaweedfs: SeaweedFS, big: str) -> None:
    config = bucket_source(seaweedfs, f"s3://{big}/loading", exclude=["tmp"])
    found, outcome = crawl(config, env(seaweedfs))
    assert sorted(found) == sorted(f"E-MTAB-{d}" for d in range(1, DATASETS + 1))
    assert outcome.status is SourceStatus.OK
    assert sum(len(f.files or ()) for f in found.values()) == DATASETS * FILES + 2
    first = found["E-MTAB-1"]
    assert first.location == f"s3://{big}/loading/E-MTAB-1/"
    assert {f.path for f in first.files or ()} >= {"E-MTAB-1.idf.txt", "raw/r000.fq"}
    assert all(f.etag for f in first.files or ())
    assert all(f.change is Change.NEW for f in found.values())

    # unchanged: nothing to read again
    again, unchanged = crawl(config, env(seaweedfs), outcome.state)
    assert {f.change for f in again.values()} == {Change.UNCHANGED}
    assert (unchanged.new, unchanged.changed, unchanged.removed) == (0, 0, ())

    # one object rewritten (new ETag), one dataset deleted, one added
    put(seaweedfs, big, {"loading/E-MTAB-3/raw/r000.fq": b"different reads"})
    delete(seaweedfs, big, [f"loading/E-MTAB-4/raw/r{f:03d}.fq" for f in range(FILES)])
    put(seaweedfs, big, {"loading/E-MTAB-777/E-MTAB-777.idf.txt": IDF.format(n=777).encode()})
    later, changed = crawl(config, env(seaweedfs), unchanged.state)
    changes = {k: f.change for k, f in later.items() if f.change is not Change.UNCHANGED}
    assert changes == {"E-MTAB-3": Change.CHANGED, "E-MTAB-777": Change.NEW}
    assert [r.key for r in changed.removed] == ["E-MTAB-4"]


def test_metadata_files_are_read_from_the_bucket(seaweedfs: SeaweedFS, big: str) -> None:
    config = bucket_source(seaweedfs, f"s3://{big}/loading", extractors=["mage-tab-idf"])
    lister = open_source(config, environ=env(seaweedfs))
    dataset = next(f for f in lister.list() if f.key == "E-MTAB-2")
    metadata = extract_metadata(
        dataset.files or (), [IdfExtractor()], lambda f: lister.read(dataset, f, limit=1 << 20)
    )
    assert metadata.fields["title"] == "Study 2"
    assert [r.path for r in metadata.files] == ["E-MTAB-2.idf.txt"]


def test_datasets_marked_by_file_in_a_flat_prefix(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    put(
        seaweedfs,
        s3_bucket,
        {
            "flat/E-MTAB-1.idf.txt": b"x",
            "flat/E-MTAB-1.sdrf.txt": b"x",
            "flat/E-MTAB-10.idf.txt": b"x",
            "flat/sub/E-MTAB-2.idf.txt": b"x",
            "flat/sub/E-MTAB-2_reads.fq": b"x",
            "flat/zz.txt": b"x",
        },
    )
    config = bucket_source(seaweedfs, f"s3://{s3_bucket}/flat", found_in="file", file="*.idf.txt")
    found, outcome = crawl(config, env(seaweedfs))
    assert {k: [f.path for f in d.files or ()] for k, d in found.items()} == {
        "E-MTAB-1": ["E-MTAB-1.idf.txt", "E-MTAB-1.sdrf.txt"],
        "E-MTAB-10": ["E-MTAB-10.idf.txt"],
        "sub/E-MTAB-2": ["E-MTAB-2.idf.txt", "E-MTAB-2_reads.fq"],
    }
    assert outcome.status is SourceStatus.OK


def test_failures_fail_the_source_and_keep_its_datasets_unknown(
    seaweedfs: SeaweedFS, s3_bucket: str
) -> None:
    put(seaweedfs, s3_bucket, {"E-MTAB-1/a": b"a", "E-MTAB-2/b": b"b"})
    config = bucket_source(seaweedfs, f"s3://{s3_bucket}")
    _, first = crawl(config, env(seaweedfs))
    wrong = env(seaweedfs, secret=seaweedfs.secret_key + "x")
    found, refused = crawl(config, wrong, first.state)
    assert found == {}
    assert refused.status is SourceStatus.FAILED
    assert "were refused" in refused.problems[0].message
    assert wrong["CRAWL_SECRET"] not in refused.problems[0].message
    assert sorted(r.key for r in refused.unknown) == ["E-MTAB-1", "E-MTAB-2"]
    assert refused.removed == ()
    assert refused.state["datasets"] == first.state["datasets"]
    missing = bucket_source(seaweedfs, f"s3://{s3_bucket}-gone")
    _, gone = crawl(missing, env(seaweedfs))
    assert gone.status is SourceStatus.FAILED
    assert "does not exist" in gone.problems[0].message


def test_reachability(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    config = bucket_source(seaweedfs, f"s3://{s3_bucket}")
    assert reachable(config, environ=env(seaweedfs)).status is Reach.REACHABLE
    refused = reachable(config, environ=env(seaweedfs, secret="wrong-secret-value"))
    assert refused.status is Reach.DENIED
    assert "wrong-secret-value" not in refused.message
    gone = bucket_source(seaweedfs, f"s3://{s3_bucket}-gone")
    assert reachable(gone, environ=env(seaweedfs)).status is Reach.NOT_FOUND
    assert reachable(config, environ={}).status is Reach.MISSING_CREDENTIALS
