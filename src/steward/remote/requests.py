"""Access requests through a server's API, as :mod:`steward.services.requests` does them
locally: same arguments (less the database), same views, same errors."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from steward.domain.requests import RequestFields
from steward.remote.client import Client
from steward.services.kinds import Filter
from steward.services.requests import REQUEST, RequestDetail, RequestView

PATH = "/api/v1/requests"
PAGE = 500


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def create(
    client: Client,
    *,
    project: str,
    fields: RequestFields,
    requester: str | None = None,
    idempotency_key: str | None = None,
    submit: bool = False,
) -> RequestView:
    body = {"project": project, **{k: _json(v) for k, v in asdict(fields).items()},
            "requester": requester, "submit": submit}  # fmt: skip
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return RequestView.model_validate(client.call("POST", PATH, body=body, headers=headers))


def act(
    client: Client,
    *,
    request_id: str,
    command: str,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    changes: RequestFields | None = None,
    **given: Any,
) -> RequestView:
    """What the command's payload takes of ``given`` (as the local service does)."""
    if changes is not None:
        given.update(asdict(changes))
    spec = REQUEST.commands.get(command)
    fields = spec.payload.model_fields if spec else {}
    body = {k: _json(v) for k, v in given.items() if k in fields and v is not None}
    headers = {}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if expected_version is not None:
        headers["If-Match"] = f'"{expected_version}"'
    answer = client.call("POST", f"{PATH}/{request_id}:{command}", body=body, headers=headers)
    return RequestView.model_validate(answer)


def params_of(flt: Filter, sort: str) -> list[tuple[str, str]]:
    """A list filter as the API's query parameters."""
    params = [("sort", sort)]
    if flt.project:
        params.append(("project", flt.project))
    params += [("state", s) for s in flt.states]
    params += [(k, str(_json(v))) for k, v in flt.values.items() if v not in (None, "")]
    return params


def list_requests(client: Client, *, flt: Filter, sort: str = "created") -> list[RequestView]:
    limit = flt.limit or None
    params = [*params_of(flt, sort), ("limit", str(min(limit or PAGE, PAGE)))]
    return [RequestView.model_validate(v) for v in client.pages(PATH, params, limit)]


def get(client: Client, *, request_id: str) -> RequestDetail:
    detail = client.call("GET", f"{PATH}/{request_id}")
    events = client.call("GET", f"{PATH}/{request_id}/events")
    return RequestDetail(
        request=RequestView.model_validate(detail["item"]),
        timeline=events["timeline"],
        time_in_state=events["time_in_state"],
        current_state_for=detail["current_state_for"],
        available_actions=detail["allowed_actions"],
    )
