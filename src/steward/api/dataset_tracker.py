"""The dataset tracker's read commands over the API, for ``steward --server``:

- ``GET /api/v1/datasets/views/{view}``: the ``track`` or ``discover`` view
  (:func:`steward.services.dataset_views.view_table`) with every filter ``steward dataset
  list`` takes, as JSON (the rows by column name, times in ``tz``) or, for ``Accept:
  text/csv`` or ``?format=csv``, the very CSV ``steward dataset list --view … --format csv``
  writes. "Already ingested" is decided with the *server's* accession mappings;
- ``GET /api/v1/datasets/duplicates``: :func:`steward.services.dataset_duplicates.find_duplicates`
  with the server's ``[crawl]`` config (mappings, stages; with ``by_content=true`` its sources,
  read with the server's own rights and credentials — a caller never names sources);
- ``GET /api/v1/datasets/{dataset_id}/files``: the durable per-file record
  (:func:`steward.services.dataset_files.list_files`), file kinds by the server's config;
- ``POST /api/v1/datasets/{dataset_id}/verify``: :func:`steward.services.dataset_verify.verify`
  run inline (as the local command is), reading files through the server's configured sources
  only; recorded as an event on the dataset. 200 whether or not every sidecar matched
  (``all_match`` says; the CLI exits 1 when not).

A caller sees the datasets the local command would show them, and no others. These routes are
registered before the generated ``/api/v1/datasets/{subject_id}`` ones, so ``views`` is never
read as a dataset's id.
"""

from __future__ import annotations

import os
from typing import IO, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from steward.api import negotiation
from steward.api.auth import Presented, database, require_write, settings_of, signed_in
from steward.api.problems import documented
from steward.api.reports import _FILES, FormatQ, ZoneQ, _file, negotiate
from steward.api.subjects import _COMMON, _function, _only, _param, filter_params
from steward.config import Settings
from steward.crawl.config_model import CrawlConfig
from steward.services import (
    crawl,
    dataset_duplicates,
    dataset_files,
    dataset_overview,
    dataset_verify,
    dataset_views,
)
from steward.services.dataset_duplicates import DuplicatesResult
from steward.services.dataset_files import DatasetFiles
from steward.services.dataset_verify import VerifyResult
from steward.services.datasets import DATASET
from steward.services.kinds import Filter
from steward.services.tokens import Caller
from steward.tables import Table, write_table
from steward.timeutil import zone

router = APIRouter(tags=["datasets"])
VIEWS = "/api/v1/datasets/views"

ViewName = Literal["track", "discover"]


def _written(table: Table, fmt: str, out: IO[Any], tz: ZoneInfo) -> int:
    write_table(table, fmt, out, tz)
    return len(table.rows)


def _filter(project: str | None, state: list[str] | None, **given: Any) -> Filter:
    """The list's query parameters as the dataset filter (states as the list takes them)."""
    return DATASET.filter(project=project, states=[s.strip().lower() for s in state or ()], **given)


def _view_endpoint() -> Any:
    params = [
        *_COMMON,
        _param("view", ViewName),
        *filter_params(DATASET),  # states: within the view's
        _param(
            "limit", Annotated[int | None, Query(ge=1, description="At most this many rows.")], None
        ),
        _param("tz", ZoneQ, None),
        _param("fmt", FormatQ, None),
    ]
    names = ({p.name for p in params} - {"request", "presented", "view", "fmt"}) | {"format"}

    def body(request: Request, caller: Caller, view: str, project: str | None,
             state: list[str] | None, sort: str, limit: int | None, tz: str | None,
             fmt: str | None, **given: Any) -> Any:  # fmt: skip
        _only(request, names, repeatable=frozenset({"state"}))
        answer_as = negotiate(fmt, request.headers.get("accept"))
        settings = settings_of(request)
        where = zone(tz if tz is not None else settings.timezone)
        flt = _filter(project, state, limit=limit, **given)
        table = dataset_views.view_table(
            database(request), actor=caller.user_id, view=view, flt=flt, sort=sort,
            mappings=dataset_views.configured_mappings(settings),
        )  # fmt: skip
        if answer_as != "json":
            return _file(
                f"datasets-{view}",
                answer_as,
                lambda out: _written(table, answer_as, out, where),
            )
        answer = {
            "view": view,
            "title": table.title,
            "timezone": where.key,
            "columns": [{"name": c.machine_name, "kind": c.kind} for c in table.columns],
            "rows": list(table.records(where)),
        }
        return JSONResponse(answer, headers={"Vary": "Accept"})

    return _function("dataset_view", params, body)


router.add_api_route(
    VIEWS + "/{view}",
    _view_endpoint(),
    methods=["GET"],
    responses={
        200: {
            "content": {"application/json": {"schema": {"type": "object"}}, **_FILES},
            "description": "The view's rows: JSON (columns, rows by column name), CSV or XLSX.",
        },
        **documented(401, 404, 406, 422, 503),
    },
    summary="The dataset tracker's track or discover view, with the list's filters",
    operation_id="dataset_view",
)


EveryQ = Annotated[
    Literal["day", "week"] | None,
    Query(description="One bar per day or per week in the chart (default: by the history)."),
]


def _overview_endpoint() -> Any:
    params = [
        *_COMMON,
        *filter_params(DATASET),
        _param("every", EveryQ, None),
        _param("tz", ZoneQ, None),
        _param(
            "fmt",
            Annotated[
                Literal["html", "json"] | None,
                Query(alias="format", description="html (the page) or json (its figures)."),
            ],
            None,
        ),
    ]
    names = ({p.name for p in params} - {"request", "presented", "fmt"}) | {"format"}

    def body(request: Request, caller: Caller, project: str | None, state: list[str] | None,
             sort: str, every: str | None, tz: str | None, fmt: str | None,
             **given: Any) -> Any:  # fmt: skip
        del sort  # the page sorts in the browser
        _only(request, names, repeatable=frozenset({"state"}))
        answer_as = negotiation.page_or_json(
            fmt, request.headers.get("accept"),
            refusal="the datasets overview can be answered only as HTML or JSON",
        )  # fmt: skip
        settings = settings_of(request)
        flt = _filter(project, state, **given)
        data = dataset_overview.overview(
            database(request), actor=caller.user_id, flt=flt,
            tz=zone(tz if tz is not None else settings.timezone),
            stages=dataset_overview.configured_stages(settings),
            mappings=dataset_views.configured_mappings(settings), every=every,
        )  # fmt: skip
        page = dataset_overview.render_overview(data)
        if answer_as == "json":
            return JSONResponse(
                {**dataset_overview.figures(data), "html": page}, headers={"Vary": "Accept"}
            )
        return negotiation.page(page, "datasets.html")

    return _function("dataset_overview", params, body)


router.add_api_route(
    "/api/v1/datasets/overview",
    _overview_endpoint(),
    methods=["GET"],
    responses={
        200: {
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
            "description": "The Datasets page (one self-contained HTML document: the chart of "
            "datasets per state over time, the track and discover tables, each dataset's "
            "history), or its figures and the page as JSON.",
        },
        **documented(401, 404, 406, 422, 503),
    },
    summary="The Datasets page: datasets per state over time, the views, every history",
    operation_id="dataset_overview",
)


@router.get(
    "/api/v1/datasets/duplicates",
    response_model=DuplicatesResult,
    responses=documented(401, 403, 404, 422, 503),
    summary="Pairs of datasets that are one (same stage twice, secondary accessions, content)",
    operation_id="dataset_duplicates",
)
def duplicates(
    request: Request,
    presented: Presented,
    project: Annotated[str | None, Query(max_length=64, description="Only this project.")] = None,
    by_content: Annotated[
        bool,
        Query(description="Also compare data files' checksums (reads the server's sources)."),
    ] = False,
) -> DuplicatesResult:
    """Every pair the caller may see, as ``steward dataset duplicates --json`` gives them;
    comparing content is for the project's staff."""
    with signed_in(request, presented) as caller:
        _only(request, {"project", "by_content"})
        return dataset_duplicates.find_duplicates(
            database(request), actor=caller.user_id, project=project, by_content=by_content,
            config=server_config(settings_of(request)), environ=os.environ,
        )  # fmt: skip


def server_config(settings: Settings) -> CrawlConfig | None:
    """The server's ``[crawl]`` config, as the local commands read steward.toml's."""
    return crawl.configured(settings, on_server=True) if settings.crawl else None


@router.get(
    "/api/v1/datasets/{dataset_id}/files",
    response_model=DatasetFiles,
    responses=documented(401, 404, 422, 503),
    summary="A dataset's files from the durable record: path, size, checksum, outcome, seen",
    operation_id="dataset_files",
)
def files(
    request: Request,
    presented: Presented,
    dataset_id: Annotated[str, Path(max_length=200, description="The dataset's id (ds_…).")],
) -> DatasetFiles:
    """What ``steward dataset files ACC --json`` gives; a dataset the caller may not see
    does not exist."""
    with signed_in(request, presented) as caller:
        _only(request, set())
        return dataset_files.list_files(
            database(request), actor=caller.user_id, dataset=dataset_id,
            config=server_config(settings_of(request)), environ=os.environ,
        )  # fmt: skip


@router.post(
    "/api/v1/datasets/{dataset_id}/verify",
    response_model=VerifyResult,
    responses=documented(401, 403, 404, 409, 422, 503),
    summary="Recompute a dataset's data-file checksums against their sidecars, now",
    operation_id="verify_dataset",
)
def verify(
    request: Request,
    presented: Presented,
    dataset_id: Annotated[str, Path(max_length=200, description="The dataset's id (ds_…).")],
) -> Any:
    """What ``steward dataset verify ACC --json`` gives (``all_match`` besides); the
    project's staff only, and a dataset the caller may not see does not exist."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        result = dataset_verify.verify(
            database(request), actor=caller.user_id, dataset=dataset_id,
            config=server_config(settings_of(request)), environ=os.environ,
        )  # fmt: skip
    return JSONResponse(dataset_verify.as_json(result))
