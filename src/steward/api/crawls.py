"""The dataset crawls over the API: what ``steward crawl --no-wait``, ``crawl list``, ``crawl
show``, ``crawl sources`` and ``crawl schedule add|list|remove`` do, for ``steward --server``.

- ``GET /api/v1/crawls`` and ``GET /api/v1/crawls/{crawl_id}``: past, queued and running
  crawls, shown to whoever the CLI shows them (administrators, stewards of every project the
  crawl fed, whoever started it); to anyone else a crawl does not exist;
- ``POST /api/v1/crawls``: queue a crawl of the *server's* sources (``[crawl]`` in its
  steward.toml) for the worker, 202 with the crawl's and its job's ids;
- ``GET /api/v1/crawl-sources``: whether each of those sources answers (URLs without
  credentials), for whoever may crawl them;
- ``/api/v1/crawl-schedules``: periodic crawls of the server's sources.

A caller never names sources: a crawl reads places with the server's rights and its
credentials, so what to read is the server's configuration alone. A body that carries
sources is refused saying so.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from steward.api.auth import Presented, database, require_write, settings_of, signed_in
from steward.api.idempotency import claimed, sent_before
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.services import crawl, crawl_jobs, crawl_schedules, crawls
from steward.services.crawl_jobs import Queued
from steward.services.crawl_schedules import ScheduleView
from steward.services.crawls import CrawlDetail, CrawlRow, SourceCheck

router = APIRouter(tags=["crawls"])
BASE = "/api/v1/crawls"
SCHEDULES = "/api/v1/crawl-schedules"
MAX_CRAWLS = 1000

NOT_TAKEN = ("sources", "config", "url", "urls")
"""Fields a caller might use to name what to crawl: refused, with the reason."""
SERVERS_OWN = (
    "the server crawls only its own configured sources ([crawl] in its steward.toml); a "
    "request cannot name sources, URLs or paths"
)

Key = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=150,
        description="Sent again with the same body: the first answer, nothing done twice.",
    ),
]


def _no_sources(data: Any) -> Any:
    if isinstance(data, dict):
        named = sorted(k for k in data if k in NOT_TAKEN)
        if named:
            raise ValueError(f"{', '.join(named)} not taken: {SERVERS_OWN}")
    return data


class NewCrawl(BaseModel):
    """What ``steward --server URL crawl --no-wait`` sends."""

    model_config = ConfigDict(extra="forbid")

    full: bool = Field(
        False, strict=True, description="Examine every file (`steward crawl --full`)."
    )

    _refuse_sources = model_validator(mode="before")(_no_sources)


class NewSchedule(BaseModel):
    """What ``steward --server URL crawl schedule add`` sends."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        "default",
        max_length=48,
        description="Letters, digits, '.', '_', '-' (up to 48, starting with a letter or digit).",
    )
    every: str = Field(max_length=20, description=crawl_schedules.EVERY_ACCEPTED)
    full: bool = Field(False, strict=True, description="Its crawls examine every file.")
    replace: bool = Field(False, strict=True, description="Change the schedule of that name.")

    _refuse_sources = model_validator(mode="before")(_no_sources)


@router.get(
    BASE,
    response_model=list[CrawlRow],
    responses=documented(401, 403, 422, 503),
    summary="Crawls you may see, newest first, with their main counts",
    operation_id="list_crawls",
)
def list_crawls(
    request: Request,
    presented: Presented,
    limit: Annotated[
        int, Query(ge=0, le=MAX_CRAWLS, description="At most this many (0: all).")
    ] = 20,
) -> list[CrawlRow]:
    """Administrators see every crawl; a steward those that fed only projects they
    coordinate, and those they started; anyone else is refused (403)."""
    with signed_in(request, presented) as caller:
        _only(request, {"limit"})
        return crawls.list_crawls(database(request), actor=caller.user_id, limit=limit)


@router.get(
    BASE + "/{crawl_id}",
    response_model=CrawlDetail,
    responses=documented(401, 404, 422, 503),
    summary="One crawl's summary; for a queued or running one, its job and progress",
    operation_id="get_crawl",
)
def get_crawl(
    request: Request,
    presented: Presented,
    crawl_id: Annotated[str, Path(max_length=64, description="The crawl's id (crl_…).")],
) -> CrawlDetail:
    """To whoever may not see it, the crawl does not exist (the same 404 as an unknown id)."""
    with signed_in(request, presented) as caller:
        _only(request, set())
        return crawls.show_crawl(database(request), actor=caller.user_id, crawl_id=crawl_id)


@router.post(
    BASE,
    response_model=Queued,
    status_code=202,
    responses=documented(401, 403, 409, 413, 415, 422, 503),
    summary="Queue a crawl of the server's configured sources for the worker",
    operation_id="queue_crawl",
)
def queue_crawl(
    request: Request,
    response: Response,
    presented: Presented,
    body: Annotated[NewCrawl | None, Body()] = None,
    idempotency_key: Key = None,
) -> Queued:
    """The sources are the server's (``[crawl]`` in its steward.toml), never the caller's;
    the caller must coordinate every project they feed. Follow the crawl at
    ``/api/v1/crawls/{crawl_id}``, its job at ``/api/v1/jobs/{action_id}``."""
    asked = body or NewCrawl()
    db = database(request)
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        config = crawl.configured(settings_of(request), on_server=True)
        key = claimed(db, caller.user_id, idempotency_key, ["crawl", asked.model_dump()])
        queued = crawl_jobs.queue(
            db, actor=caller.user_id, config=config, full=asked.full, idempotency_key=key
        )
    response.headers["Location"] = f"{BASE}/{queued.crawl_id}"
    return queued


@router.get(
    "/api/v1/crawl-sources",
    response_model=list[SourceCheck],
    responses=documented(401, 403, 422, 503),
    summary="Each of the server's crawl sources and whether it can be listed now",
    operation_id="check_crawl_sources",
)
def check_crawl_sources(request: Request, presented: Presented) -> list[SourceCheck]:
    """For whoever may crawl them (stewards of every project they feed, administrators);
    URLs without credentials. Each source is tried from the server, with its environment."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        return crawls.check_configured(
            database(request),
            actor=caller.user_id,
            config=crawl.configured(settings_of(request), on_server=True),
            environ=os.environ,
        )


@router.get(
    SCHEDULES,
    response_model=list[ScheduleView],
    responses=documented(401, 422, 503),
    summary="Periodic crawls you may see, with when each runs next",
    operation_id="list_crawl_schedules",
)
def list_crawl_schedules(request: Request, presented: Presented) -> list[ScheduleView]:
    with signed_in(request, presented) as caller:
        _only(request, set())
        return crawl_schedules.list_(database(request), actor=caller.user_id)


@router.post(
    SCHEDULES,
    response_model=ScheduleView,
    status_code=201,
    responses=documented(401, 403, 409, 413, 415, 422, 503),
    summary="Crawl the server's configured sources periodically, on the worker",
    operation_id="add_crawl_schedule",
)
def add_crawl_schedule(
    request: Request,
    response: Response,
    presented: Presented,
    body: Annotated[NewSchedule, Body()],
    idempotency_key: Key = None,
) -> ScheduleView:
    """A name that exists is refused (409) unless ``replace``; the schedule keeps the
    server's sources as they are now."""
    db = database(request)
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        every = crawl_schedules.parse_every(body.every)
        config = crawl.configured(settings_of(request), on_server=True)
        asked = ["crawl-schedule", body.model_dump()]
        again = sent_before(db, caller.user_id, idempotency_key, asked)
        claimed(db, caller.user_id, idempotency_key, asked)
        # Sent again: the schedule the first request made, if it is still exactly that — never
        # a change (the first may have been refused, or someone changed it since).
        first = (
            crawl_schedules.same_as(
                db, actor=caller.user_id, name=body.name, every=every, full=body.full
            )
            if again
            else None
        )
        view = first or crawl_schedules.add(
            db, actor=caller.user_id, name=body.name, every=every, config=config,
            replace=body.replace, full=body.full,
        )  # fmt: skip
    response.headers["Location"] = f"{SCHEDULES}/{view.name}"
    return view


@router.delete(
    SCHEDULES + "/{name}",
    response_model=ScheduleView,
    responses=documented(401, 403, 404, 422, 503),
    summary="Stop a periodic crawl (a crawl it already queued still runs)",
    operation_id="remove_crawl_schedule",
)
def remove_crawl_schedule(
    request: Request,
    presented: Presented,
    name: Annotated[str, Path(max_length=48, description="The schedule's name.")],
) -> ScheduleView:
    """To whoever may not see it, the schedule does not exist (404)."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        return crawl_schedules.remove(database(request), actor=caller.user_id, name=name)
