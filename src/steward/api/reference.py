"""Reference data every client needs: DUO codes (``/api/v1/duo``) and the workflows of the
tracked kinds (``/api/v1/workflows``) — what ``steward duo list`` and ``steward workflow show``
print, from the same sources."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from steward.api.auth import Presented, signed_in
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.domain import duo
from steward.services import workflows
from steward.services.workflows import WorkflowInfo

router = APIRouter(tags=["reference"])


class DuoTerm(BaseModel):
    id: str
    shorthand: str
    label: str


@router.get(
    "/api/v1/duo",
    response_model=list[DuoTerm],
    responses=documented(401, 422, 503),
    summary="The Data Use Ontology codes Steward accepts (by id or shorthand)",
    operation_id="list_duo_codes",
)
def duo_codes(request: Request, presented: Presented) -> list[DuoTerm]:
    with signed_in(request, presented):
        _only(request, set())
    return [DuoTerm(id=t.id, shorthand=t.shorthand, label=t.label) for t in duo.terms().values()]


@router.get(
    "/api/v1/workflows",
    response_model=list[WorkflowInfo],
    responses=documented(401, 422, 503),
    summary="Every tracked kind's workflow: states, commands, who may issue them, diagram",
    operation_id="list_workflows",
)
def list_workflows(request: Request, presented: Presented) -> list[WorkflowInfo]:
    with signed_in(request, presented):
        _only(request, set())
    return workflows.describe_all()


@router.get(
    "/api/v1/workflows/{name}",
    response_model=WorkflowInfo,
    responses=documented(401, 422, 503),
    summary="One workflow: states (initial, final, SLA), commands and the Mermaid diagram",
    operation_id="get_workflow",
)
def get_workflow(
    request: Request,
    presented: Presented,
    name: Annotated[str, Path(max_length=64, description="access-request, package, share…")],
) -> WorkflowInfo:
    """An unknown name is refused (`422`) with the names there are, as `steward workflow
    show` refuses it."""
    with signed_in(request, presented):
        _only(request, set())
    return workflows.describe(name)
