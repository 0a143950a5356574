"""Signing in with an OpenID Connect provider: the authorization code flow with PKCE against a
real provider on loopback (tests/oidc_provider.py), through the real server, in a browser-like
client that keeps cookies and follows nothing by itself."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from steward.config import Settings
from steward.db.models import AuditEntry
from steward.services import oidc
from tests.api_server import serving
from tests.conftest import Consortium
from tests.oidc_provider import Provider, running


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running() as p:
        oidc._cache.clear()
        yield p


@pytest.fixture
def server(settings: Settings, consortium: Consortium, provider: Provider) -> Iterator[str]:
    configured = settings.model_copy(
        update={
            "oidc_issuer": provider.issuer,
            "oidc_client_id": provider.client_id,
            "oidc_client_secret": SecretStr(provider.client_secret),
        }
    )
    with serving(configured) as url:
        provider.redirect_uris.append(f"{url}/api/v1/auth/oidc/callback")
        yield url


def _sign_in(
    server: str, browser: httpx.Client, next_path: str = "/api/v1/session"
) -> httpx.Response:
    """The browser's round: Steward → provider → Steward's callback; the callback's answer."""
    start = browser.get(f"{server}/api/v1/auth/oidc/login", params={"next": next_path})
    assert start.status_code == 302, start.text
    at_provider = browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    return browser.get(at_provider.headers["location"])


def test_a_member_signs_in_and_gets_a_session(
    server: str, provider: Provider, consortium: Consortium
) -> None:
    provider.user = {"sub": "aai-123", "preferred_username": consortium.requester}
    with httpx.Client(timeout=60) as browser:
        start = browser.get(f"{server}/api/v1/auth/oidc/login", params={"next": "/api/v1/session"})
        asked = parse_qs(urlsplit(start.headers["location"]).query)
        assert asked["code_challenge_method"] == ["S256"]
        assert asked["response_type"] == ["code"]
        assert {"state", "nonce", "code_challenge", "redirect_uri"} <= set(asked)
        assert "openid" in asked["scope"][0].split()
        flow_cookie = start.headers["set-cookie"]
        assert "HttpOnly" in flow_cookie
        assert "samesite=lax" in flow_cookie.lower()
        back = browser.get(browser.get(start.headers["location"]).headers["location"])
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "/api/v1/session"
        session_cookie = back.headers.get_list("set-cookie")
        assert any(c.startswith("steward_session=") and "HttpOnly" in c for c in session_cookie)
        me = browser.get(f"{server}/api/v1/session")
        assert me.status_code == 200, me.text
        assert me.json()["user"] == consortium.requester
        assert me.json()["via"] == "session"
        # the code worked once: the provider saw one token request
        assert provider.token_requests == 1


@pytest.mark.parametrize("tamper", ["nonce", "audience", "expired", "signature"])
def test_an_id_token_that_does_not_check_out_is_refused(
    server: str, provider: Provider, consortium: Consortium, tamper: str
) -> None:
    provider.user = {"sub": "aai-123", "preferred_username": consortium.requester}
    provider.tamper = tamper
    with httpx.Client(timeout=60) as browser:
        back = _sign_in(server, browser)
        assert back.status_code == 401
        assert back.headers["content-type"] == "application/problem+json"
        assert back.json()["detail"] == "the provider's ID token is not valid"
        assert "steward_session" not in browser.cookies
        assert browser.get(f"{server}/api/v1/session").status_code == 401


def test_someone_who_is_not_a_steward_user_is_refused_and_audited(
    server: str, provider: Provider, consortium: Consortium
) -> None:
    provider.user = {"sub": "aai-999", "preferred_username": "mallory"}
    with httpx.Client(timeout=60) as browser:
        back = _sign_in(server, browser)
    assert back.status_code == 401
    assert "mallory may not sign in" in back.json()["detail"]
    with consortium.db.read() as s:
        denied = s.query(AuditEntry).filter_by(action="oidc-sign-in", outcome="denied").all()
    assert [(d.actor, d.reason) for d in denied] == [("mallory", "not a Steward user")]


def test_a_callback_in_another_browser_or_with_a_denial_is_refused(
    server: str, provider: Provider, consortium: Consortium
) -> None:
    provider.user = {"preferred_username": consortium.requester, "sub": "x"}
    with httpx.Client(timeout=60) as victim, httpx.Client(timeout=60) as attacker:
        start = attacker.get(f"{server}/api/v1/auth/oidc/login")
        callback = attacker.get(start.headers["location"]).headers["location"]
        # login CSRF: the attacker's callback opened in the victim's browser does nothing
        answer = victim.get(callback)
        assert answer.status_code == 401
        assert "not started in this browser" in answer.json()["detail"]
    provider.user = None  # the person said no at the provider
    with httpx.Client(timeout=60) as browser:
        answer = _sign_in(server, browser)
        assert answer.status_code == 401
        assert "not completed" in answer.json()["detail"]


def test_next_only_leads_back_into_this_server(
    server: str, provider: Provider, consortium: Consortium
) -> None:
    provider.user = {"preferred_username": consortium.requester, "sub": "x"}
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        with httpx.Client(timeout=60) as browser:
            back = _sign_in(server, browser, next_path=target)
            assert back.status_code == 303
            assert back.headers["location"] == "/"


def test_without_a_provider_the_server_says_sign_in_is_not_set_up(
    settings: Settings, consortium: Consortium
) -> None:
    with serving(settings) as url:
        answer = httpx.get(f"{url}/api/v1/auth/oidc/login", timeout=60)
    assert answer.status_code >= 400
    problem = answer.json()
    assert problem["detail"] == "sign-in with OpenID Connect is not set up on this server"
    assert {e["field"] for e in problem["errors"]} == {
        "STEWARD_OIDC_ISSUER", "STEWARD_OIDC_CLIENT_ID", "STEWARD_OIDC_CLIENT_SECRET"
    }  # fmt: skip
