"""Signing in over real HTTP (uvicorn on loopback), on SQLite and PostgreSQL: a password for a
personal token, browser sessions with their cookie and CSRF token, the rate limit, and
disabled users."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from steward.config import Settings
from steward.db.models import AuditEntry, BrowserSession, LoginFailure
from steward.services import accounts, tokens
from steward.timeutil import utcnow
from tests.api_server import serving
from tests.conftest import Consortium
from tests.terminal import converse

PROBLEM = "application/problem+json"
PASSWORD = "correct horse battery staple"
NEW_REQUEST = {"project": "p1", "title": "Made in a browser", "datasets": ["raw/wgs"]}


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.fixture
def api(consortium: Consortium) -> Iterator[str]:
    c = consortium
    for user in (c.requester, c.admin):
        accounts.set_password(c.db, actor=c.admin, user_id=user, password=PASSWORD)
    with serving(c.db.settings) as url:
        yield url


def _http(api: str) -> httpx.Client:
    return httpx.Client(base_url=api, timeout=60)


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status
    return dict(body)


def _sign_in(http: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    return http.post("/api/v1/session", json={"user": user, "password": password})


def _cookie(r: httpx.Response) -> tuple[str, dict[str, str]]:
    """The session cookie's value and its attributes, as the server set them."""
    (header,) = [h for h in r.headers.get_list("set-cookie") if h.startswith("steward_session=")]
    first, *rest = [p.strip() for p in header.split(";")]
    attributes = {}
    for part in rest:
        name, _, value = part.partition("=")
        attributes[name.lower()] = value
    return first.partition("=")[2], attributes


class Browser:
    """A browser signed in: it sends the cookie on every call, as a browser would."""

    def __init__(self, http: httpx.Client, cookie: str) -> None:
        self.http, self.cookie = http, cookie

    def call(self, method: str, path: str, csrf: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Cookie": f"steward_session={self.cookie}"}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf
        return self.http.request(method, path, headers=headers, **kw)


# ---- a password for a token ----------------------------------------------------------------
def test_a_password_gets_a_token_like_token_create(consortium: Consortium, api: str) -> None:
    c = consortium
    with _http(api) as http:
        made = http.post(
            "/api/v1/auth/token",
            json={
                "user": c.requester,
                "password": PASSWORD,
                "scope": "read",
                "expires": "2d",
                "name": "laptop",
            },
        )
        assert made.status_code == 201, made.text
        body = made.json()
        assert body["token"]["scope"] == "read"
        assert body["token"]["name"] == "laptop"
        assert body["token"]["user_id"] == c.requester
        lasts = body["token"]["expires_at"]
        secret = body["secret"]
        who = http.get("/api/v1/session", headers={"Authorization": f"Bearer {secret}"})
        assert who.status_code == 200, who.text
        assert who.json()["user"] == c.requester
        assert who.json()["via"] == "token"
        assert who.json()["csrf_token"] is None
        assert who.json()["scope"] == "read"
        assert who.json()["expires_at"] == lasts
        listed = http.get("/api/v1/requests", headers={"Authorization": f"Bearer {secret}"})
        assert listed.status_code == 200
        bad = _problem(
            http.post(
                "/api/v1/auth/token",
                json={"user": c.requester, "password": PASSWORD, "expires": "soon"},
            ),
            422,
        )
        assert bad["errors"][0]["field"] == "expires"
        admin = _problem(
            http.post(
                "/api/v1/auth/token", json={"user": c.admin, "password": PASSWORD, "scope": "admin"}
            ),
            422,
        )
        assert admin["errors"][0]["field"] == "scope"
    assert [t.name for t in tokens.list_tokens(c.db, actor=c.requester)] == ["laptop"]
    with c.db.read() as s:
        made_audit = s.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "token-create")
        ).all()
    assert made_audit == [c.requester]


def test_wrong_password_and_unknown_user_answer_the_same(consortium: Consortium, api: str) -> None:
    c = consortium
    answers = []
    with _http(api) as http:
        for user, password in (
            (c.requester, "not the password"),
            ("nobody", PASSWORD),
            (c.steward, PASSWORD),
        ):
            for path, extra in (
                ("/api/v1/auth/token", {"scope": "write"}),
                ("/api/v1/session", {}),
            ):
                r = http.post(path, json={"user": user, "password": password, **extra})
                body = _problem(r, 401)
                assert "set-cookie" not in r.headers
                answers.append((body, r.headers["www-authenticate"]))
    assert all(a == answers[0] for a in answers), answers
    assert answers[0][0]["code"] == "unauthenticated"
    assert PASSWORD not in str(answers)


def test_a_password_is_never_echoed(
    consortium: Consortium, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    c = consortium
    long = "p" * 1025
    with _http(api) as http:
        too_long = http.post("/api/v1/session", json={"user": c.requester, "password": long})
        _problem(too_long, 422)
        assert long not in too_long.text
        wrong = http.post("/api/v1/auth/token", json={"user": c.requester, "password": "hunter2-x"})
        assert "hunter2-x" not in wrong.text
        right = _sign_in(http, c.requester)
        assert PASSWORD not in right.text
    assert long not in caplog.text
    assert "hunter2-x" not in caplog.text
    assert PASSWORD not in caplog.text
    with c.db.read() as s:
        reasons = " ".join(s.scalars(select(AuditEntry.reason)).all())
    assert "hunter2-x" not in reasons
    assert PASSWORD not in reasons


# ---- the rate limit ------------------------------------------------------------------------
def test_five_failures_lock_the_account_with_retry_after(consortium: Consortium, api: str) -> None:
    c = consortium
    with _http(api) as http:
        for i in range(accounts.ACCOUNT_LIMIT):
            _problem(_sign_in(http, c.requester, f"guess {i}"), 401)
        locked = _sign_in(http, c.requester)  # the right password: refused all the same
        body = _problem(locked, 429)
        assert body["code"] == "too-many-attempts"
        wait = int(locked.headers["retry-after"])
        assert 0 < wait <= accounts.WINDOW.total_seconds()
        # An unknown name locks the same way: the lock tells nothing of who exists.
        for i in range(accounts.ACCOUNT_LIMIT):
            _problem(_sign_in(http, "nobody", f"guess {i}"), 401)
        ghost = _sign_in(http, "nobody")
        assert _problem(ghost, 429)["detail"].split(":")[0] == body["detail"].split(":")[0]
        token = http.post("/api/v1/auth/token", json={"user": c.requester, "password": PASSWORD})
        _problem(token, 429)
        assert "retry-after" in token.headers
        # Once the failures are older than the window, the right password works again.
        with c.db.transaction() as s:
            s.execute(update(LoginFailure).values(at=utcnow() - accounts.WINDOW))
        assert _sign_in(http, c.requester).status_code == 201


def test_twenty_failures_lock_the_address(consortium: Consortium, api: str) -> None:
    c = consortium
    with _http(api) as http:
        for i in range(accounts.ADDRESS_LIMIT):
            _problem(_sign_in(http, f"someone-{i}", "guess"), 401)
        locked = _sign_in(http, c.requester)
        _problem(locked, 429)
        assert int(locked.headers["retry-after"]) > 0
    with c.db.read() as s:
        outcomes = s.scalars(select(AuditEntry.outcome).where(AuditEntry.action == "login")).all()
    assert outcomes.count("failed") == accounts.ADDRESS_LIMIT
    assert outcomes.count("locked-out") == 1


# ---- browser sessions ----------------------------------------------------------------------
def test_a_session_cookie_works_and_changes_need_the_csrf_token(
    consortium: Consortium, api: str
) -> None:
    c = consortium
    with _http(api) as http:
        signed = _sign_in(http, c.requester)
        assert signed.status_code == 201, signed.text
        cookie, attributes = _cookie(signed)
        assert "httponly" in attributes
        assert attributes["samesite"].lower() == "lax"
        assert attributes["path"] == "/"
        assert int(attributes["max-age"]) == 12 * 3600
        assert "secure" not in attributes  # plain http on loopback
        me = signed.json()
        assert (me["user"], me["via"], me["scope"]) == (c.requester, "session", "write")
        csrf = me["csrf_token"]
        assert csrf
        assert csrf not in cookie
        browser = Browser(http, cookie)
        assert browser.call("GET", "/api/v1/requests").status_code == 200
        again = browser.call("GET", "/api/v1/session")
        assert again.status_code == 200
        assert again.json()["csrf_token"] == csrf
        missing = _problem(browser.call("POST", "/api/v1/requests", json=NEW_REQUEST), 403)
        assert "X-CSRF-Token" in missing["detail"]
        wrong = browser.call("POST", "/api/v1/requests", csrf=csrf[:-2] + "xx", json=NEW_REQUEST)
        _problem(wrong, 403)
        made = browser.call("POST", "/api/v1/requests", csrf=csrf, json=NEW_REQUEST)
        assert made.status_code == 201, made.text
        assert made.json()["requester"] == c.requester
        # A bearer token needs no CSRF token, even when a cookie comes along.
        secret = tokens.create(
            c.db, actor=c.requester, scope="write", expires_in=timedelta(hours=1)
        ).secret
        with_token = http.post(
            "/api/v1/requests",
            json=NEW_REQUEST,
            headers={"Authorization": f"Bearer {secret}", "Cookie": f"steward_session={cookie}"},
        )
        assert with_token.status_code == 201, with_token.text


def test_an_administrators_session_has_admin_scope(consortium: Consortium, api: str) -> None:
    c = consortium
    with _http(api) as http:
        signed = _sign_in(http, c.admin)
        assert signed.json()["scope"] == "admin"
        assert signed.json()["is_admin"] is True


def test_signing_out_ends_the_session(consortium: Consortium, api: str) -> None:
    c = consortium
    with _http(api) as http:
        signed = _sign_in(http, c.requester)
        cookie, csrf = _cookie(signed)[0], signed.json()["csrf_token"]
        browser = Browser(http, cookie)
        _problem(browser.call("DELETE", "/api/v1/session"), 403)  # another site cannot
        assert browser.call("GET", "/api/v1/requests").status_code == 200
        out = browser.call("DELETE", "/api/v1/session", csrf=csrf)
        assert out.status_code == 204
        cleared = _cookie(out)
        assert cleared[0] in ("", '""')
        assert cleared[1]["max-age"] == "0"
        ended = _problem(browser.call("GET", "/api/v1/requests"), 401)
        assert "ended" in ended["detail"]
        assert browser.call("DELETE", "/api/v1/session").status_code == 204  # nothing to do
        forged = Browser(http, cookie[:-3] + "AAA")
        _problem(forged.call("GET", "/api/v1/session"), 401)
        _problem(http.get("/api/v1/session"), 401)


def test_an_expired_session_is_refused(consortium: Consortium, api: str) -> None:
    c = consortium
    with _http(api) as http:
        cookie = _cookie(_sign_in(http, c.requester))[0]
        browser = Browser(http, cookie)
        assert browser.call("GET", "/api/v1/requests").status_code == 200
        with c.db.transaction() as s:
            s.execute(update(BrowserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        expired = _problem(browser.call("GET", "/api/v1/requests"), 401)
        assert "expired" in expired["detail"]


def test_a_disabled_users_token_and_session_stop_at_once(consortium: Consortium, api: str) -> None:
    c = consortium
    secret = tokens.create(
        c.db, actor=c.requester, scope="write", expires_in=timedelta(days=1)
    ).secret
    with _http(api) as http:
        browser = Browser(http, _cookie(_sign_in(http, c.requester))[0])
        bearer = {"Authorization": f"Bearer {secret}"}
        assert http.get("/api/v1/requests", headers=bearer).status_code == 200
        assert browser.call("GET", "/api/v1/requests").status_code == 200
        accounts.disable(c.db, actor=c.admin, user_id=c.requester)
        assert "disabled" in _problem(http.get("/api/v1/requests", headers=bearer), 401)["detail"]
        _problem(browser.call("GET", "/api/v1/requests"), 401)
        refused = _sign_in(http, c.requester)  # the right password, the usual words
        assert _problem(refused, 401)["detail"] == accounts.REFUSED
        accounts.enable(c.db, actor=c.admin, user_id=c.requester)
        assert http.get("/api/v1/requests", headers=bearer).status_code == 200
        _problem(browser.call("GET", "/api/v1/requests"), 401)  # sessions stay ended
        assert _sign_in(http, c.requester).status_code == 201


def test_the_cookie_is_secure_behind_https_and_lasts_the_configured_time(
    consortium: Consortium, settings: Settings
) -> None:
    c = consortium
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester, password=PASSWORD)
    behind_tls = settings.model_copy(
        update={"public_url": "https://steward.example.org", "session_lifetime": "90m"}
    )
    with serving(behind_tls) as url, _http(url) as http:
        signed = _sign_in(http, c.requester)
        assert signed.status_code == 201, signed.text
        attributes = _cookie(signed)[1]
        assert "secure" in attributes
        assert int(attributes["max-age"]) == 90 * 60
    with c.db.read() as s:
        row = s.scalars(select(BrowserSession)).one()
    assert row.expires_at - row.created_at == timedelta(minutes=90)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_steward_login_signs_in_with_a_password(
    consortium: Consortium, api: str, tmp_path: Path
) -> None:
    """`steward login URL` on a real terminal: the password asked without echo, a token made
    by the server, kept, and used by the next command."""
    c = consortium
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")},
        "STEWARD_HOME": str(tmp_path / "elsewhere"),  # no database: all goes to the server
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    code, shown = converse(
        ["login", api, "--user", c.requester, "--scope", "read"],
        env=env,
        cwd=tmp_path,
        answers=[(b"password", PASSWORD, True)],
    )
    assert code == 0, shown
    assert f"signed in to {api}".encode() in shown
    assert PASSWORD.encode() not in shown
    (made,) = tokens.list_tokens(c.db, actor=c.requester)
    assert (made.scope, made.name) == ("read", "steward login")
    code, shown = converse(
        ["login", api, "--user", c.requester],
        env=env,
        cwd=tmp_path,
        answers=[(b"password", "not my password", True)],
    )
    assert code == 2, shown
    assert accounts.REFUSED.encode() in shown


def test_sessions_are_listed_and_ended_by_their_user_from_the_cli_and_the_api(
    api: str, consortium: Consortium, cli: Any
) -> None:
    """Where am I signed in? Two browsers, one ended from the command line through the
    server: that browser is refused at once, the other goes on; nobody else sees them."""
    c = consortium
    with _http(api) as first_http, _http(api) as second_http:
        first = Browser(first_http, _cookie(_sign_in(first_http, c.requester))[0])
        second = Browser(second_http, _cookie(_sign_in(second_http, c.requester))[0])
        ids = [cookie.split(".")[0] for cookie in (first.cookie, second.cookie)]
        token = tokens.create(c.db, actor=c.requester, scope="write",
                              expires_in=timedelta(hours=1)).secret  # fmt: skip
        remote = ("--server", api, "--token", token)
        here = cli("--as", c.requester, "--json", "session", "list")
        there = cli(*remote, "--json", "session", "list")
        assert here.code == there.code == 0, (here, there)
        listed = [s["id"] for s in json.loads(there.out)]
        assert listed == [s["id"] for s in json.loads(here.out)]
        assert sorted(listed) == sorted(ids)

        ended = cli(*remote, "session", "revoke", ids[0])
        assert ended.code == 0, ended
        assert f"{ids[0]} ended" in ended.out
        _problem(first.call("GET", "/api/v1/session"), 401)
        assert second.call("GET", "/api/v1/session").status_code == 200
        again = cli(*remote, "--json", "session", "revoke", ids[0])  # nothing more to end
        assert json.loads(again.out)["revoked_at"] is not None

        # Someone else's session does not exist for them; an administrator may end it
        other = tokens.create(c.db, actor=c.requester2, scope="write",
                              expires_in=timedelta(hours=1)).secret  # fmt: skip
        with _http(api) as http:
            hers = http.get("/api/v1/sessions", headers={"Authorization": f"Bearer {other}"})
            assert hers.json() == []
            hidden = http.post(f"/api/v1/sessions/{ids[1]}:revoke",
                               headers={"Authorization": f"Bearer {other}"})  # fmt: skip
            unknown = http.post("/api/v1/sessions/ses_nope:revoke",
                                headers={"Authorization": f"Bearer {other}"})  # fmt: skip
            assert _problem(hidden, 404)["detail"] == _problem(unknown, 404)["detail"].replace(
                "ses_nope", ids[1])  # fmt: skip
        assert second.call("GET", "/api/v1/session").status_code == 200
        everyone = cli("--as", c.admin, "--json", "session", "list", "--all")
        assert set(ids) <= {s["id"] for s in json.loads(everyone.out)}
        assert cli("--as", c.admin, "session", "revoke", ids[1]).code == 0
        _problem(second.call("GET", "/api/v1/session"), 401)
    with c.db.read() as s:
        audited = s.scalars(select(AuditEntry.subject_id).where(
            AuditEntry.action == "session-revoke", AuditEntry.outcome == "done")).all()  # fmt: skip
    assert sorted(audited) == sorted(ids)
