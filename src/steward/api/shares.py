"""Shares over the API, beyond the registry's generated list, detail, timeline and commands:

- ``POST /api/v1/shares``: push a built package somewhere, queued for the worker — what
  ``steward share push --no-wait`` does. The destination must lie in the server's
  ``api_push_roots``: a caller never makes the server write where it pleases;
- ``POST /api/v1/shares/presign``: presigned links to a pushed package and the download
  script that holds them, answered once and never stored by the API (``Cache-Control:
  no-store``; the server keeps the script in its own ``STEWARD_HOME/shares``, 0700, as
  ``steward share presign`` does);
- ``GET /api/v1/shares/{id}/objects``: the share's registry, what ``steward share show
  --objects`` lists.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import Presented, database, require_write, settings_of, signed_in
from steward.api.idempotency import claimed
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.errors import Detail, ValidationFailed
from steward.services import shares
from steward.services.shares import ShareObjectView, ShareView
from steward.timeutil import parse_duration

router = APIRouter(tags=["shares"])
BASE = "/api/v1/shares"
MAX_OBJECTS_PAGE = 5000


class NewPush(BaseModel):
    """What ``steward share push`` takes."""

    model_config = ConfigDict(extra="forbid")

    package: str = Field(max_length=200, description="The built package (pkg_…).")
    destination: str = Field(
        max_length=4096,
        description="s3://bucket/prefix/ or a folder on the server (file:///dir or an absolute "
        "path), inside STEWARD_API_PUSH_ROOTS. The package lands in a sub-folder named after "
        "it.",
    )
    concurrency: int | None = Field(None, ge=1, le=64, description="Objects sent at once.")


class PushQueued(BaseModel):
    share: ShareView
    action_id: str | None = Field(
        description="The queued push (GET /api/v1/jobs/{action_id}); null when nothing was "
        "queued: the share already succeeded, or it is being sent right now."
    )


class NewPresign(BaseModel):
    """What ``steward share presign`` takes (the script is answered, not written for you)."""

    model_config = ConfigDict(extra="forbid")

    package: str = Field(max_length=200, description="The pushed package (pkg_…).")
    expires: str = Field(
        "7d", max_length=20, description="How long the links work: e.g. 12h, 3d, 7d (at most)."
    )
    from_share: str | None = Field(
        None, max_length=200, description="Use this push's objects (default: the latest to S3)."
    )


class Link(BaseModel):
    path: str = Field(description="The object's path in the package.")
    url: str = Field(description="Its presigned HTTPS link: works like a password.")
    size: int
    sha256: str


class Presigned(BaseModel):
    share: ShareView
    links: list[Link]
    links_expire_at: datetime
    script_name: str = Field(description="The file name the script is meant to have.")
    script: str = Field(
        description="The POSIX sh download script (run: sh SCRIPT --dest DIR); keep it 0700."
    )


class ShareObjectPage(BaseModel):
    items: list[ShareObjectView]
    total: int = Field(description="Objects in the registry in all.")
    bytes: int = Field(description="Their bytes in all.")
    next: str | None = Field(None, description="The next page's URL; null on the last.")


@router.post(
    BASE,
    response_model=PushQueued,
    status_code=202,
    responses={
        200: {"model": PushQueued, "description": "Nothing queued: sent, or being sent."},
        **documented(401, 403, 404, 409, 413, 415, 422, 502, 503),
    },
    summary="Push a built package to a destination (queued for the worker)",
    operation_id="push_package",
)
def push_package(
    request: Request,
    response: Response,
    presented: Presented,
    body: Annotated[NewPush, Body()],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=150)] = None,
) -> PushQueued:
    """The destination is checked first (inside ``api_push_roots``, not in STEWARD_HOME or
    the package's sources, the bucket there and writable); pushing the same package to the
    same place again continues the same share. 202 with the queued action, or 200 when
    nothing was queued."""
    db = database(request)
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        claimed(db, caller.user_id, idempotency_key, ["push", body.model_dump()])
        share, action_id = shares.request_push(
            db, settings_of(request), actor=caller.user_id, package_id=body.package,
            destination=body.destination, concurrency=body.concurrency, confined=True,
        )  # fmt: skip
    response.status_code = 202 if action_id else 200
    response.headers["Location"] = f"{BASE}/{share.id}"
    return PushQueued(share=share, action_id=action_id)


@router.post(
    BASE + "/presign",
    response_model=Presigned,
    status_code=201,
    responses=documented(401, 403, 404, 409, 413, 415, 422, 502, 503),
    summary="Presigned links to a pushed package, and the download script holding them",
    operation_id="presign_package",
)
def presign_package(
    request: Request, response: Response, presented: Presented, body: Annotated[NewPresign, Body()]
) -> Presigned:
    """A new presign share each call, with new links (so no Idempotency-Key): the answer is
    the only copy the caller gets, sent with ``Cache-Control: no-store``."""
    try:
        lifetime = parse_duration(body.expires)
    except ValueError:
        raise ValidationFailed(
            f"expires {body.expires!r} is not a duration",
            [Detail("not a duration", field="expires", value=body.expires,
                    accepted="e.g. 12h, 7d, 2w")],
        ) from None  # fmt: skip
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        require_write(caller)
        made = shares.presign_links(
            database(request), settings_of(request), actor=caller.user_id,
            package_id=body.package, expires=lifetime, from_share=body.from_share,
        )  # fmt: skip
    assert made.share.links_expire_at is not None
    assert made.share.script_path is not None
    response.headers["Location"] = f"{BASE}/{made.share.id}"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return Presigned(
        share=made.share,
        links=[Link(path=e.path, url=e.url, size=e.size, sha256=e.sha256) for e in made.links],
        links_expire_at=made.share.links_expire_at,
        script_name=made.share.script_path.rsplit("/", 1)[-1],
        script=made.script,
    )


@router.get(
    BASE + "/{share_id}/objects",
    response_model=ShareObjectPage,
    responses=documented(401, 404, 422, 503),
    summary="A share's registry: every object verified at the destination (paged, by key)",
    operation_id="share_objects",
)
def share_objects(
    request: Request,
    presented: Presented,
    share_id: Annotated[str, Path(max_length=200, description="The share's id (shr_…).")],
    after: Annotated[
        str | None, Query(max_length=4096, description="The last key of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_OBJECTS_PAGE)] = 1000,
) -> ShareObjectPage:
    with signed_in(request, presented) as caller:
        _only(request, {"after", "limit"})
        items, total, size = shares.object_page(
            database(request), actor=caller.user_id, share_id=share_id, after=after,
            limit=limit,
        )  # fmt: skip
    nxt = None
    if len(items) == limit and items:
        nxt = str(request.url.include_query_params(after=items[-1].key))
    return ShareObjectPage(items=items, total=total, bytes=size, next=nxt)
