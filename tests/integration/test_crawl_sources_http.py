"""The endpoint source against a real HTTP server on loopback answering JSON pages."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from steward.crawl.config import SourceConfig
from steward.crawl.model import Change, FoundDataset, ListingOutcome, ProblemKind, SourceStatus
from steward.crawl.reach import Reach, reachable
from steward.crawl.sources_http import EndpointSource
from tests.crawl_http import Endpoint, json_endpoint
from tests.crawl_trees import source

TOKEN = "tok_Zq8xR2mV7kN4pW9tB3yL6sH1"
ENV = {"EP_TOKEN": TOKEN}


def record(n: int, **extra: Any) -> dict[str, Any]:
    return {"accession": f"E-MTAB-{n}", "title": f"Study {n}", **extra}


@pytest.fixture
def api() -> Iterator[Endpoint]:
    with json_endpoint() as endpoint:
        yield endpoint


def linked(api: Endpoint, pages: int = 3, per_page: int = 4) -> None:
    """``pages`` pages at /datasets?page=N, each naming the next in ``next``."""
    for p in range(1, pages + 1):
        body = {
            "items": [record((p - 1) * per_page + i) for i in range(1, per_page + 1)],
            "next": f"/datasets?page={p + 1}" if p < pages else None,
        }
        api.page(f"/datasets?page={p}", body)


def endpoint(api: Endpoint, **fields: Any) -> SourceConfig:
    entry = {
        "url": f"{api.url}/datasets?page=1",
        "stage": "external",
        "token_env": "EP_TOKEN",
        "pagination": {"style": "link", "next_field": "next"},
        "retries": 3,
        **fields,
    }
    return source(**entry)


def crawl(
    config: SourceConfig, previous: dict[str, Any] | None = None
) -> tuple[list[FoundDataset], ListingOutcome]:
    lister = EndpointSource(config, environ=ENV, backoff=0.01)
    found, outcome = lister.list(previous).collect()
    assert TOKEN not in json.dumps(outcome.summary())
    return found, json_roundtrip(outcome)


def json_roundtrip(outcome: ListingOutcome) -> ListingOutcome:
    assert json.loads(json.dumps(outcome.state)) == outcome.state
    return outcome


def test_linked_pages_are_all_listed_and_an_unchanged_recrawl_is_answered_304(
    api: Endpoint,
) -> None:
    linked(api)
    config = endpoint(api)
    found, first = crawl(config)
    assert [f.accession for f in found] == [f"E-MTAB-{n}" for n in range(1, 13)]
    assert found[0].record == record(1)
    assert found[0].location == f"{api.url}/datasets?page=1#E-MTAB-1"
    assert (first.status, first.new, first.retries) == (SourceStatus.OK, 12, 0)
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for _, h in api.requests)
    api.requests.clear()
    found, again = crawl(config, first.state)
    assert [f.change for f in found] == [Change.UNCHANGED] * 12
    assert all(f.record is None for f in found)  # not fetched again: 304
    assert all("If-None-Match" in h for _, h in api.requests)
    assert (again.status, again.found, again.removed) == (SourceStatus.OK, 12, ())
    # one record changes, one disappears: only that page is read anew
    body, _ = api.pages["/datasets?page=2"]
    body["items"][0]["title"] = "Renamed"
    del body["items"][1]
    found, third = crawl(config, again.state)
    changes = {f.accession: f.change for f in found}
    assert changes["E-MTAB-5"] is Change.CHANGED
    assert [r.accession for r in third.removed] == ["E-MTAB-6"]


def test_pages_linked_by_the_link_header(api: Endpoint) -> None:
    api.page("/d", [record(1)], Link='</d?after=1>; rel="next"')
    api.page("/d?after=1", [record(2)])
    config = endpoint(api, url=f"{api.url}/d", pagination={"style": "link"})
    found, outcome = crawl(config)
    assert [f.accession for f in found] == ["E-MTAB-1", "E-MTAB-2"]
    assert outcome.status is SourceStatus.OK


def test_cursor_pages_with_nested_fields(api: Endpoint) -> None:
    api.page("/v2/studies", {"data": {"rows": [{"meta": {"acc": "E-GEOD-1"}}]}, "cursor": "c2"})
    api.page("/v2/studies?after=c2", {"data": {"rows": [{"meta": {"acc": "E-GEOD-2"}}]}})
    config = endpoint(
        api,
        url=f"{api.url}/v2/studies",
        field="meta.acc",
        items_field="data.rows",
        pagination={"style": "cursor", "cursor_field": "cursor", "cursor_param": "after"},
    )
    found, outcome = crawl(config)
    assert [f.accession for f in found] == ["E-GEOD-1", "E-GEOD-2"]
    assert outcome.status is SourceStatus.OK


def test_a_500_on_one_page_is_retried_and_the_listing_completes(api: Endpoint) -> None:
    linked(api)
    api.fail["/datasets?page=2"] = [500, 503]
    found, outcome = crawl(endpoint(api))
    assert len(found) == 12
    assert (outcome.status, outcome.retries) == (SourceStatus.OK, 2)
    assert api.hits("/datasets?page=2") == 3


def test_a_page_that_keeps_failing_fails_the_source_and_nothing_goes_missing(
    api: Endpoint,
) -> None:
    linked(api)
    config = endpoint(api)
    _, first = crawl(config)
    api.requests.clear()
    api.fail["/datasets?page=2"] = [500] * 10
    found, outcome = crawl(config, first.state)
    assert [f.accession for f in found] == [f"E-MTAB-{n}" for n in range(1, 5)]  # page 1
    assert outcome.status is SourceStatus.FAILED
    (problem,) = outcome.problems
    assert problem.kind is ProblemKind.PAGE_FAILED
    assert problem.message == "answered 500 Internal Server Error, 3 times"
    assert problem.where == f"{api.url}/datasets?page=2"
    assert api.hits("/datasets?page=2") == 3  # per request: the source's retries, no more
    assert outcome.removed == ()
    assert sorted(r.accession for r in outcome.unknown) == sorted(
        f"E-MTAB-{n}" for n in range(5, 13)
    )
    assert len(outcome.state["datasets"]) == 12  # the unknown ones are kept for next time


def test_a_slow_page_within_the_timeout_is_waited_for(api: Endpoint) -> None:
    linked(api)
    api.slow["/datasets?page=2"] = [0.3]
    found, outcome = crawl(endpoint(api, timeout=5))
    assert (len(found), outcome.status, outcome.retries) == (12, SourceStatus.OK, 0)


def test_a_page_slower_than_the_timeout_is_retried(api: Endpoint) -> None:
    linked(api)
    api.slow["/datasets?page=3"] = [1.5]
    found, outcome = crawl(endpoint(api, timeout=0.3))
    assert (len(found), outcome.status, outcome.retries) == (12, SourceStatus.OK, 1)
    api.slow["/datasets?page=3"] = [1.5, 1.5, 1.5]
    found, outcome = crawl(endpoint(api, timeout=0.3))
    assert outcome.status is SourceStatus.FAILED
    assert outcome.problems[0].message == "no answer within 0.3 s, 3 times"


def test_the_token_never_leaves_the_endpoints_host(api: Endpoint) -> None:
    api.page("/d", {"items": [record(1)], "next": "http://localhost:1/steal"})
    config = endpoint(api, url=f"{api.url}/d")
    found, outcome = crawl(config)
    assert [f.accession for f in found] == ["E-MTAB-1"]
    assert outcome.status is SourceStatus.FAILED
    assert outcome.problems[0].kind is ProblemKind.BAD_PAGE
    assert "another host" in outcome.problems[0].message


def test_bad_pages_and_records_are_reported(api: Endpoint) -> None:
    api.page(
        "/d",
        {
            "items": [record(1), {"title": "no accession"}, "text", record(2), record(1)],
            "next": "/d2",
        },
    )
    api.page("/d2", {"items": [{"accession": "GSE77"}], "next": "/d3"})
    api.page("/d3", b"<html>not json</html>")
    config = endpoint(api, url=f"{api.url}/d")
    found, outcome = crawl(config)
    assert [f.key for f in found] == ["E-MTAB-1", "E-MTAB-2", "E-MTAB-1#2"]
    kinds = [(p.kind, p.hides_data) for p in outcome.problems]
    assert kinds == [
        (ProblemKind.BAD_RECORD, True),  # no accession field: might have been a dataset
        (ProblemKind.BAD_RECORD, True),  # not an object
        (ProblemKind.DUPLICATE_RECORD, False),
        (ProblemKind.BAD_PAGE, True),  # not JSON: the listing cannot go on
    ]
    assert outcome.status is SourceStatus.FAILED


def test_records_that_do_not_match_the_pattern_are_counted_not_hidden(api: Endpoint) -> None:
    api.page("/d", [record(1), {"accession": "GSE77"}, {"accession": "SRP1"}])
    found, outcome = crawl(endpoint(api, url=f"{api.url}/d"))
    assert [f.accession for f in found] == ["E-MTAB-1"]
    (note,) = outcome.problems
    assert (note.kind, note.hides_data) == (ProblemKind.BAD_RECORD, False)
    assert note.message.startswith("2 record(s) have no accession matching the pattern")
    assert outcome.status is SourceStatus.OK


def test_a_refused_token_fails_the_source(api: Endpoint) -> None:
    api.fail["/d"] = [401]
    found, outcome = crawl(endpoint(api, url=f"{api.url}/d"))
    assert found == []
    assert outcome.status is SourceStatus.FAILED
    assert "check the token in EP_TOKEN" in outcome.problems[0].message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_reachability(api: Endpoint) -> None:
    api.page("/d", [record(1)])
    api.page("/html", b"<html></html>")
    ok = reachable(endpoint(api, url=f"{api.url}/d"), environ=ENV)
    assert (ok.status, ok.ok) == (Reach.REACHABLE, True)
    assert reachable(endpoint(api, url=f"{api.url}/nope"), environ=ENV).status is Reach.NOT_FOUND
    assert reachable(endpoint(api, url=f"{api.url}/html"), environ=ENV).status is Reach.UNREACHABLE
    api.fail["/d"] = [403]
    assert reachable(endpoint(api, url=f"{api.url}/d"), environ=ENV).status is Reach.DENIED
    closed = endpoint(api, url=f"http://127.0.0.1:{free_port()}/d")
    down = reachable(closed, environ=ENV, timeout=2)
    assert down.status is Reach.UNREACHABLE
    assert "could not be reached" in down.message


def test_a_pagination_loop_ends_the_listing(api: Endpoint) -> None:
    api.page("/d", {"items": [record(1)], "next": "/d?p=2"})
    api.page("/d?p=2", {"items": [record(2)], "next": "/d"})
    found, outcome = crawl(endpoint(api, url=f"{api.url}/d"))
    assert [f.accession for f in found] == ["E-MTAB-1", "E-MTAB-2"]
    assert outcome.status is SourceStatus.FAILED
    assert outcome.problems[0].message == "the pages lead back to one already read"
    assert api.hits("/d") == 1
