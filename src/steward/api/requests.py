"""``POST /api/v1/requests``: file a new access request (the registry's generated routes list,
show and move requests; creating one is the kind's own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import Presented, database, require_write, signed_in
from steward.api.idempotency import claimed
from steward.api.problems import documented
from steward.domain.requests import RequestFields
from steward.services import requests as svc
from steward.services.requests import RequestView

router = APIRouter(tags=["access requests"])


class NewRequest(BaseModel):
    """A request's fields, as `steward request create` takes them."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(max_length=64, description="The project the data belongs to.")
    title: str = Field(max_length=500)
    institution: str = Field("", max_length=500)
    project_lead: str = Field("", max_length=500)
    intended_use: str = Field("", max_length=20_000)
    datasets: list[str] = Field(default_factory=list, max_length=1000)
    duo_codes: list[str] = Field(default_factory=list, max_length=100)
    requester: str | None = Field(
        None, max_length=64, description="Staff only: file the request for this requester."
    )
    submit: bool = Field(
        False, description="Submit at once; if it cannot be submitted, no draft is kept."
    )


@router.post(
    "/api/v1/requests",
    response_model=RequestView,
    status_code=201,
    responses=documented(401, 403, 404, 409, 413, 415, 422, 503),
    summary="File a new access request (a draft, or submitted at once)",
    operation_id="create_request",
)
def create_request(
    request: Request,
    response: Response,
    presented: Presented,
    body: Annotated[NewRequest, Body()],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=150)] = None,
) -> RequestView:
    db = database(request)
    with signed_in(request, presented, hold=False) as caller:
        require_write(caller)
        key = claimed(db, caller.user_id, idempotency_key, ["create-request", body.model_dump()])
        view = svc.create(
            db,
            actor=caller.user_id,
            project=body.project,
            fields=RequestFields(
                title=body.title,
                institution=body.institution,
                project_lead=body.project_lead,
                intended_use=body.intended_use,
                datasets=tuple(body.datasets),
                duo_codes=tuple(body.duo_codes),
            ),
            requester=body.requester,
            idempotency_key=key,
            submit=body.submit,
        )
    response.headers["Location"] = f"/api/v1/requests/{view.id}"
    response.headers["ETag"] = f'"{view.version}"'
    return view
