"""GA4GH DRS 1.5 under ``/ga4gh/drs/v1``: built packages (bundles) and their files (blobs).

Bearer tokens as for the rest of the API (``Authorizations`` says so); errors are problem
documents that also carry DRS's own ``msg`` and ``status_code``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Path, Query, Request
from pydantic import BaseModel, Field

from steward import __version__
from steward.api.auth import Presented, database, public_url, settings_of, signed_in
from steward.api.problems import documented
from steward.errors import Detail, NotFound, ValidationFailed
from steward.services import drs

PREFIX = "/ga4gh/drs/v1"
router = APIRouter(prefix=PREFIX, tags=["GA4GH DRS 1.5"])
ObjectId = Annotated[str, Path(max_length=200)]


class ServiceType(BaseModel):
    group: str
    artifact: str
    version: str


class Organization(BaseModel):
    name: str
    url: str


class DrsInfo(BaseModel):
    maxBulkRequestLength: int


class ServiceInfo(BaseModel):
    id: str
    name: str
    type: ServiceType
    description: str
    organization: Organization
    version: str
    maxBulkRequestLength: int
    drs: DrsInfo


class Authorizations(BaseModel):
    drs_object_id: str | None = None
    supported_types: list[str]


class ObjectRequest(BaseModel):
    expand: bool = False
    passports: list[str] | None = None


class AccessRequest(BaseModel):
    passports: list[str] | None = None


class BulkRequest(BaseModel):
    bulk_object_ids: list[str] = Field(min_length=1)
    passports: list[str] | None = None


class Summary(BaseModel):
    requested: int
    resolved: int
    unresolved: int


class Unresolved(BaseModel):
    error_code: int
    object_ids: list[str]


class BulkObjects(BaseModel):
    summary: Summary
    unresolved_drs_objects: list[Unresolved]
    resolved_drs_object: list[drs.DrsObject]


def _host(request: Request) -> str:
    """The host of ``drs://`` URIs: this server's configured address, not the caller's Host.

    A hostname-based DRS URI is always https on port 443 and carries no port (DRS 1.5,
    DrsApiPrinciples "Hostname-based DRS URIs"), so an explicit ``:443`` is dropped. Another
    port is kept: no port-less URI could reach such a server (a test's, say)."""
    parts = urlsplit(public_url(request))
    return parts.netloc.removesuffix(":443") if parts.scheme == "https" else parts.netloc


def _no_passports(passports: list[str] | None) -> None:
    if passports:
        raise ValidationFailed(
            "this server does not read passports here: send a bearer token",
            [Detail("not supported", field="passports", accepted="Authorization: Bearer …")],
        )


@router.get("/service-info", response_model=ServiceInfo)
def service_info(request: Request) -> ServiceInfo:
    """What this DRS is (public, as GA4GH service-info asks)."""
    host = request.url.hostname or "localhost"
    return ServiceInfo(
        id=".".join(reversed(host.split("."))) + ".steward.drs",
        name="Steward DRS",
        type=ServiceType(group="org.ga4gh", artifact="drs", version=drs.SPEC_VERSION),
        description="Built data packages (bundles) and their files (blobs) of this Steward.",
        organization=Organization(name="Steward", url=str(request.base_url)),
        version=__version__,
        maxBulkRequestLength=drs.MAX_BULK,
        drs=DrsInfo(maxBulkRequestLength=drs.MAX_BULK),
    )


@router.options("/objects/{object_id}", response_model=Authorizations, responses=documented(422))
def object_authorizations(object_id: ObjectId) -> Authorizations:
    """How to authorise (anonymous, and the same for every id: it tells nothing of them)."""
    return Authorizations(drs_object_id=object_id, supported_types=["BearerAuth"])


@router.get(
    "/objects/{object_id}",
    response_model=drs.DrsObject,
    response_model_exclude_none=True,
    responses=documented(401, 404, 422),
)
def get_object(
    request: Request,
    presented: Presented,
    object_id: ObjectId,
    expand: Annotated[bool, Query()] = False,
) -> drs.DrsObject:
    """A blob (a package's file) or a bundle (the package)."""
    with signed_in(request, presented) as caller:
        return drs.get_object(
            database(request),
            settings_of(request),
            actor=caller.user_id,
            object_id=object_id,
            host=_host(request),
            expand=expand,
        )


@router.post(
    "/objects/{object_id}",
    response_model=drs.DrsObject,
    response_model_exclude_none=True,
    responses=documented(401, 404, 422),
)
def post_object(
    request: Request,
    presented: Presented,
    object_id: ObjectId,
    body: Annotated[ObjectRequest, Body()],
) -> drs.DrsObject:
    _no_passports(body.passports)
    return get_object(request, presented, object_id, expand=body.expand)


@router.post(
    "/objects",
    response_model=BulkObjects,
    response_model_exclude_none=True,
    responses=documented(401, 413, 422),
)
def bulk_objects(
    request: Request, presented: Presented, body: Annotated[BulkRequest, Body()]
) -> BulkObjects:
    """Several objects at once; those you may not see, or that do not exist, are listed as
    unresolved (404) together."""
    _no_passports(body.passports)
    if len(body.bulk_object_ids) > drs.MAX_BULK:
        from steward.api.problems import TooLarge

        raise TooLarge(
            f"at most {drs.MAX_BULK} objects per request",
            [
                Detail(
                    "too many",
                    field="bulk_object_ids",
                    value=str(len(body.bulk_object_ids)),
                    accepted=f"<= {drs.MAX_BULK}",
                )
            ],
        )
    found, missing = [], []
    with signed_in(request, presented) as caller:
        for object_id in dict.fromkeys(body.bulk_object_ids):
            try:
                found.append(
                    drs.get_object(
                        database(request),
                        settings_of(request),
                        actor=caller.user_id,
                        object_id=object_id,
                        host=_host(request),
                    )
                )
            except NotFound:
                missing.append(object_id)
    return BulkObjects(
        summary=Summary(
            requested=len(body.bulk_object_ids), resolved=len(found), unresolved=len(missing)
        ),
        unresolved_drs_objects=[Unresolved(error_code=404, object_ids=missing)] if missing else [],
        resolved_drs_object=found,
    )


@router.get(
    "/objects/{object_id}/access/{access_id}",
    response_model=drs.AccessURL,
    response_model_exclude_none=True,
    responses=documented(401, 404, 422),
)
def get_access_url(
    request: Request, presented: Presented, object_id: ObjectId, access_id: ObjectId
) -> drs.AccessURL:
    """A presigned link to the blob's bytes, minted now, valid for 15 minutes."""
    with signed_in(request, presented) as caller:
        return drs.access_url(
            database(request),
            settings_of(request),
            actor=caller.user_id,
            object_id=object_id,
            access_id=access_id,
        )


@router.post(
    "/objects/{object_id}/access/{access_id}",
    response_model=drs.AccessURL,
    response_model_exclude_none=True,
    responses=documented(401, 404, 422),
)
def post_access_url(
    request: Request,
    presented: Presented,
    object_id: ObjectId,
    access_id: ObjectId,
    body: Annotated[AccessRequest, Body()],
) -> drs.AccessURL:
    _no_passports(body.passports)
    return get_access_url(request, presented, object_id, access_id)
