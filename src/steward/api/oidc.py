"""Browser sign-in through the consortium's OpenID Connect provider.

``GET /api/v1/auth/oidc/login?next=/…`` sends the browser to the provider (authorization code
flow with PKCE); the provider sends it back to ``/api/v1/auth/oidc/callback``, which checks
the answer, starts a browser session (the same cookie a password sign-in gives) and returns the
browser to ``next``. What must come back — state, nonce, PKCE verifier — waits in a short-lived
HttpOnly cookie of its own, so only the browser that started a sign-in can finish it.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from steward.api.accounts import ANONYMOUS, keep_session, secure
from steward.api.auth import database, public_url, settings_of
from steward.api.problems import documented
from steward.services import oidc, sessions

router = APIRouter(tags=["sign-in"])
FLOW_COOKIE = "steward_oidc"
FLOW_PATH = "/api/v1/auth/oidc"
FLOW_SECONDS = 600


def _redirect_uri(request: Request) -> str:
    """The callback as registered at the provider, at this server's public address."""
    return f"{public_url(request).rstrip('/')}{FLOW_PATH}/callback"


def _encode(flow: oidc.Flow) -> str:
    data = {"s": flow.state, "n": flow.nonce, "v": flow.verifier, "x": flow.next}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _decode(raw: str | None) -> oidc.Flow | None:
    if not raw or len(raw) > 1000:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        return oidc.Flow(state=str(data["s"]), nonce=str(data["n"]), verifier=str(data["v"]),
                         next=oidc.safe_next(str(data["x"])))  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return None


@router.get(
    FLOW_PATH + "/login",
    status_code=302,
    response_class=RedirectResponse,
    responses=documented(404, 422, 502),
    summary="Sign in with the consortium's OpenID Connect provider",
    operation_id="oidc_login",
    openapi_extra=ANONYMOUS,
)
def oidc_login(
    request: Request,
    next: Annotated[str | None, Query(max_length=2000, description="Path to return to.")] = None,
) -> RedirectResponse:
    url, flow = oidc.start(
        settings_of(request), redirect_uri=_redirect_uri(request), next_path=next
    )
    answer = RedirectResponse(url, status_code=302)
    answer.set_cookie(
        FLOW_COOKIE, _encode(flow), max_age=FLOW_SECONDS, path=FLOW_PATH,
        secure=secure(request), httponly=True, samesite="lax",
    )  # fmt: skip
    return answer


@router.get(
    FLOW_PATH + "/callback",
    status_code=303,
    response_class=RedirectResponse,
    responses=documented(401, 404, 422, 502),
    summary="Where the provider returns the browser (not called by people)",
    operation_id="oidc_callback",
    openapi_extra=ANONYMOUS,
)
def oidc_callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=500)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=500)] = None,
) -> RedirectResponse:
    params = {k: v for k, v in (("code", code), ("state", state), ("error", error),
                                ("error_description", error_description)) if v}  # fmt: skip
    settings = settings_of(request)
    db = database(request)
    flow = _decode(request.cookies.get(FLOW_COOKIE))
    user = oidc.finish(db, settings, flow=flow, params=params, redirect_uri=_redirect_uri(request))
    lifetime = settings.session_duration
    new = sessions.start(db, user_id=user, lifetime=lifetime)
    answer = RedirectResponse(flow.next if flow is not None else "/", status_code=303)
    keep_session(request, answer, new.cookie, lifetime)
    answer.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return answer
