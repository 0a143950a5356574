"""A transient failure in the middle of an S3 listing: retried with backoff, resumed after the
last key seen, never the whole crawl. (The listing itself runs against SeaweedFS in
tests/integration/test_crawl_sources_s3.py; here a store fails on cue.)"""

from __future__ import annotations

from collections.abc import Iterator

from steward.adapters.storage import ObjectInfo
from steward.crawl.model import SourceStatus
from steward.crawl.sources_s3 import S3Source
from steward.errors import ExternalError, Unavailable
from tests.crawl_trees import source

KEYS = [f"E-MTAB-{d}/file{f}.txt" for d in (1, 2, 3) for f in (1, 2)]


class FlakyStore:
    """Lists KEYS, failing after ``fail_after`` objects while ``failures`` are left."""

    url = "s3://bucket"

    def __init__(self, failures: list[Exception], fail_after: int = 3) -> None:
        self.failures, self.fail_after, self.listings = failures, fail_after, 0

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.listings += 1
        for i, key in enumerate(KEYS):
            if i == self.fail_after and self.failures:
                raise self.failures.pop(0)
            yield ObjectInfo(key=key, size=i, etag=f"e{i}")

    def join(self, key: str) -> str:
        return f"{self.url}/{key}"


def lister(store: FlakyStore, sleeps: list[float]) -> S3Source:
    s3 = S3Source(source(url="s3://bucket", retries=3), backoff=0.01, sleep=sleeps.append)
    s3._store = store  # type: ignore[assignment]
    return s3


def test_a_transient_failure_resumes_after_the_last_key() -> None:
    store, sleeps = FlakyStore([Unavailable("S3 is overloaded (SlowDown); retry")]), []
    found, outcome = lister(store, sleeps).list().collect()
    assert [f.key for f in found] == ["E-MTAB-1", "E-MTAB-2", "E-MTAB-3"]
    assert [len(f.files or ()) for f in found] == [2, 2, 2]  # nothing twice, nothing lost
    assert (outcome.status, outcome.retries, store.listings) == (SourceStatus.OK, 1, 2)
    assert len(sleeps) == 1
    assert 0 < sleeps[0] < 1


def test_a_failure_that_persists_fails_the_source_after_its_retries() -> None:
    store, sleeps = FlakyStore([Unavailable("overloaded")] * 5), []
    found, outcome = lister(store, sleeps).list().collect()
    assert outcome.status is SourceStatus.FAILED
    assert (outcome.retries, store.listings, len(sleeps)) == (2, 3, 2)
    assert [f.key for f in found] == ["E-MTAB-1"]  # complete before the failure point


def test_a_failure_that_cannot_pass_is_not_retried() -> None:
    store, sleeps = FlakyStore([ExternalError("S3 failed to list: InternalError")]), []
    _, outcome = lister(store, sleeps).list().collect()
    assert (outcome.status, outcome.retries, store.listings, sleeps) == (
        SourceStatus.FAILED,
        0,
        1,
        [],
    )
