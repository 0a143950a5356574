"""Access requests through a server's API, as :mod:`steward.services.requests` does them
locally: same arguments (less the database), same views, same errors."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from steward.domain.requests import RequestFields
from steward.remote import subjects
from steward.remote.client import Client
from steward.services.kinds import Filter
from steward.services.requests import REQUEST, RequestDetail, RequestView

PATH = "/api/v1/requests"


def create(
    client: Client,
    *,
    project: str,
    fields: RequestFields,
    requester: str | None = None,
    idempotency_key: str | None = None,
    submit: bool = False,
) -> RequestView:
    body = {"project": project, **{k: subjects.json_value(v) for k, v in asdict(fields).items()},
            "requester": requester, "submit": submit}  # fmt: skip
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return RequestView.model_validate(client.call("POST", PATH, body=body, headers=headers))


def act(
    client: Client,
    *,
    request_id: str,
    command: str,
    changes: RequestFields | None = None,
    **given: Any,
) -> RequestView:
    if changes is not None:
        given.update(asdict(changes))
    view: RequestView = subjects.act(
        client, REQUEST, subject_id=request_id, command=command, **given
    )
    return view


def list_requests(client: Client, *, flt: Filter, sort: str = "created") -> list[RequestView]:
    return subjects.list_(client, REQUEST, flt=flt, sort=sort)


def get(client: Client, *, request_id: str) -> RequestDetail:
    view, found = subjects.detail(client, REQUEST, request_id)
    return RequestDetail(
        request=view,
        **subjects.history_fields(found),
    )
