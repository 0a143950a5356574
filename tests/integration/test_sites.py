"""Sites and their analysts: the service, the command line and the API over real HTTP, on
SQLite and PostgreSQL. Who may add, see and change a site; "no site" for a site the caller
may not see, in the same words as for an unknown id; every change and refusal audited."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from steward.db.models import AuditEntry
from steward.db.session import Database
from steward.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from steward.services import access, sites, tokens
from tests.api_server import serving
from tests.conftest import CliResult

PROBLEM = "application/problem+json"
Cli = Callable[..., CliResult]


@dataclass
class World:
    """Two sites: carol analyses at fin, dave at est; sam stewards a project; olga is no one."""

    db: Database
    admin: str = "admin"
    steward: str = "sam"
    analyst: str = "carol"
    other_analyst: str = "dave"
    outsider: str = "olga"


@pytest.fixture
def world(db: Database) -> World:
    w = World(db)
    for uid in ("sam", "carol", "dave", "olga"):
        access.add_user(db, actor="admin", user_id=uid)
    access.create_project(db, actor="admin", project_id="p1")
    access.add_member(db, actor="admin", project_id="p1", user_id="sam", role="steward")
    sites.add_site(db, actor="admin", site_id="fin", name="Finnish Biobank", description="HKI")
    sites.add_site(db, actor="admin", site_id="est", name="Estonian Biobank")
    sites.add_member(db, actor="admin", site_id="fin", user_id="carol")
    sites.add_member(db, actor="admin", site_id="est", user_id="dave")
    return w


def _entries(db: Database, **where: str) -> list[AuditEntry]:
    with db.read() as s:
        q = select(AuditEntry).order_by(AuditEntry.id)
        for name, value in where.items():
            q = q.where(getattr(AuditEntry, name) == value)
        return list(s.scalars(q))


# ---- the service -----------------------------------------------------------------------------
def test_an_administrator_adds_sites_and_analysts_and_each_change_is_audited(
    world: World,
) -> None:
    db = world.db
    detail = sites.show_site(db, actor="admin", site_id="fin")
    assert (detail.id, detail.name, detail.description) == ("fin", "Finnish Biobank", "HKI")
    assert detail.created_by == "admin"
    assert [(m.user, m.role, m.added_by) for m in detail.members] == [("carol", "analyst", "admin")]
    assert detail.member_count == 1
    done = [
        (e.actor, e.action, e.subject_kind, e.subject_id, e.outcome)
        for e in _entries(db, outcome="done", subject_kind="site")
    ]
    assert done == [
        ("admin", "site-add", "site", "fin", "done"),
        ("admin", "site-add", "site", "est", "done"),
        ("admin", "site-member-add", "site", "fin", "done"),
        ("admin", "site-member-add", "site", "est", "done"),
    ]
    removed = sites.remove_member(db, actor="admin", site_id="fin", user_id="carol")
    assert (removed.member, removed.changed, removed.role) == (False, True, "analyst")
    assert sites.show_site(db, actor="admin", site_id="fin").members == []
    last = _entries(db, action="site-member-remove")
    assert [(e.subject_id, e.reason) for e in last] == [("fin", "carol removed (analyst)")]


def test_who_sees_which_sites(world: World) -> None:
    db = world.db
    every = ["est", "fin"]
    assert [v.id for v in sites.list_sites(db, actor="admin")] == every
    assert [v.id for v in sites.list_sites(db, actor="sam")] == every  # stewards see all
    assert [v.id for v in sites.list_sites(db, actor="carol")] == ["fin"]
    assert [v.id for v in sites.list_sites(db, actor="dave")] == ["est"]
    assert sites.list_sites(db, actor="olga") == []
    assert {v.id: v.member_count for v in sites.list_sites(db, actor="admin")} == {
        "est": 1,
        "fin": 1,
    }
    assert sites.show_site(db, actor="sam", site_id="est").members[0].user == "dave"
    assert sites.show_site(db, actor="carol", site_id="fin").id == "fin"
    with pytest.raises(Unauthenticated):
        sites.list_sites(db, actor="nobody")


def test_a_site_the_caller_may_not_see_reads_as_one_that_does_not_exist(world: World) -> None:
    db = world.db
    with pytest.raises(NotFound) as hidden:
        sites.show_site(db, actor="carol", site_id="est")
    with pytest.raises(NotFound) as unknown:
        sites.show_site(db, actor="carol", site_id="nowhere")
    assert hidden.value.as_problem() == json.loads(
        json.dumps(unknown.value.as_problem()).replace("nowhere", "est")
    )
    with pytest.raises(NotFound):
        sites.show_site(db, actor="olga", site_id="fin")
    refusals = _entries(db, action="site-show")
    assert [(e.actor, e.subject_id, e.outcome, e.reason) for e in refusals] == [
        ("carol", "est", "denied", "carol is not a member of site est"),
        ("olga", "fin", "denied", "olga is not a member of site fin"),
    ]  # the unknown id is no refusal: nothing was hidden


def test_only_administrators_add_sites_and_members_and_refusals_are_audited(
    world: World,
) -> None:
    db = world.db
    with pytest.raises(Forbidden):
        sites.add_site(db, actor="sam", site_id="new", name="New")
    with pytest.raises(Forbidden):
        sites.add_member(db, actor="carol", site_id="fin", user_id="olga")
    with pytest.raises(Forbidden):
        sites.remove_member(db, actor="sam", site_id="est", user_id="dave")
    # an administrator's token without the admin scope
    with access.without_admin(), pytest.raises(Forbidden):
        sites.add_site(db, actor="admin", site_id="new", name="New")
    assert [v.id for v in sites.list_sites(db, actor="admin")] == ["est", "fin"]
    with db.read() as s:
        assert sites.sites_of(s, "olga") == frozenset()
        assert sites.sites_of(s, "dave") == {"est"}
        assert sites.sites_of(s, "admin") == frozenset()  # no sites from being an admin
    denied = [(e.actor, e.action, e.subject_id, e.reason) for e in _entries(db, outcome="denied")]
    assert denied == [
        ("sam", "site-add", "new", "sam is not an administrator"),
        ("carol", "site-member-add", "fin", "carol is not an administrator"),
        ("sam", "site-member-remove", "est", "sam is not an administrator"),
        ("admin", "site-add", "new", "admin is not an administrator"),
    ]


def test_bad_ids_names_and_unknown_users_are_refused_with_what_is_accepted(world: World) -> None:
    db = world.db
    for bad in ("Fin", "-fin", "fin biobank", "x" * 65, ""):
        with pytest.raises(ValidationFailed) as caught:
            sites.add_site(db, actor="admin", site_id=bad, name="X")
        (detail,) = caught.value.details
        assert (detail.field, detail.value) == ("site", bad)
        assert "lower-case" in str(detail.accepted)
    with pytest.raises(ValidationFailed) as caught:
        sites.add_site(db, actor="admin", site_id="ok", name="  ", description="d" * 2001)
    assert [d.field for d in caught.value.details] == ["name", "description"]
    with pytest.raises(ValidationFailed):
        sites.add_site(db, actor="admin", site_id="ok", name="n" * 201)
    with pytest.raises(NotFound) as caught_user:
        sites.add_member(db, actor="admin", site_id="fin", user_id="ghost")
    assert "steward user add ghost" in caught_user.value.message
    with pytest.raises(NotFound):
        sites.remove_member(db, actor="admin", site_id="fin", user_id="ghost")
    with pytest.raises(NotFound) as caught_site:
        sites.add_member(db, actor="admin", site_id="nowhere", user_id="olga")
    assert caught_site.value.message == "no site 'nowhere'"
    with pytest.raises(ValidationFailed):
        sites.add_member(db, actor="admin", site_id="fin", user_id="Not A User")
    assert [v.id for v in sites.list_sites(db, actor="admin")] == ["est", "fin"]


def test_adding_or_removing_twice_changes_nothing_and_a_clash_is_a_conflict(
    world: World,
) -> None:
    db = world.db
    before = len(_entries(db))
    again = sites.add_member(db, actor="admin", site_id="fin", user_id="carol")
    assert (again.member, again.changed) == (True, False)
    absent = sites.remove_member(db, actor="admin", site_id="fin", user_id="olga")
    assert (absent.member, absent.changed) == (False, False)
    same = sites.add_site(
        db, actor="admin", site_id="fin", name="Finnish Biobank", description="HKI"
    )
    assert (same.id, same.member_count) == ("fin", 1)
    assert len(_entries(db)) == before  # nothing changed, nothing audited
    with pytest.raises(Conflict) as clash:
        sites.add_site(db, actor="admin", site_id="fin", name="Another")
    assert "already exists" in clash.value.message
    assert sites.show_site(db, actor="admin", site_id="fin").name == "Finnish Biobank"


# ---- the command line ---------------------------------------------------------------------
def test_the_site_commands(world: World, cli: Cli) -> None:
    made = cli(
        "--as", "admin", "site", "add", "uk", "--name", "UK Biobank", "--description", "Stockport"
    )
    assert made.code == 0, made.err
    assert "Site uk (UK Biobank) ready" in made.out
    added = cli("--as", "admin", "--json", "site", "add-member", "uk", "olga")
    assert added.code == 0, added.err
    assert json.loads(added.out) == {
        "site": "uk",
        "user": "olga",
        "role": "analyst",
        "member": True,
        "changed": True,
    }
    twice = cli("--as", "admin", "site", "add-member", "uk", "olga")
    assert twice.code == 0
    assert "nothing changed" in twice.out
    listed = json.loads(cli("--as", "olga", "--json", "site", "list").out)
    assert [(r["id"], r["members"]) for r in listed] == [("uk", 1)]
    table = cli("--as", "admin", "site", "list")
    assert table.code == 0
    assert "UK Biobank" in table.out
    assert "Finnish Biobank" in table.out
    shown = cli("--as", "olga", "site", "show", "uk")
    assert shown.code == 0, shown.err
    assert "Stockport" in shown.out
    assert re.search(r"olga .* analyst .* admin", shown.out)
    detail = json.loads(cli("--as", "olga", "--json", "site", "show", "uk").out)
    assert [m["user"] for m in detail["members"]] == ["olga"]
    removed = cli("--as", "admin", "--json", "site", "remove-member", "uk", "olga")
    assert json.loads(removed.out)["changed"] is True
    assert json.loads(cli("--as", "olga", "--json", "site", "list").out) == []


def test_site_command_refusals_are_messages_not_tracebacks(world: World, cli: Cli) -> None:
    hidden = cli("--as", "carol", "site", "show", "est")
    unknown = cli("--as", "carol", "site", "show", "nowhere")
    assert (hidden.code, unknown.code) == (1, 1)
    assert hidden.err.replace("est", "X") == unknown.err.replace("nowhere", "X")
    assert "no site 'est'" in hidden.err
    as_json = cli("--as", "carol", "--json", "site", "show", "est")
    problem = json.loads(as_json.out)  # only JSON on stdout
    assert (problem["code"], problem["status"]) == ("not-found", 404)
    denied = cli("--as", "sam", "site", "add", "new", "--name", "New")
    assert denied.code == 1
    assert "sam is not an administrator" in denied.err
    bad = cli("--as", "admin", "--json", "site", "add", "Bad Id", "--name", "x")
    assert bad.code == 2
    assert json.loads(bad.out)["errors"][0]["field"] == "site"
    ghost = cli("--as", "admin", "site", "add-member", "fin", "ghost")
    assert ghost.code == 1
    assert "steward user add ghost" in ghost.err
    missing = cli("--as", "admin", "site", "add", "new")
    assert missing.code == 2  # --name is required
    clash = cli("--as", "admin", "site", "add", "fin", "--name", "Other")
    assert clash.code == 1
    assert "already exists" in clash.err
    for result in (hidden, denied, bad, ghost, missing, clash):
        assert "Traceback" not in result.err + result.out


# ---- the API ------------------------------------------------------------------------------
@pytest.fixture
def api(world: World) -> Iterator[str]:
    with serving(world.db.settings) as url:
        yield url


def _token(db: Database, user: str, scope: str) -> str:
    return tokens.create(db, actor=user, scope=scope, expires_in=timedelta(hours=1)).secret


def _client(api: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def test_sites_over_http(world: World, api: str) -> None:
    db = world.db
    admin = _client(api, _token(db, "admin", "admin"))
    carol = _client(api, _token(db, "carol", "read"))
    with admin, carol:
        made = admin.post("/api/v1/sites", json={"id": "uk", "name": "UK Biobank"})
        assert made.status_code == 201, made.text
        assert made.headers["location"] == "/api/v1/sites/uk"
        assert made.json()["member_count"] == 0
        put = admin.put("/api/v1/sites/uk/members/carol")
        assert put.status_code == 200, put.text
        assert put.json() == {
            "site": "uk",
            "user": "carol",
            "role": "analyst",
            "member": True,
            "changed": True,
        }
        assert admin.put("/api/v1/sites/uk/members/carol").json()["changed"] is False
        assert [s["id"] for s in carol.get("/api/v1/sites").json()["items"]] == ["fin", "uk"]
        assert [s["id"] for s in admin.get("/api/v1/sites").json()["items"]] == [
            "est",
            "fin",
            "uk",
        ]
        uk = carol.get("/api/v1/sites/uk").json()
        assert [m["user"] for m in uk["members"]] == ["carol"]
        gone = admin.delete("/api/v1/sites/uk/members/carol")
        assert gone.json() == {
            "site": "uk",
            "user": "carol",
            "role": "analyst",
            "member": False,
            "changed": True,
        }
        assert admin.delete("/api/v1/sites/uk/members/carol").json()["changed"] is False
        hidden = _problem(carol.get("/api/v1/sites/uk"), 404)
        unknown = _problem(carol.get("/api/v1/sites/nowhere"), 404)
        assert hidden["detail"] == "no site 'uk'"
        assert json.dumps(hidden).replace("'uk'", "X") == json.dumps(unknown).replace(
            "'nowhere'", "X"
        ).replace('"nowhere"', '"uk"')
    refusals = _entries(db, action="site-show", actor="carol")
    assert [e.subject_id for e in refusals] == ["uk"]


def test_site_refusals_over_http(world: World, api: str) -> None:
    db = world.db
    admin_write = _client(api, _token(db, "admin", "write"))
    admin = _client(api, _token(db, "admin", "admin"))
    sam = _client(api, _token(db, "sam", "write"))
    reader = _client(api, _token(db, "carol", "read"))
    with admin_write, admin, sam, reader:
        narrow = _problem(admin_write.post("/api/v1/sites", json={"id": "x", "name": "X"}), 403)
        assert "scope admin" in narrow["detail"]
        assert _problem(sam.post("/api/v1/sites", json={"id": "x", "name": "X"}), 403)
        assert "only read" in _problem(reader.put("/api/v1/sites/fin/members/olga"), 403)["detail"]
        _problem(sam.delete("/api/v1/sites/fin/members/carol"), 403)
        bad = _problem(admin.post("/api/v1/sites", json={"id": "Bad Id", "name": "X"}), 422)
        assert bad["errors"][0]["field"] == "site"
        extra = _problem(admin.post("/api/v1/sites", json={"id": "x", "name": "X", "y": 1}), 422)
        assert extra["errors"][0]["field"] == "y"
        clash = _problem(admin.post("/api/v1/sites", json={"id": "fin", "name": "Other"}), 409)
        assert clash["code"] == "conflict"
        ghost = _problem(admin.put("/api/v1/sites/fin/members/ghost"), 404)
        assert "ghost" in ghost["detail"]
        _problem(admin.put("/api/v1/sites/nowhere/members/olga"), 404)
        typo = _problem(admin.get("/api/v1/sites", params={"siet": "fin"}), 422)
        assert typo["errors"][0]["field"] == "siet"
        _problem(admin.get("/api/v1/sites/fin", params={"x": "1"}), 422)
    assert [v.id for v in sites.list_sites(db, actor="admin")] == ["est", "fin"]
    assert sites.show_site(db, actor="admin", site_id="fin").member_count == 1
    scoped = [e.reason for e in _entries(db, actor="admin", outcome="denied")]
    assert any("scope admin" in r for r in scoped)  # the narrow token's refusal is audited


def curl_lines(heading: str) -> list[str]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    part = text[text.index(heading) :]
    part = part[: part.find("\n## ", 1)]
    (block,) = re.findall(r"^```sh\n(.*?)^```$", part, flags=re.M | re.S)
    return [ln for ln in block.splitlines() if ln.strip()]


def run_curl(lines: list[str], api: str, env: dict[str, str]) -> list[Any]:
    """Each line as a reader pastes it, against the test server; their JSON answers."""
    answers = []
    for line in lines:
        assert "http://127.0.0.1:8000" in line
        real = line.replace("http://127.0.0.1:8000", api)
        run = subprocess.run(
            ["bash", "-c", real],
            env=dict(os.environ, **env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, (line, run.stdout, run.stderr)
        answers.append(json.loads(run.stdout))
    return answers


def test_the_sites_curl_lines_in_the_docs_run_as_written(world: World, api: str) -> None:
    db = world.db
    env = {"ADMIN_TOKEN": _token(db, "admin", "admin"), "TOKEN": _token(db, "carol", "read")}
    lines = curl_lines("## Sites")
    assert len(lines) == 5
    made, put, listed, shown, removed = run_curl(lines, api, env)
    assert made["id"] == "fin-biobank"
    assert put["changed"] is True
    assert "fin-biobank" in [s["id"] for s in listed["items"]]
    assert [m["user"] for m in shown["members"]] == ["carol"]
    assert removed["member"] is False
