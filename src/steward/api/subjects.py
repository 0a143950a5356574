"""``/api/v1/{kind}`` for every registered kind, generated from its declaration.

For each kind (``requests``, ``packages``, ``shares``, and every kind registered later):

- ``GET /{kind}``: its declared filters as query parameters (combinable, date ranges),
  ``sort``, a keyset cursor ``after`` and ``limit``; answers a page with the total and the
  ``next`` link;
- ``GET /{kind}/{id}``: the subject, its ``version`` (also the ``ETag``) and the commands the
  caller may issue now (``allowed_actions``);
- ``GET /{kind}/{id}/events``: its timeline with the time spent in each state;
- ``POST /{kind}/{id}:{command}``: one command people may issue, the body typed by the
  command's payload model, with ``Idempotency-Key`` and ``If-Match`` (the version) headers.

Everything goes through :mod:`steward.services.subjects`, so who may see and do what, the
audit of refusals and "not found" for what the caller may not see are the CLI's.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, WithJsonSchema, create_model

from steward.api.auth import Presented, database, require_write, signed_in
from steward.api.idempotency import claimed
from steward.api.problems import documented
from steward.errors import Detail, NotFound, ValidationFailed
from steward.services import subjects
from steward.services.kinds import Kind
from steward.services.timeline import TimelineEntry
from steward.services.tokens import Caller

MAX_PAGE = 500


def _iso_time(value: Any) -> Any:
    """Only ISO 8601 text (pydantic alone would also take ``0.5`` as seconds since 1970)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("not an ISO 8601 date-time (2026-03-01T00:00:00Z)") from None
    return value


IsoTime = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_time),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _name(kind: Kind, suffix: str) -> str:
    return kind.view.__name__.removesuffix("View") + suffix


def router_for(kind: Kind) -> APIRouter:
    base = "/" + kind.collection
    tag = f"{kind.label}s"
    router = APIRouter(tags=[tag])
    page_model = create_model(
        _name(kind, "Page"),
        items=(list[kind.view], ...),  # type: ignore[name-defined]
        total=(int, Field(description="How many match the filters in all.")),
        next=(str | None, Field(None, description="The next page's URL; null on the last.")),
    )
    detail_model = create_model(
        _name(kind, "Detail"),
        item=(kind.view, ...),
        allowed_actions=(list[str], Field(description="Commands the caller may issue now.")),
        current_state_for=(float | None, Field(None, description="Seconds in its state.")),
    )
    events_model = create_model(
        _name(kind, "Events"),
        timeline=(list[TimelineEntry], ...),
        time_in_state=(dict[str, float], ...),
        current_state_for=(float | None, None),
    )
    router.add_api_route(
        base,
        _lister(kind, page_model),
        methods=["GET"],
        response_model=page_model,
        responses=documented(401, 404, 422, 503),
        summary=f"List the {kind.label}s you may see",
        operation_id=f"list_{kind.collection}",
    )
    # Commands before the subject's own path: for a method a path does not take, the first
    # route matching the path names the methods in Allow (POST for `…:submit`).
    offered = kind.offered()
    for name, (command, description) in offered.items():
        router.add_api_route(
            base + "/{subject_id}:" + name,
            _actor(kind, name, command.payload),
            methods=["POST"],
            response_model=kind.view,
            responses=documented(401, 403, 404, 409, 413, 415, 422, 503),
            summary=description or name,
            operation_id=f"{name.replace('-', '_')}_{kind.id_field}",
        )

    def unknown_command(
        request: Request, subject_id: str, command: str, presented: Presented
    ) -> None:
        del subject_id
        with signed_in(request, presented):  # a valid token first, as on every other path
            pass
        raise NotFound(
            f"{kind.collection} have no command {command!r}",
            [
                Detail(
                    "unknown command",
                    field="command",
                    value=command[:80],
                    accepted=", ".join(offered),
                )
            ],
        )

    router.add_api_route(
        base + "/{subject_id}:{command}", unknown_command, methods=["POST"],
        include_in_schema=False,
    )  # fmt: skip
    router.add_api_route(
        base + "/{subject_id}",
        _getter(kind, detail_model),
        methods=["GET"],
        response_model=detail_model,
        responses=documented(401, 404, 422, 503),
        summary=f"One {kind.label}, with what you may do now",
        operation_id=f"get_{kind.id_field}",
    )
    router.add_api_route(
        base + "/{subject_id}/events",
        _events(kind, events_model),
        methods=["GET"],
        response_model=events_model,
        responses=documented(401, 404, 422, 503),
        summary=f"A {kind.label}'s timeline and time in each state",
        operation_id=f"events_of_{kind.id_field}",
    )
    return router


def _only(request: Request, allowed: set[str], repeatable: frozenset[str] = frozenset()) -> None:
    """Refuse query parameters the endpoint does not take — a typo (``?stat=draft``) would
    otherwise quietly answer everything — and a single-valued one given twice."""
    params = request.query_params
    twice = sorted({k for k in params if k in allowed and k not in repeatable
                    and len(params.getlist(k)) > 1})  # fmt: skip
    if twice:
        raise ValidationFailed(
            f"given more than once: {', '.join(twice)}",
            [Detail("one value only", field=k, accepted="one value") for k in twice],
        )
    unknown = sorted({k for k in params if k not in allowed})
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ValidationFailed(
            f"unknown query parameter(s): {', '.join(repr(u) for u in unknown)}",
            [
                Detail("unknown parameter", field=u or "(empty name)", accepted=accepted)
                for u in unknown
            ],
        )


def _function(name: str, params: list[inspect.Parameter], body: Any, *, hold: bool = True) -> Any:
    """An endpoint FastAPI reads as if written by hand: ``params`` are its signature; the
    body runs signed in as the caller (see :func:`signed_in` for ``hold``)."""

    def endpoint(*, presented: Any, **kwargs: Any) -> Any:
        with signed_in(kwargs["request"], presented, hold=hold) as caller:
            return body(caller=caller, **kwargs)

    endpoint.__name__ = name
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return endpoint


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


_COMMON = [
    _param("request", Request),
    _param("presented", Presented),
]
_SUBJECT = _param("subject_id", Annotated[str, Path(max_length=200)])


def filter_params(kind: Kind) -> list[inspect.Parameter]:
    """A kind's list filters and its order as query parameters (for any endpoint that lists
    the kind: its generated list, the dataset tracker's views)."""
    spec = kind.filters
    return [
        _param("project", Annotated[str | None, Query(max_length=64)], None),
        _param(
            "state",
            Annotated[list[str] | None, Query(description="Only these states (repeat).")],
            None,
        ),
        *(_param(n, Annotated[str | None, Query(max_length=500)], None) for n in spec.texts),
        *(
            _param(b, Annotated[IsoTime | None, Query(description="ISO 8601 with a zone.")], None)
            for b in spec.bounds
        ),
        _param(
            "sort",
            Annotated[
                str, Query(description="created, updated, since, state or id; '-' reverses.")
            ],
            "created",
        ),
    ]


def _lister(kind: Kind, page_model: type[BaseModel]) -> Any:
    params = [
        *_COMMON,
        *filter_params(kind),
        _param(
            "after",
            Annotated[str | None, Query(description="The cursor of the page before.")],
            None,
        ),
        _param("limit", Annotated[int, Query(ge=1, le=MAX_PAGE)], 50),
    ]

    names = {p.name for p in params} - {"request", "presented"}

    def body(request: Request, caller: Caller, project: str | None, state: list[str] | None,
             sort: str, after: str | None, limit: int, **given: Any) -> Any:  # fmt: skip
        _only(request, names, repeatable=frozenset({"state"}))
        flt = kind.filter(project=project, states=[s.strip().lower() for s in state or ()],
                          **given)  # fmt: skip
        page = subjects.page(
            database(request), kind, actor=caller.user_id, flt=flt, sort=sort, after=after,
            limit=limit,
        )  # fmt: skip
        nxt = str(request.url.include_query_params(after=page.next)) if page.next else None
        return page_model(items=page.items, total=page.total, next=nxt)

    return _function(f"list_{kind.collection}", params, body)


def _getter(kind: Kind, detail_model: type[BaseModel]) -> Any:
    def body(request: Request, caller: Caller, subject_id: str, response: Response) -> Any:
        _only(request, set())
        found = subjects.get(database(request), kind, actor=caller.user_id, subject_id=subject_id)
        response.headers["ETag"] = f'"{found.row.version}"'
        return detail_model(
            item=kind.view_of(found.row),
            allowed_actions=found.allowed_actions,
            current_state_for=found.history.current_state_for,
        )

    params = [*_COMMON, _SUBJECT, _param("response", Response)]
    return _function(f"get_{kind.id_field}", params, body)


def _events(kind: Kind, events_model: type[BaseModel]) -> Any:
    def body(request: Request, caller: Caller, subject_id: str) -> Any:
        _only(request, set())
        history = subjects.history_of(
            database(request), kind, actor=caller.user_id, subject_id=subject_id
        )
        return events_model(
            timeline=history.timeline,
            time_in_state=history.time_in_state,
            current_state_for=history.current_state_for,
        )

    return _function(f"events_of_{kind.id_field}", [*_COMMON, _SUBJECT], body)


def version_of(if_match: str | None) -> int | None:
    """``If-Match: "3"`` (or ``W/"3"``, or ``3``) → 3; anything else is refused."""
    if if_match is None:
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise ValidationFailed(
            "If-Match must be the version the subject's ETag gave",
            [Detail("not a version", field="If-Match", value=if_match[:80], accepted='"3"')],
        )
    return int(text)


def _actor(kind: Kind, command: str, payload: type[BaseModel]) -> Any:
    optional = all(not f.is_required() for f in payload.model_fields.values())
    body_type: Any = Annotated[payload | None, Body()] if optional else Annotated[payload, Body()]
    params = [
        *_COMMON,
        _SUBJECT,
        _param("response", Response),
        _param("payload", body_type, None if optional else inspect.Parameter.empty),
        _param(
            "idempotency_key",
            Annotated[str | None, Header(alias="Idempotency-Key", max_length=150)],
            None,
        ),
        _param("if_match", Annotated[str | None, Header(alias="If-Match", max_length=40)], None),
    ]

    def body(request: Request, caller: Caller, subject_id: str, response: Response,
             payload: BaseModel | None, idempotency_key: str | None,
             if_match: str | None) -> Any:  # fmt: skip
        _only(request, set())
        require_write(caller)
        db = database(request)
        data = payload.model_dump(exclude_unset=True) if payload is not None else {}
        key = claimed(db, caller.user_id, idempotency_key, [kind.name, subject_id, command, data])
        view = subjects.act(
            db, kind, actor=caller.user_id, subject_id=subject_id, command=command,
            payload=data, idempotency_key=key, expected_version=version_of(if_match),
        )  # fmt: skip
        response.headers["ETag"] = f'"{view.version}"'
        return view

    return _function(f"{command.replace('-', '_')}_{kind.id_field}", params, body, hold=False)
