"""A small, real OpenID Connect provider on loopback for the tests (authorization code flow
with PKCE), answering as OpenID Connect Core 1.0 and Discovery 1.0 specify — what LS Login,
ELIXIR AAI or Keycloak answer. Nobody can run those here; this stands in for them.

The test chooses who "signs in" at the provider (``provider.user``); everything else — the
discovery document, the redirect with ``code`` and ``state``, the token request checked for
the client's secret, the redirect URI and the PKCE verifier, the RS256 ID token with ``nonce``,
the JWKS — is done for real over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.pg import free_port


@dataclass
class Provider:
    issuer: str
    client_id: str = "steward"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    redirect_uris: list[str] = field(default_factory=list)
    user: dict[str, Any] | None = None
    """The claims of who signs in next (``sub``, ``preferred_username``, ``email``…)."""
    tamper: str | None = None
    """For refusal tests: ``nonce`` (a wrong nonce), ``audience``, ``expired``, ``signature``."""
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: int = 0


def _problem(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _app(p: Provider) -> Starlette:
    def discovery(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": p.issuer,
                "authorization_endpoint": f"{p.issuer}/authorize",
                "token_endpoint": f"{p.issuer}/token",
                "jwks_uri": f"{p.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": ["openid", "profile", "email"],
            }
        )

    def jwks(request: Request) -> JSONResponse:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(p.key.public_key()))
        return JSONResponse({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})

    def authorize(request: Request) -> Response:
        q = request.query_params
        redirect = q.get("redirect_uri", "")
        if q.get("client_id") != p.client_id or redirect not in p.redirect_uris:
            return _problem("invalid_request", "unknown client or redirect_uri")
        state = q.get("state")

        def back(**params: str) -> RedirectResponse:
            if state is not None:
                params["state"] = state
            return RedirectResponse(f"{redirect}?{urlencode(params)}", status_code=302)

        if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
            return back(error="invalid_request", error_description="code flow, openid scope")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        if p.user is None:
            return back(error="access_denied", error_description="the user said no")
        code = secrets.token_urlsafe(24)
        p.codes[code] = {
            "challenge": q["code_challenge"],
            "redirect_uri": redirect,
            "nonce": q.get("nonce"),
            "claims": dict(p.user),
            "at": time.time(),
        }
        return back(code=code)

    async def token(request: Request) -> Response:
        p.token_requests += 1
        from urllib.parse import parse_qsl

        form = dict(parse_qsl((await request.body()).decode()))  # x-www-form-urlencoded
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            from urllib.parse import unquote

            raw = base64.b64decode(auth[6:]).decode()
            client_id, _, secret = raw.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        if client_id != p.client_id or secret != p.client_secret:
            return _problem("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return _problem("unsupported_grant_type", "authorization_code only")
        grant = p.codes.pop(str(form.get("code", "")), None)  # a code works once
        if grant is None or time.time() - grant["at"] > 60:
            return _problem("invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return _problem("invalid_grant", "redirect_uri differs")
        verifier = str(form.get("code_verifier", ""))
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant["challenge"]:
            return _problem("invalid_grant", "PKCE verification failed")
        now = int(time.time())
        claims = {
            "iss": p.issuer,
            "aud": "someone-else" if p.tamper == "audience" else p.client_id,
            "iat": now,
            "exp": now - 600 if p.tamper == "expired" else now + 300,  # past any clock leeway
            "nonce": "not-yours" if p.tamper == "nonce" else grant["nonce"],
            **grant["claims"],
        }
        signer = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if p.tamper == "signature"
            else p.key
        )
        id_token = jwt.encode(claims, signer, algorithm="RS256", headers={"kid": "k1"})
        return JSONResponse(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            },
            headers={"Cache-Control": "no-store"},
        )

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize),
            Route("/token", token, methods=["POST"]),
        ]
    )


@contextmanager
def running() -> Iterator[Provider]:
    port = free_port()
    provider = Provider(issuer=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(
        uvicorn.Config(_app(provider), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="oidc-provider", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the OIDC provider did not start")
        time.sleep(0.02)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=30)
