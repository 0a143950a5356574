"""``GET /api/v1/audit``: the audit log, newest first, filtered, a page at a time.

Administrators (with an ``admin`` token) read every entry; a project's stewards read the
entries of their projects; anyone else is refused (403), and the refusal is itself an entry.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from steward.api.auth import Presented, database, signed_in
from steward.api.problems import documented
from steward.api.subjects import IsoTime, _only
from steward.services import audit
from steward.services.audit import AuditView

router = APIRouter(tags=["audit log"])


class AuditPage(BaseModel):
    items: list[AuditView]
    next: str | None = Field(None, description="The next page's URL; null on the last.")


FILTERS = frozenset(
    [
        "who",
        "action",
        "outcome",
        "subject_kind",
        "subject_id",
        "project",
        "since",
        "until",
        "after",
        "limit",
    ]
)


@router.get(
    "/api/v1/audit",
    response_model=AuditPage,
    responses=documented(401, 403, 404, 422, 503),
    summary="The audit log, newest first",
    operation_id="list_audit_entries",
)
def list_audit_entries(
    request: Request,
    presented: Presented,
    who: Annotated[str | None, Query(max_length=64, description="Who acted (or tried).")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="e.g. token-create, site-show.")
    ] = None,
    outcome: Annotated[Literal["done", "denied"] | None, Query()] = None,
    subject_kind: Annotated[str | None, Query(max_length=32, description="e.g. site.")] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    project: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[
        IsoTime | None, Query(description="On or after this time (ISO 8601 with a zone).")
    ] = None,
    until: Annotated[
        IsoTime | None, Query(description="Before this time (ISO 8601 with a zone).")
    ] = None,
    after: Annotated[
        str | None, Query(max_length=40, description="The cursor of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 50,
) -> AuditPage:
    """Filters combine; `since` is inclusive, `until` exclusive. Follow `next` for more."""
    with signed_in(request, presented) as caller:
        _only(request, set(FILTERS))
        page = audit.query(
            database(request),
            actor=caller.user_id,
            who=who,
            action=action,
            outcome=outcome,
            subject_kind=subject_kind,
            subject_id=subject_id,
            project=project,
            since=since,
            until=until,
            limit=limit,
            after=after,
        )
    nxt = str(request.url.include_query_params(after=page.next)) if page.next else None
    return AuditPage(items=page.items, next=nxt)
