"""Reports over access requests: ``/api/v1/reports/{name}`` for each report ``steward report``
offers — ``tracking``, ``changelog``, ``time-in-state`` and ``sla`` — with the same filters,
the same columns and the same rows (:mod:`steward.services.reports`).

JSON by default; CSV or XLSX for ``Accept: text/csv`` or
``Accept: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet``, or for
``?format=csv|xlsx|json`` (which wins over ``Accept``), as an attachment. The CSV is the very
text ``steward report NAME --format csv`` writes. Times are given in ``tz`` (default: the
server's ``timezone`` setting), and plain dates in the filters mean whole days there.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, create_model

from steward.api import negotiation
from steward.api.auth import Presented, database, settings_of, signed_in
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.services import filters
from steward.services import reports as svc
from steward.services.requests import REQUEST
from steward.tables import Column, ColumnKind
from steward.timeutil import zone

router = APIRouter(tags=["reports"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA = {"json": "application/json", "csv": "text/csv", "xlsx": XLSX}
"""Each format's media type, in the order offered."""
_WILDCARDS = {"*/*": "json", "application/*": "json", "text/*": "csv"}
SPOOL = 8 << 20
"""A CSV or XLSX answer is kept in memory up to this size, then in a temporary file."""

Format = Literal["json", "csv", "xlsx"]
DESCRIPTIONS = {
    "tracking": "One row per request: latest state, people, datasets, total duration.",
    "changelog": "One row per transition with the time spent in the state it left.",
    "time-in-state": "Per state: count, median, p90, max, SLA target and breaches.",
    "sla": "Requests sitting in a state longer than its SLA right now.",
}


class ReportColumn(BaseModel):
    name: str = Field(description="The key in each row (durations end in _seconds).")
    kind: ColumnKind


_CELL: dict[str, Any] = {
    "text": str,
    "int": int,
    "float": float,
    "time": Annotated[str, Field(json_schema_extra={"format": "date-time"})],
    "duration": float,
    "list": list[str],
}
_CELL_BY_NAME: dict[str, Any] = {"current": bool}
"""Columns whose values are not their kind's (the change log's ``current`` is true/false)."""


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def _cell(column: Column) -> Any:
    return _CELL_BY_NAME.get(column.name, _CELL[column.kind])


def _report_model(name: str, columns: list[Column]) -> type[BaseModel]:
    row: Any = create_model(  # type: ignore[call-overload]
        f"{_camel(name)}Row",
        **{c.machine_name: (_cell(c) | None, ...) for c in columns},
    )
    model: type[BaseModel] = create_model(
        f"{_camel(name)}Report",
        report=(str, Field(description="The report's name.")),
        title=(str, Field(description="The table's title, as the CLI shows it.")),
        caption=(str, Field(description="What the rows are, and any inconsistency found.")),
        timezone=(str, Field(description="The zone the times are given in.")),
        columns=(list[ReportColumn], ...),
        rows=(list[row], ...),
    )
    return model


MODELS = {name: _report_model(name, columns) for name, columns in svc.COLUMNS.items()}
"""Each report's JSON answer (what the API description shows)."""


def negotiate(given: str | None, accept: str | None) -> str:
    """The format to answer in (JSON when ``Accept`` says nothing or anything)."""
    return negotiation.negotiate(
        given, accept, media=MEDIA, wildcards=_WILDCARDS, default="json",
        refusal="a report can be answered only as JSON, CSV or XLSX",
    )  # fmt: skip


ProjectQ = Annotated[str | None, Query(max_length=64, description="Only this project.")]
StatesQ = Annotated[
    list[str] | None, Query(description="Only requests in these states (repeat, any case).")
]
UserQ = Annotated[str | None, Query(max_length=64)]
DateQ = Annotated[
    str | None,
    Query(
        max_length=64,
        description="YYYY-MM-DD (a whole day in tz; a _to date includes its day) or an ISO "
        "8601 date-time (in tz when it names no zone).",
    ),
]
ZoneQ = Annotated[
    str | None,
    Query(max_length=64, description="IANA zone of the times (default: the server's)."),
]
FormatQ = Annotated[
    Format | None,
    Query(alias="format", description="json, csv or xlsx; wins over the Accept header."),
]
PARAMS = {
    "project",
    "state",
    "requester",
    "reviewer",
    "created_from",
    "created_to",
    "decided_from",
    "decided_to",
    "tz",
    "format",
}


def _file(name: str, fmt: str, write: Callable[[IO[Any]], int]) -> StreamingResponse:
    """The report written by ``write`` as an attachment, from memory or a temporary file;
    ``X-Total-Count`` says how many rows it holds."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 - closed when sent
    try:
        if fmt == "xlsx":
            rows = write(spool)
        else:
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            rows = write(text)
            text.flush()
            text.detach()
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise

    def chunks() -> Iterator[bytes]:
        with spool:
            while block := spool.read(1 << 16):
                yield block

    media = MEDIA[fmt] + ("; charset=utf-8" if fmt == "csv" else "")
    return StreamingResponse(
        chunks(),
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
            "Content-Length": str(size),
            "X-Total-Count": str(rows),
            "Vary": "Accept",
        },
    )


def _endpoint(name: str) -> Callable[..., Any]:
    def report(
        request: Request,
        presented: Presented,
        project: ProjectQ = None,
        state: StatesQ = None,
        requester: UserQ = None,
        reviewer: UserQ = None,
        created_from: DateQ = None,
        created_to: DateQ = None,
        decided_from: DateQ = None,
        decided_to: DateQ = None,
        tz: ZoneQ = None,
        fmt: FormatQ = None,
    ) -> Any:
        with signed_in(request, presented) as caller:
            _only(request, PARAMS, repeatable=frozenset({"state"}))
            answer_as = negotiate(fmt, request.headers.get("accept"))
            settings = settings_of(request)
            where = zone(tz if tz is not None else settings.timezone)
            flt = filters.filter_from_text(
                REQUEST,
                project=project,
                state=state,
                tz=where,
                requester=requester,
                reviewer=reviewer,
                created_from=created_from,
                created_to=created_to,
                decided_from=decided_from,
                decided_to=decided_to,
            )
            db, actor = database(request), caller.user_id
            if answer_as != "json":
                return _file(
                    name,
                    answer_as,
                    lambda out: svc.write_report(
                        db, name, actor=actor, flt=flt, fmt=answer_as, out=out, tz=where
                    ),
                )
            table = svc.REPORTS[name](db, actor=actor, flt=flt)
            body = {
                "report": name,
                "title": table.title,
                "caption": table.caption,
                "timezone": where.key,
                "columns": [{"name": c.machine_name, "kind": c.kind} for c in table.columns],
                "rows": list(table.records(where)),
            }
        return JSONResponse(body, headers={"Vary": "Accept"})

    report.__name__ = f"report_{name.replace('-', '_')}"
    report.__doc__ = DESCRIPTIONS[name]
    return report


_FILES = {
    "text/csv": {"schema": {"type": "string"}},
    XLSX: {"schema": {"type": "string", "format": "binary"}},
}
for _name in svc.REPORTS:
    router.add_api_route(
        f"/api/v1/reports/{_name}",
        _endpoint(_name),
        methods=["GET"],
        response_model=MODELS[_name],
        responses={
            200: {"content": _FILES, "description": "The report, as JSON, CSV or XLSX."},
            **documented(401, 404, 406, 422, 503),
        },
        summary=f"Report {_name}: {DESCRIPTIONS[_name][0].lower()}{DESCRIPTIONS[_name][1:]}",
        operation_id=f"report_{_name.replace('-', '_')}",
    )
