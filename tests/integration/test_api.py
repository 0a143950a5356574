"""The REST API through real HTTP on loopback (uvicorn), on SQLite and PostgreSQL: tokens,
lists with filters and cursors, details with versions, commands with Idempotency-Key and
If-Match, and every refusal as a problem document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from steward.db.models import ApiToken
from steward.domain.requests import RequestFields
from steward.services import requests, tokens
from steward.timeutil import utcnow
from tests.api_server import serving
from tests.conftest import Consortium

PROBLEM = "application/problem+json"


@pytest.fixture
def api(consortium: Consortium) -> Iterator[str]:
    with serving(consortium.db.settings) as url:
        yield url


def _token(c: Consortium, user: str, scope: str = "write") -> str:
    return tokens.create(c.db, actor=user, scope=scope, expires_in=timedelta(days=1)).secret


def _client(api: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api, headers=headers, timeout=30)


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(body)
    assert body["status"] == status
    return dict(body)


def _draft(c: Consortium, title: str = "Study", who: str | None = None) -> str:
    return requests.create(
        c.db, actor=who or c.requester, project=c.project,
        fields=RequestFields(title, "Uni", "Prof", "Research", datasets=("raw/wgs",)),
    ).id  # fmt: skip


def test_health_and_readiness_need_no_token(api: str) -> None:
    with _client(api, None) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.headers["x-content-type-options"] == "nosniff"


def test_no_bad_revoked_or_expired_token_gets_in(consortium: Consortium, api: str) -> None:
    c = consortium
    good = _token(c, c.requester)
    with _client(api, None) as http:
        missing = _problem(http.get("/api/v1/requests"), 401)
        assert "Bearer" in http.get("/api/v1/requests").headers["www-authenticate"]
        assert missing["code"] == "unauthenticated"
        _problem(http.get("/api/v1/requests", headers={"Authorization": "Basic eDp5"}), 401)
        forged = good[:-4] + "AAAA"
        wrong = _problem(
            http.get("/api/v1/requests", headers={"Authorization": f"Bearer {forged}"}), 401
        )
        unknown = _problem(
            http.get("/api/v1/requests", headers={"Authorization": "Bearer stw_01J_x"}), 401
        )
        assert wrong["detail"] == unknown["detail"]  # no telling which ids exist
    revoked = tokens.create(c.db, actor=c.requester, scope="read", expires_in=timedelta(days=1))
    tokens.revoke(c.db, actor=c.requester, token_id=revoked.token.id)
    expired = tokens.create(c.db, actor=c.requester, scope="read", expires_in=timedelta(days=1))
    with c.db.transaction() as s:
        s.execute(update(ApiToken).where(ApiToken.id == expired.token.id)
                  .values(expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
    with _client(api, revoked.secret) as http:
        assert "revoked" in _problem(http.get("/api/v1/requests"), 401)["detail"]
    with _client(api, expired.secret) as http:
        assert "expired" in _problem(http.get("/api/v1/requests"), 401)["detail"]
    with _client(api, good) as http:
        assert http.get("/api/v1/requests").status_code == 200
    assert tokens.list_tokens(c.db, actor=c.requester)[-1].last_used_at is not None


def test_lists_filter_sort_and_page_with_a_next_link(consortium: Consortium, api: str) -> None:
    c = consortium
    mine = {_draft(c, f"Study {i}") for i in range(7)}
    theirs = _draft(c, "Other", who=c.requester2)
    with _client(api, _token(c, c.requester)) as http:
        seen: list[str] = []
        url: str | None = "/api/v1/requests?limit=3&sort=-created"
        totals = set()
        while url:
            page = http.get(url)
            assert page.status_code == 200, page.text
            body = page.json()
            totals.add(body["total"])
            seen += [r["id"] for r in body["items"]]
            url = body["next"]
        assert totals == {7}
        assert set(seen) == mine  # a requester sees only her own
        assert theirs not in seen
    with _client(api, _token(c, c.steward)) as http:
        both = http.get("/api/v1/requests", params={"requester": c.requester2, "state": "DRAFT"})
        assert [r["id"] for r in both.json()["items"]] == [theirs]
        bad = _problem(http.get("/api/v1/requests", params={"sort": "colour"}), 422)
        assert bad["errors"][0]["field"] == "sort"
        cursor = _problem(http.get("/api/v1/requests", params={"after": "%%%"}), 422)
        assert cursor["errors"][0]["field"] == "after"
        naive = _problem(
            http.get("/api/v1/requests", params={"created_from": "2026-01-01T00:00:00"}), 422
        )
        assert naive["errors"]
        assert http.get("/api/v1/packages").json() == {"items": [], "total": 0, "next": None}
        assert http.get("/api/v1/shares").status_code == 200


def test_detail_and_events_say_what_you_may_do_and_hide_what_you_may_not_see(
    consortium: Consortium, api: str
) -> None:
    c = consortium
    rid = _draft(c)
    with _client(api, _token(c, c.requester)) as http:
        detail = http.get(f"/api/v1/requests/{rid}")
        assert detail.status_code == 200
        body = detail.json()
        assert body["item"]["id"] == rid
        assert detail.headers["etag"] == f'"{body["item"]["version"]}"'
        assert "submit" in body["allowed_actions"]
        assert "approve" not in body["allowed_actions"]
        events = http.get(f"/api/v1/requests/{rid}/events").json()
        assert [e["type"] for e in events["timeline"]] == ["created"]
    with _client(api, _token(c, c.requester2)) as http:
        hidden = _problem(http.get(f"/api/v1/requests/{rid}"), 404)
        unknown = _problem(http.get("/api/v1/requests/req_01J0000000000000000000000"), 404)
        assert hidden["detail"].replace(rid, "X") == unknown["detail"].replace(
            "req_01J0000000000000000000000", "X"
        )
        _problem(http.get(f"/api/v1/requests/{rid}/events"), 404)


def test_commands_with_keys_versions_and_typed_bodies(consortium: Consortium, api: str) -> None:
    c = consortium
    rid = _draft(c)
    with _client(api, _token(c, c.requester)) as http:
        first = http.post(f"/api/v1/requests/{rid}:submit", headers={"Idempotency-Key": "a1"})
        assert first.status_code == 200, first.text
        assert first.json()["state"] == "submitted"
        again = http.post(f"/api/v1/requests/{rid}:submit", headers={"Idempotency-Key": "a1"})
        assert again.json() == first.json()  # the first result, nothing more happened
        other_body = http.post(f"/api/v1/requests/{rid}:comment", json={"text": "hi"},
                               headers={"Idempotency-Key": "a1"})  # fmt: skip
        assert _problem(other_body, 422)["errors"][0]["field"] == "Idempotency-Key"
        version = first.json()["version"]
        stale = http.post(f"/api/v1/requests/{rid}:comment", json={"text": "hi"},
                          headers={"If-Match": f'"{version - 1}"'})  # fmt: skip
        assert _problem(stale, 409)["errors"][0]["field"] == "version"
        fresh = http.post(f"/api/v1/requests/{rid}:comment", json={"text": "hi"},
                          headers={"If-Match": f'"{version}"'})  # fmt: skip
        assert fresh.status_code == 200
        assert fresh.headers["etag"] == f'"{version + 1}"'
        extra = _problem(
            http.post(f"/api/v1/requests/{rid}:comment", json={"text": "x", "colour": 1}), 422
        )
        assert extra["errors"][0]["field"] == "colour"
        missing = _problem(http.post(f"/api/v1/requests/{rid}:comment", json={}), 422)
        assert missing["errors"][0]["field"] == "text"
        forbidden = _problem(http.post(f"/api/v1/requests/{rid}:approve", json={}), 403)
        assert forbidden["code"] == "forbidden"
        _problem(http.post(f"/api/v1/requests/{rid}:record_effect", json={}), 404)
        _problem(http.post(f"/api/v1/requests/{rid}:fly", json={}), 404)
    with _client(api, _token(c, c.steward, scope="read")) as http:
        read_only = _problem(http.post(f"/api/v1/requests/{rid}:comment", json={"text": "x"}), 403)
        assert "read" in read_only["detail"]


def test_bodies_that_are_not_json_too_large_or_malformed(consortium: Consortium, api: str) -> None:
    c = consortium
    rid = _draft(c)
    url = f"/api/v1/requests/{rid}:comment"
    with _client(api, _token(c, c.requester)) as http:
        broken = http.post(url, content=b'{"text": ', headers={"Content-Type": "application/json"})
        assert _problem(broken, 422)["code"] == "validation-failed"
        plain = http.post(url, content=b"text=hi", headers={"Content-Type": "text/plain"})
        assert _problem(plain, 415)["errors"][0]["field"] == "Content-Type"
        huge = http.post(url, content=json.dumps({"text": "x" * 2_000_000}),
                         headers={"Content-Type": "application/json"})  # fmt: skip
        assert _problem(huge, 413)["code"] == "too-large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"text": "'
            for _ in range(40):
                yield b"y" * 65536
            yield b'"}'

        streamed = http.post(url, content=chunks(), headers={"Content-Type": "application/json"})
        assert _problem(streamed, 413)["code"] == "too-large"
        assert _problem(http.get("/api/v1/nothing-here"), 404)["code"] == "not-found"
        assert _problem(http.delete(f"/api/v1/requests/{rid}"), 405)["status"] == 405
    with c.db.read() as s:
        from sqlalchemy import func, select

        from steward.db.models import Event

        assert s.scalar(select(func.count()).select_from(Event).where(Event.subject_id == rid)) == 1


def test_the_description_covers_every_kind_and_the_docs_page_runs_no_inline_script(
    api: str,
) -> None:
    with _client(api, None) as http:
        spec = http.get("/api/openapi.json").json()
        paths = set(spec["paths"])
        for kind in ("requests", "packages", "shares"):
            assert f"/api/v1/{kind}" in paths
            assert f"/api/v1/{kind}/{{subject_id}}" in paths
            assert f"/api/v1/{kind}/{{subject_id}}/events" in paths
        assert "/api/v1/requests/{subject_id}:approve" in paths
        assert not any("record_effect" in p or ":start" in p for p in paths)
        page = http.get("/api/docs")
        assert page.status_code == 200
        assert "<script>" not in page.text  # only <script src=…>
        assert "'unsafe-inline'" not in page.headers["content-security-policy"]
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "start.js"):
            assert http.get(f"/api/docs/{asset}").status_code == 200, asset
        assert http.get("/api/docs/../../etc/passwd").status_code == 404


def test_the_curl_session_in_the_docs_runs_as_written(consortium: Consortium, api: str) -> None:
    import os
    import re
    import subprocess
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    session = text[text.index("## A session with curl") :]
    session = session[: session.find("\n## ")] if "\n## " in session else session
    (block,) = re.findall(r"^```sh\n(.*?)^```$", session, flags=re.M | re.S)
    lines = [ln for ln in block.splitlines() if ln.strip()]
    assert len(lines) >= 5
    c = consortium
    rid = _draft(c)
    requests.act(c.db, actor=c.requester, request_id=rid, command="submit")
    env = dict(os.environ, TOKEN=_token(c, c.steward), REQ=rid)
    for line in lines:
        assert "http://127.0.0.1:8000" in line
        real = line.replace("http://127.0.0.1:8000", api)
        run = subprocess.run(
            ["bash", "-c", real], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert run.returncode == 0, (line, run.stdout, run.stderr)
        assert json.loads(run.stdout), line
    timeline = requests.get(c.db, actor=c.steward, request_id=rid).timeline
    assert [e.type for e in timeline][-1] == "commented"


def test_tokens_from_the_command_line(consortium: Consortium, api: str, cli: Any) -> None:
    c = consortium
    made = cli("--as", c.steward, "token", "create", "--scope", "write", "--name", "ci")
    assert made.code == 0, made.err
    secret = made.out.strip()
    assert secret.startswith("stw_")
    assert secret not in made.err  # once, on stdout only, for `TOKEN=$(steward token create)`
    listed = cli("--as", c.steward, "--json", "token", "list")
    (row,) = json.loads(listed.out)
    assert row["scope"] == "write"
    assert row["name"] == "ci"
    assert secret.split("_", 2)[2] not in listed.out
    with _client(api, secret) as http:
        assert http.get("/api/v1/requests").status_code == 200
    bad = cli("--as", c.steward, "token", "create", "--scope", "admin")
    assert bad.code == 2  # sam is no administrator
    assert "administrator" in bad.err
    never = cli("--as", c.steward, "token", "create", "--expires", "5y")
    assert never.code == 2
    stranger = cli("--as", c.requester, "token", "revoke", row["id"])
    assert stranger.code == 1
    assert "no token" in stranger.err
    revoked = cli("--as", c.steward, "token", "revoke", row["id"])
    assert revoked.code == 0, revoked.err
    with _client(api, secret) as http:
        assert _problem(http.get("/api/v1/requests"), 401)["detail"].startswith(
            "this token was revoked"
        )


@pytest.mark.parametrize("backend", ["sqlite"])  # on PostgreSQL it would start serving
def test_serving_several_processes_needs_postgresql(cli: Any) -> None:
    refused = cli("serve", "--workers", "2")
    assert refused.code == 1
    assert "PostgreSQL" in refused.err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_readme_api_story_runs_as_written(settings: Any, tmp_path: Any) -> None:
    """The README's lines in one shell, as a reader pastes them: a real `steward serve` in the
    background, curl against it, then the server stopped. Only the port is changed (8000
    may be taken here)."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from tests.pg import free_port

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The API") :]
    (block,) = re.findall(r"^```sh\n(.*?)^```$", section[: section.index("\n## ")], re.M | re.S)
    port = str(free_port())
    script = block.replace("8000", port).replace("steward serve ", f"steward serve --port {port} ")
    # If a line fails, the server must not outlive the test; at the end, let it finish stopping.
    script = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script + "wait\n"
    env = dict(os.environ, STEWARD_HOME=str(settings.home),
               STEWARD_DATABASE_URL=settings.resolved_database_url,
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # fmt: skip
    env.pop("STEWARD_USER", None)
    init = subprocess.run(["steward", "init", "--admin", "alice"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert init.returncode == 0, init.stderr
    run = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True,
                         timeout=180, check=False, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert '"status":"ready"' in run.stdout.replace(" ", "")
    assert '"items":[]' in run.stdout.replace(" ", "")


def test_values_a_database_cannot_store_are_the_callers_mistake_on_both(
    consortium: Consortium, api: str
) -> None:
    """A NUL character anywhere (id, query, body): 422 naming it on SQLite and PostgreSQL
    alike, never a 500; nothing is written."""
    c = consortium
    rid = _draft(c)
    with _client(api, _token(c, c.requester)) as http:
        for r in (
            http.get("/api/v1/requests/req_%00x"),
            http.get("/api/v1/requests", params={"requester": "a\x00b"}),
            http.post(f"/api/v1/requests/{rid}:comment", json={"text": "a\x00b"}),
            http.get("/ga4gh/drs/v1/objects/pkg_%00"),
        ):
            assert r.status_code in (404, 422), (r.request.url, r.text)
            assert r.headers["content-type"].startswith(PROBLEM)
    events = requests.get(c.db, actor=c.requester, request_id=rid).timeline
    assert [e.type for e in events] == ["created"]


def test_a_hand_made_cursor_or_a_long_key_is_refused_or_kept_never_a_crash(
    consortium: Consortium, api: str
) -> None:
    import base64

    c = consortium
    rid = _draft(c)

    def cursor(value: object) -> str:
        raw = json.dumps([value, "req_x"]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    with _client(api, _token(c, c.steward)) as http:
        for value in ("2026-01-01T00:00:00", 12, [1], {"a": 1}, None):
            r = http.get("/api/v1/requests", params={"after": cursor(value)})
            assert _problem(r, 422)["errors"][0]["field"] == "after", value
        r = http.get("/api/v1/requests", params={"after": cursor(12), "sort": "id"})
        assert _problem(r, 422)["errors"][0]["field"] == "after"
    with _client(api, _token(c, c.requester)) as http:
        key = "k" * 150  # the longest accepted: the same on both databases
        first = http.post(f"/api/v1/requests/{rid}:submit", headers={"Idempotency-Key": key})
        assert first.status_code == 200, first.text
        again = http.post(f"/api/v1/requests/{rid}:submit", headers={"Idempotency-Key": key})
        assert again.json() == first.json()


def test_an_administrators_token_acts_only_within_its_scope(
    consortium: Consortium, api: str
) -> None:
    from steward.services import access

    c = consortium
    rid = _draft(c)
    access.add_user(c.db, actor=c.admin, user_id="root", admin=True)  # no role in p1
    with _client(api, _token(c, "root", scope="write")) as http:
        assert _problem(http.get(f"/api/v1/requests/{rid}"), 404)["code"] == "not-found"
        assert http.get("/api/v1/requests").json()["total"] == 0
    with _client(api, _token(c, "root", scope="admin")) as http:
        assert http.get(f"/api/v1/requests/{rid}").status_code == 200
        assert http.get("/api/v1/requests").json()["total"] == 1
    with _client(api, None) as http:  # no token: 401 before anything else, even a bad command
        assert _problem(http.post(f"/api/v1/requests/{rid}:fly", json={}), 401)
