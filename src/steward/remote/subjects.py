"""Any registered kind through a server's generated endpoints (``/api/v1/{kind}``): lists
and commands as :mod:`steward.services.subjects` does them locally."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from steward.remote.client import Client
from steward.services.kinds import Filter, Kind

PREFIX = "/api/v1"
PAGE = 500


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def params_of(flt: Filter, sort: str) -> list[tuple[str, str]]:
    """A list filter and its order as the API's query parameters."""
    return [("sort", sort), *filter_params(flt)]


def filter_params(flt: Filter) -> list[tuple[str, str]]:
    """A filter (less its limit) as the API's query parameters."""
    params: list[tuple[str, str]] = []
    if flt.project:
        params.append(("project", flt.project))
    params += [("state", s) for s in flt.states]
    params += [(k, str(json_value(v))) for k, v in flt.values.items() if v not in (None, "")]
    return params


def list_(client: Client, kind: Kind, *, flt: Filter, sort: str = "created") -> list[Any]:
    limit = flt.limit or None
    params = [*params_of(flt, sort), ("limit", str(min(limit or PAGE, PAGE)))]
    path = f"{PREFIX}/{kind.collection}"
    return [kind.view.model_validate(v) for v in client.pages(path, params, limit)]


def act(
    client: Client,
    kind: Kind,
    *,
    subject_id: str,
    command: str,
    idempotency_key: str | None = None,
    expected_version: int | None = None,
    **given: Any,
) -> Any:
    """Send what the command's payload takes of ``given`` (as the local services do: the CLI
    passes every option it has)."""
    spec = kind.commands.get(command)
    fields = spec.payload.model_fields if spec else {}
    body = {k: json_value(v) for k, v in given.items() if k in fields and v is not None}
    headers = {}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if expected_version is not None:
        headers["If-Match"] = f'"{expected_version}"'
    path = f"{PREFIX}/{kind.collection}/{subject_id}:{command}"
    return kind.view.model_validate(client.call("POST", path, body=body, headers=headers))


def detail(client: Client, kind: Kind, subject_id: str) -> tuple[Any, dict[str, Any]]:
    """The subject's view and its detail and timeline, as the API gives them."""
    base = f"{PREFIX}/{kind.collection}/{subject_id}"
    found = client.call("GET", base)
    events = client.call("GET", f"{base}/events")
    return kind.view.model_validate(found["item"]), {**found, **events}


def history_fields(found: dict[str, Any]) -> dict[str, Any]:
    """A detail's timeline, stays and the caller's commands, under the names the services'
    detail views give them (the API calls the commands ``allowed_actions``)."""
    return {
        "timeline": found["timeline"],
        "time_in_state": found["time_in_state"],
        "current_state_for": found["current_state_for"],
        "available_actions": found["allowed_actions"],
    }
