"""The dataset crawls through a server's API (``/api/v1/crawls``, ``/api/v1/crawl-sources``,
``/api/v1/crawl-schedules``), answering the services' own views.

The server crawls only its own configured sources, so the calls that crawl, check or
schedule send no sources: they stand for the service called with the server's config.
"""

from __future__ import annotations

from urllib.parse import quote

from steward.remote.calls import remote_of
from steward.remote.client import Client
from steward.services import crawl_schedules, crawls
from steward.services.crawl_jobs import Queued
from steward.services.crawl_schedules import ScheduleView
from steward.services.crawls import CrawlDetail, CrawlRow, SourceCheck

V1 = "/api/v1"


@remote_of(crawls.list_crawls)
def list_crawls(client: Client, *, limit: int = 20) -> list[CrawlRow]:
    found = client.call("GET", f"{V1}/crawls", params=[("limit", str(limit))])
    return [CrawlRow.model_validate(r) for r in found]


@remote_of(crawls.show_crawl)
def show_crawl(client: Client, *, crawl_id: str) -> CrawlDetail:
    found = client.call("GET", f"{V1}/crawls/{quote(crawl_id, safe='')}")
    return CrawlDetail.model_validate(found)


def queue(client: Client, *, full: bool = False) -> Queued:
    """``crawl_jobs.queue`` with the server's configured sources."""
    return Queued.model_validate(client.call("POST", f"{V1}/crawls", body={"full": full}))


def check_sources(client: Client) -> list[SourceCheck]:
    """``crawls.check_sources`` of the server's configured sources, tried from the server."""
    return [SourceCheck.model_validate(c) for c in client.call("GET", f"{V1}/crawl-sources")]


def add_schedule(
    client: Client, *, name: str, every: str, full: bool = False, replace: bool = False
) -> ScheduleView:
    """``crawl_schedules.add`` with the server's configured sources."""
    body = {"name": name, "every": every, "full": full, "replace": replace}
    return ScheduleView.model_validate(client.call("POST", f"{V1}/crawl-schedules", body=body))


@remote_of(crawl_schedules.list_)
def list_schedules(client: Client) -> list[ScheduleView]:
    return [ScheduleView.model_validate(v) for v in client.call("GET", f"{V1}/crawl-schedules")]


@remote_of(crawl_schedules.remove)
def remove_schedule(client: Client, *, name: str) -> ScheduleView:
    found = client.call("DELETE", f"{V1}/crawl-schedules/{quote(name, safe='')}")
    return ScheduleView.model_validate(found)
