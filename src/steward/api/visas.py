"""GA4GH Passport visas of approved access, and the keys to verify them with."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from steward.api.auth import Presented, database, public_url, settings_of, signed_in
from steward.api.problems import documented
from steward.services import visas

router = APIRouter(tags=["GA4GH Passport visas"])


@router.get("/.well-known/jwks.json")
def jwks(request: Request) -> dict[str, Any]:
    """The public keys visas are signed with (RFC 7517), for clearinghouses."""
    return visas.jwks(settings_of(request))


@router.get(
    "/api/v1/users/{user_id}/visas", response_model=visas.Visas, responses=documented(401, 404, 422)
)
def user_visas(
    request: Request,
    response: Response,
    presented: Presented,
    user_id: Annotated[str, Path(max_length=64)],
) -> visas.Visas:
    """One `ControlledAccessGrants` visa per dataset of each approved, unexpired request of
    the user (signed RS256; verify with `/.well-known/jwks.json`). Only the user and
    administrators may ask; to anyone else the user does not exist."""
    response.headers["Pragma"] = "no-cache"
    with signed_in(request, presented) as caller:
        return visas.visas_for(
            database(request),
            settings_of(request),
            actor=caller.user_id,
            user_id=user_id,
            issuer=public_url(request),
        )
