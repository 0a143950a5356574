"""Signing in with an OpenID Connect provider (LS Login, ELIXIR AAI, Keycloak…): the
authorization code flow with PKCE (RFC 7636), the ID token checked as OIDC Core 1.0 §3.1.3.7
asks — signature from the provider's JWKS, issuer, audience, expiry, nonce — and one claim
naming an existing Steward user.

Authlib builds the authorization URL and makes the token request (client secret, PKCE
verifier); PyJWT, already used for visas, checks the ID token. Steward never creates users
from a sign-in: the claim must name someone an administrator added (`steward user add`), so an
account at a large AAI does not by itself open a door here.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from steward.config import Settings
from steward.db.models import AuditEntry, User
from steward.db.session import Database
from steward.errors import Detail, ExternalError, NotFound, Unauthenticated
from steward.timeutil import utcnow

SCOPE = "openid profile email"
DISCOVERY_TTL = 3600.0
TIMEOUT = 10.0


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True)
class Flow:
    """What a browser's sign-in must bring back: kept in a cookie of its own for 10 min."""

    state: str
    nonce: str
    verifier: str
    next: str


_cache: dict[str, tuple[float, Provider, jwt.PyJWKClient]] = {}
_lock = threading.Lock()


def configured(settings: Settings) -> tuple[str, str, str]:
    """Issuer, client id and secret — or a clear refusal naming what is missing."""
    issuer, client_id = settings.oidc_issuer, settings.oidc_client_id
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    if not (issuer and client_id and secret):
        missing = [n for n, v in (("oidc_issuer", issuer), ("oidc_client_id", client_id),
                                  ("oidc_client_secret", secret)) if not v]  # fmt: skip
        # As for a path that does not exist: nothing here for the caller to fix.
        raise NotFound(
            "sign-in with OpenID Connect is not set up on this server",
            [Detail("not set", field=f"STEWARD_{m.upper()}") for m in missing],
        )
    return issuer.rstrip("/"), client_id, secret


def _provider_error(what: str, exc: Exception | None = None) -> ExternalError:
    cause = f": {type(exc).__name__}" if exc is not None else ""
    return ExternalError(
        f"the sign-in provider {what}{cause}", [Detail("provider", field="oidc_issuer")]
    )


def provider(settings: Settings) -> tuple[Provider, jwt.PyJWKClient]:
    """The provider's endpoints from its discovery document (cached for an hour)."""
    issuer, _, _ = configured(settings)
    with _lock:
        cached = _cache.get(issuer)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL:
            return cached[1], cached[2]
    try:
        answer = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
        answer.raise_for_status()
        doc = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise _provider_error("did not give its configuration", exc) from None
    if not isinstance(doc, dict) or str(doc.get("issuer", "")).rstrip("/") != issuer:
        # OIDC Discovery §4.3: the document must name the issuer it was fetched for.
        raise _provider_error("names another issuer in its configuration")
    try:
        found = Provider(
            issuer=str(doc["issuer"]),
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            jwks_uri=str(doc["jwks_uri"]),
        )
    except KeyError as exc:
        raise _provider_error(f"configuration lacks {exc.args[0]}") from None
    keys = jwt.PyJWKClient(found.jwks_uri, cache_keys=True, timeout=int(TIMEOUT))
    with _lock:
        _cache[issuer] = (time.monotonic(), found, keys)
    return found, keys


def _client(settings: Settings, redirect_uri: str) -> OAuth2Client:
    _, client_id, secret = configured(settings)
    return OAuth2Client(
        client_id,
        secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=TIMEOUT,
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (never another site)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def start(settings: Settings, *, redirect_uri: str, next_path: str | None) -> tuple[str, Flow]:
    """The provider's authorization URL to send the browser to, and the flow to keep."""
    found, _ = provider(settings)
    flow = Flow(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(48),  # 64 characters: RFC 7636 asks 43–128
        next=safe_next(next_path),
    )
    with _client(settings, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            found.authorization_endpoint,
            state=flow.state,
            nonce=flow.nonce,
            code_verifier=flow.verifier,
        )
    return str(url), flow


def _audit(db: Database, actor: str, outcome: str, reason: str) -> None:
    with db.transaction() as s:
        s.add(
            AuditEntry(at=utcnow(), actor=actor, subject_kind="user", subject_id=actor or None,
                       action="oidc-sign-in", outcome=outcome, reason=reason)
        )  # fmt: skip


def _refused(db: Database, reason: str, shown: str, who: str = "") -> Unauthenticated:
    """What the browser is told (``shown``); the audit log keeps why (``reason``)."""
    _audit(db, who, "denied", reason)
    return Unauthenticated(shown, [Detail("sign-in refused", field="oidc")])


_NOT_VALID = "the provider's ID token is not valid"


def finish(
    db: Database,
    settings: Settings,
    *,
    flow: Flow | None,
    params: dict[str, str],
    redirect_uri: str,
) -> str:
    """The Steward user the provider's answer (the callback's query) signs in."""
    if params.get("error"):
        text = params.get("error_description") or params["error"]
        shown = f"the sign-in was not completed: {text[:200]}"
        raise _refused(db, f"provider: {text[:200]}", shown)
    if flow is None or not secrets.compare_digest(params.get("state", ""), flow.state):
        raise _refused(
            db, "state missing or different",
            "the sign-in expired or was not started in this browser: start again",
        )  # fmt: skip
    code = params.get("code")
    if not code:
        raise _refused(db, "no code", "the provider sent no authorization code")
    found, keys = provider(settings)
    try:
        with _client(settings, redirect_uri) as client:
            token: dict[str, Any] = client.fetch_token(
                found.token_endpoint, code=code, code_verifier=flow.verifier
            )
    except OAuthError as exc:
        shown = "the provider refused the sign-in"
        raise _refused(db, f"token request: {exc.error}", shown) from None
    except httpx.HTTPError as exc:
        raise _provider_error("did not answer the token request", exc) from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise _refused(db, "no id_token", "the provider sent no ID token")
    _, client_id, _ = configured(settings)
    try:
        key = keys.get_signing_key_from_jwt(id_token)
        claims = jwt.decode(
            id_token,
            key.key,
            algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"],
            audience=client_id,
            issuer=found.issuer,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            leeway=60,
        )
    except jwt.PyJWKClientError as exc:
        raise _provider_error("keys could not be read", exc) from None
    except jwt.InvalidTokenError as exc:
        raise _refused(db, f"id_token: {type(exc).__name__}", _NOT_VALID) from None
    if not secrets.compare_digest(str(claims.get("nonce", "")), flow.nonce):
        raise _refused(db, "id_token nonce differs", _NOT_VALID)
    name = claims.get(settings.oidc_user_claim)
    if not isinstance(name, str) or not name:
        claim = settings.oidc_user_claim
        raise _refused(db, f"no {claim} claim", f"the provider did not say who you are ({claim})")
    with db.read() as s:
        user = s.get(User, name)
        disabled = user is not None and user.disabled_at is not None
    if user is None or disabled:
        raise _refused(
            db, "not a Steward user" if user is None else "disabled",
            f"{name} may not sign in to this Steward; ask an administrator", who=name,
        )  # fmt: skip
    _audit(db, name, "done", f"signed in through {found.issuer}")
    return name
