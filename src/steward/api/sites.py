"""``/api/v1/sites``: the sites that run analyses and their analysts.

Everyone with a token may list the sites they may see and look at one (the same "not found"
for a site they may not see as for an unknown id); adding sites and members takes an
administrator's token with the ``admin`` scope.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from steward.api.auth import Presented, database, require_write, signed_in
from steward.api.problems import documented
from steward.api.subjects import _only
from steward.errors import Detail, Forbidden
from steward.services import sites
from steward.services.sites import MembershipChange, SiteDetail, SiteView
from steward.services.tokens import Caller

router = APIRouter(tags=["sites"])
BASE = "/api/v1/sites"

SiteId = Annotated[str, Path(max_length=64, description="The site's id.")]
UserId = Annotated[str, Path(max_length=64, description="The user's id.")]


class SiteList(BaseModel):
    items: list[SiteView]


class NewSite(BaseModel):
    """A site, as `steward site add` takes it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=64, description="Lower-case letters, digits, '.', '_', '-'.")
    name: str = Field(max_length=sites.LONGEST_NAME)
    description: str = Field("", max_length=sites.LONGEST_DESCRIPTION)


def _administering(request: Request, caller: Caller, action: str, site_id: str) -> None:
    """Administering sites takes an ``admin`` token: an administrator's narrower one is
    refused (and the refusal audited) with words that say so, rather than "not an
    administrator"; anyone else hears the service's refusal, as on the CLI."""
    require_write(caller)
    if caller.scope == "admin" or not caller.is_admin:
        return
    refusal = Forbidden(
        f"administering sites takes a token with scope admin (this one's is {caller.scope}); "
        "administrators make one with `steward token create --scope admin`",
        [Detail("needs an admin token", field="scope", value=caller.scope, accepted="admin")],
    )
    with sites.refusals(database(request), caller.user_id, action, site_id):
        raise refusal


@router.get(
    BASE,
    response_model=SiteList,
    responses=documented(401, 422, 503),
    summary="The sites you may see",
    operation_id="list_sites",
)
def list_sites(request: Request, presented: Presented) -> SiteList:
    """Every site for administrators and stewards; an analyst's own sites; none for others."""
    with signed_in(request, presented) as caller:
        _only(request, set())
        return SiteList(items=sites.list_sites(database(request), actor=caller.user_id))


@router.post(
    BASE,
    response_model=SiteView,
    status_code=201,
    responses=documented(401, 403, 409, 413, 415, 422, 503),
    summary="Add a site (administrators, with an admin token)",
    operation_id="add_site",
)
def add_site(
    request: Request, response: Response, presented: Presented, body: Annotated[NewSite, Body()]
) -> SiteView:
    """Adding the same site again with the same name and description changes nothing; with
    others it is refused (409)."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        _administering(request, caller, "site-add", body.id)
        view = sites.add_site(
            database(request),
            actor=caller.user_id,
            site_id=body.id,
            name=body.name,
            description=body.description,
        )
    response.headers["Location"] = f"{BASE}/{view.id}"
    return view


@router.get(
    BASE + "/{site_id}",
    response_model=SiteDetail,
    responses=documented(401, 404, 422, 503),
    summary="A site and its members",
    operation_id="get_site",
)
def get_site(request: Request, presented: Presented, site_id: SiteId) -> SiteDetail:
    """To whoever may not see it, the site does not exist (the same 404 as an unknown id)."""
    with signed_in(request, presented) as caller:
        _only(request, set())
        return sites.show_site(database(request), actor=caller.user_id, site_id=site_id)


@router.put(
    BASE + "/{site_id}/members/{user_id}",
    response_model=MembershipChange,
    responses=documented(401, 403, 404, 413, 415, 422, 503),
    summary="Make a user an analyst of a site (administrators, with an admin token)",
    operation_id="add_site_member",
)
def add_member(
    request: Request, presented: Presented, site_id: SiteId, user_id: UserId
) -> MembershipChange:
    """Already a member: nothing changes (`changed` is false)."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        _administering(request, caller, "site-member-add", site_id)
        return sites.add_member(
            database(request), actor=caller.user_id, site_id=site_id, user_id=user_id
        )


@router.delete(
    BASE + "/{site_id}/members/{user_id}",
    response_model=MembershipChange,
    responses=documented(401, 403, 404, 422, 503),
    summary="Take a user off a site (administrators, with an admin token)",
    operation_id="remove_site_member",
)
def remove_member(
    request: Request, presented: Presented, site_id: SiteId, user_id: UserId
) -> MembershipChange:
    """Not a member: nothing changes (`changed` is false)."""
    with signed_in(request, presented, hold=False) as caller:
        _only(request, set())
        _administering(request, caller, "site-member-remove", site_id)
        return sites.remove_member(
            database(request), actor=caller.user_id, site_id=site_id, user_id=user_id
        )
