"""The queue: ``/api/v1/jobs`` — what ``steward jobs list`` and ``steward jobs show`` answer.

Each entry is an outbox action (a package build, a push, a webhook…) with its attempts, last
error, outcome and, for a long job, its progress (bytes and items done and total, an estimate
of the time left). Project staff see their projects' actions, administrators' ``admin``
tokens every action; to anyone else an action does not exist
(:mod:`steward.jobs.service`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from steward.api.auth import Presented, database, require_write, signed_in
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.jobs import service
from steward.jobs.outbox import STATES
from steward.jobs.service import ActionView

router = APIRouter(tags=["jobs"])

MAX_JOBS = 500


@router.get(
    "/api/v1/jobs",
    response_model=list[ActionView],
    responses=documented(401, 422, 503),
    summary="Actions in the queue you may see, newest first, with their progress",
    operation_id="list_jobs",
)
def list_jobs(
    request: Request,
    presented: Presented,
    state: Annotated[
        list[str] | None,
        Query(description=f"Only actions in these states (repeat): {', '.join(STATES)}."),
    ] = None,
    subject: Annotated[
        str | None, Query(max_length=64, description="Only actions on this subject (pkg_…).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_JOBS, description="At most this many.")] = 100,
) -> list[ActionView]:
    with signed_in(request, presented) as caller:
        _only(request, {"state", "subject", "limit"}, repeatable=frozenset({"state"}))
        return service.list_actions(
            database(request),
            actor=caller.user_id,
            states=tuple(state or ()),
            subject=subject,
            limit=limit,
        )


@router.get(
    "/api/v1/jobs/{action_id}",
    response_model=ActionView,
    responses=documented(401, 404, 422, 503),
    summary="One action: state, attempts, lease, last error, outcome and progress",
    operation_id="get_job",
)
def get_job(
    request: Request,
    presented: Presented,
    action_id: Annotated[str, Path(max_length=64, description="The action's id (act_…).")],
) -> ActionView:
    with signed_in(request, presented) as caller:
        _only(request, set())
        return service.get(database(request), actor=caller.user_id, action_id=action_id)


ActionId = Annotated[str, Path(max_length=64, description="The action's id (act_…).")]


@router.post(
    "/api/v1/jobs/{action_id}:retry",
    response_model=ActionView,
    responses=documented(401, 403, 404, 409, 413, 415, 422, 503),
    summary="Queue a failed or cancelled action again (a job continues what it had done)",
    operation_id="retry_job",
)
def retry_job(request: Request, presented: Presented, action_id: ActionId) -> ActionView:
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        return service.retry(database(request), actor=caller.user_id, action_id=action_id)


@router.post(
    "/api/v1/jobs/{action_id}:cancel",
    response_model=ActionView,
    responses=documented(401, 403, 404, 409, 413, 415, 422, 503),
    summary="Cancel a pending action; a running job is asked to stop",
    operation_id="cancel_job",
)
def cancel_job(request: Request, presented: Presented, action_id: ActionId) -> ActionView:
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        return service.cancel(database(request), actor=caller.user_id, action_id=action_id)
