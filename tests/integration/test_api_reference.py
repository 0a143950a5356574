"""Projects, users, access requirements, the folder tree, DUO codes, workflows and the queue
through the API, over real HTTP on SQLite and PostgreSQL: the same answers as the CLI's
``--json`` for the same data, the refusals the services decide (403 or "not found"), scopes
of tokens, and bad input as problem documents."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from steward.config import Settings
from steward.db.models import AuditEntry
from steward.db.session import Database
from steward.domain.requests import WORKFLOW
from steward.jobs import service as jobs_service
from steward.services import access, catalog, package_build, packages, reports
from steward.services.kinds import kinds
from steward.services.packages import PackageSpec
from tests.api_calls import client, ok, problem, token
from tests.api_server import serving
from tests.conftest import CliResult, Consortium
from tests.packaging_data import make_dataset

Cli = Callable[..., CliResult]


@pytest.fixture
def api(consortium: Consortium) -> Iterator[str]:
    with serving(consortium.db.settings) as url:
        yield url


def cli_json(cli: Cli, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.code == 0, (args, result.out, result.err)
    return json.loads(result.out)


def _same_words(hidden: dict[str, Any], unknown: dict[str, Any], a: str, b: str) -> None:
    """A hidden thing and one that does not exist read alike (but for the id asked)."""
    assert hidden["detail"].replace(a, "X") == unknown["detail"].replace(b, "X")
    assert hidden["code"] == unknown["code"] == "not-found"


def _subset(user: dict[str, Any]) -> dict[str, Any]:
    return {k: user[k] for k in ("id", "display_name", "email", "is_admin")}


def _denied(c: Consortium, actor: str, action: str) -> list[str]:
    with c.db.read() as s:
        rows = s.scalars(
            select(AuditEntry).where(AuditEntry.actor == actor, AuditEntry.action == action)
        )
        return [r.outcome for r in rows]


# ---- projects ----------------------------------------------------------------------------
def test_projects_are_listed_and_shown_to_members_as_the_cli_does(
    consortium: Consortium, api: str, cli: Cli
) -> None:
    c = consortium
    with client(api, token(c, c.requester, "read")) as http:
        mine = ok(http.get("/api/v1/projects"))
        assert mine == cli_json(cli, "--as", c.requester, "project", "list")
        assert mine == [{"id": "p1", "title": "Project one"}]
        shown = ok(http.get("/api/v1/projects/p1"))
        assert shown["id"] == "p1"
        assert shown["title"] == "Project one"
        assert shown["created_at"]
        assert shown["members"] == cli_json(cli, "--as", c.steward, "project", "members", "p1")
        assert {"user": c.requester, "roles": ["requester"]} in shown["members"]
        unknown_param = problem(http.get("/api/v1/projects", params={"colour": "red"}), 422)
        assert unknown_param["errors"][0]["field"] == "colour"
    with client(api, token(c, c.outsider)) as http:
        assert ok(http.get("/api/v1/projects")) == []
        hidden = problem(http.get("/api/v1/projects/p1"), 404)
        unknown = problem(http.get("/api/v1/projects/p9"), 404)
        _same_words(hidden, unknown, "p1", "p9")
    assert "denied" in _denied(c, c.outsider, "project")  # the hidden one is audited
    access.create_project(c.db, actor=c.admin, project_id="p2", title="Two")
    with client(api, token(c, c.admin, "admin")) as http:
        assert [p["id"] for p in ok(http.get("/api/v1/projects"))] == ["p1", "p2"]
        assert ok(http.get("/api/v1/projects/p2"))["members"] == [
            {"user": c.admin, "roles": ["steward"]}
        ]
    with client(api, token(c, c.admin, "write")) as http:
        # Without the admin scope an administrator is a member of their projects only.
        assert [p["id"] for p in ok(http.get("/api/v1/projects"))] == ["p1", "p2"]
        assert ok(http.get("/api/v1/projects/p2"))["id"] == "p2"  # steward of p2
    with client(api, None) as http:
        problem(http.get("/api/v1/projects"), 401)


def test_creating_projects_takes_an_administrators_admin_token(
    consortium: Consortium, api: str, cli: Cli
) -> None:
    c = consortium
    with client(api, token(c, c.admin, "admin")) as http:
        made = http.post("/api/v1/projects", json={"id": "p2", "title": "Programme two"})
        body = ok(made, 201)
        assert made.headers["location"] == "/api/v1/projects/p2"
        assert body["id"] == "p2"
        assert body["title"] == "Programme two"
        assert body["members"] == [{"user": c.admin, "roles": ["steward"]}]
        again = ok(http.post("/api/v1/projects", json={"id": "p2", "title": "Other"}), 201)
        assert again["title"] == "Programme two"  # as `project create` again: unchanged
        bad = problem(http.post("/api/v1/projects", json={"id": "Bad Name"}), 422)
        assert bad["errors"][0]["field"] == "project"
        assert bad["errors"][0]["value"] == "Bad Name"
        extra = problem(http.post("/api/v1/projects", json={"id": "p3", "colour": 1}), 422)
        assert extra["errors"][0]["field"] == "colour"
        problem(http.post("/api/v1/projects", json={"title": "no id"}), 422)
    assert [p["id"] for p in cli_json(cli, "--as", c.admin, "project", "list")] == ["p1", "p2"]
    with client(api, token(c, c.admin, "write")) as http:
        refused = problem(http.post("/api/v1/projects", json={"id": "p3"}), 403)
        assert refused["errors"][0]["field"] == "scope"
    with client(api, token(c, c.steward, "write")) as http:
        problem(http.post("/api/v1/projects", json={"id": "p3"}), 403)
    with client(api, token(c, c.admin, "read")) as http:
        problem(http.post("/api/v1/projects", json={"id": "p3"}), 403)
    assert "p3" not in [p for p, _ in access.list_projects(c.db, actor=c.admin)]


def test_members_are_given_roles_by_stewards_and_administrators(
    consortium: Consortium, api: str, cli: Cli
) -> None:
    c = consortium
    url = f"/api/v1/projects/p1/members/{c.outsider}"
    with client(api, token(c, c.outsider, "read")) as http:
        problem(http.get("/api/v1/projects/p1"), 404)
    with client(api, token(c, c.steward)) as http:
        given = ok(http.put(url, json={"role": "viewer"}))
        assert given == {"user": c.outsider, "roles": ["viewer"]}
        assert ok(http.put(url, json={"role": "viewer"})) == given  # again: nothing new
        both = ok(http.put(url, json={"role": "reviewer"}))
        assert both == {"user": c.outsider, "roles": ["reviewer", "viewer"]}
        wizard = problem(http.put(url, json={"role": "wizard"}), 422)
        assert wizard["errors"][0]["field"] == "role"
        assert "steward" in wizard["errors"][0]["accepted"]
        nobody = problem(http.put("/api/v1/projects/p1/members/nobody", json={"role": "viewer"}),
                         404)  # fmt: skip
        assert nobody["errors"][0]["field"] == "user"
        problem(http.put(url, json={}), 422)
    listed = cli_json(cli, "--as", c.steward, "project", "members", "p1")
    assert {"user": c.outsider, "roles": ["reviewer", "viewer"]} in listed
    with client(api, token(c, c.outsider, "read")) as http:
        assert ok(http.get("/api/v1/projects/p1"))["id"] == "p1"  # a member now
    with client(api, token(c, c.requester)) as http:
        refused = problem(http.put(url, json={"role": "steward"}), 403)
        assert refused["code"] == "forbidden"
    with client(api, token(c, c.steward, "read")) as http:
        assert "read" in problem(http.put(url, json={"role": "steward"}), 403)["detail"]
    with client(api, token(c, c.admin, "admin")) as http:
        unknown = problem(http.put(url.replace("p1", "p9"), json={"role": "viewer"}), 404)
        assert unknown["errors"][0]["field"] == "project"
        assert ok(http.put(url, json={"role": "analyst"}))["roles"] == [
            "analyst",
            "reviewer",
            "viewer",
        ]
    assert "steward" not in access.list_members(c.db, actor=c.admin, project_id="p1")[0].roles


# ---- users -------------------------------------------------------------------------------
def test_users_see_themselves_and_administrators_see_everyone(
    consortium: Consortium, api: str, cli: Cli
) -> None:
    c = consortium
    with client(api, token(c, c.admin, "admin")) as http:
        everyone = ok(http.get("/api/v1/users"))
        assert everyone == cli_json(cli, "--as", c.admin, "user", "list")
        assert len(everyone) == 8
        assert ok(http.get(f"/api/v1/users/{c.requester}"))["id"] == c.requester
    with client(api, token(c, c.requester, "read")) as http:
        me = ok(http.get("/api/v1/users"))
        assert me == [u for u in everyone if u["id"] == c.requester]
        assert ok(http.get(f"/api/v1/users/{c.requester}")) == me[0]
        hidden = problem(http.get(f"/api/v1/users/{c.requester2}"), 404)
        unknown = problem(http.get("/api/v1/users/nobody"), 404)
        _same_words(hidden, unknown, c.requester2, "nobody")
        problem(http.get("/api/v1/users", params={"all": "1"}), 422)
    assert "denied" in _denied(c, c.requester, "user")
    with client(api, token(c, c.admin, "write")) as http:
        # An administrator's token without the admin scope sees only its owner, as stored.
        only = ok(http.get("/api/v1/users"))
        assert [(u["id"], u["is_admin"]) for u in only] == [(c.admin, True)]
        problem(http.get(f"/api/v1/users/{c.requester}"), 404)


def test_adding_users_takes_an_admin_token(consortium: Consortium, api: str, cli: Cli) -> None:
    c = consortium
    new = {"id": "zoe", "display_name": "Zoe Z", "email": "zoe@example.org"}
    with client(api, token(c, c.admin, "admin")) as http:
        made = http.post("/api/v1/users", json=new)
        assert _subset(ok(made, 201)) == {**new, "is_admin": False}
        assert made.headers["location"] == "/api/v1/users/zoe"
        renamed = ok(http.post("/api/v1/users", json={"id": "zoe", "display_name": "Zoe"}), 201)
        assert _subset(renamed) == {**new, "display_name": "Zoe", "is_admin": False}
        bad = problem(http.post("/api/v1/users", json={"id": "Bad Name"}), 422)
        assert bad["errors"][0]["field"] == "user"
        long = problem(http.post("/api/v1/users", json={"id": "x" * 65}), 422)
        assert long["errors"][0]["field"] == "id"
        problem(http.post("/api/v1/users", json={"id": "ok", "role": "admin"}), 422)
    listed = cli_json(cli, "--as", c.admin, "user", "list")
    assert {**new, "display_name": "Zoe", "is_admin": False} in [_subset(u) for u in listed]
    # an administrator's narrower token hears which scope is missing; anyone else, as on the
    # CLI, that they are not an administrator
    for who, scope, field in ((c.admin, "write", "scope"), (c.steward, "write", "user"),
                              (c.admin, "read", "scope")):  # fmt: skip
        with client(api, token(c, who, scope)) as http:
            refused = problem(http.post("/api/v1/users", json={"id": "yves"}), 403)
            assert refused["errors"][0]["field"] == field
    assert "yves" not in [u.id for u in access.list_users(c.db, actor=c.admin)]


# ---- access requirements and the folder tree ----------------------------------------------
def test_requirements_are_read_by_members_and_added_by_stewards(
    consortium: Consortium, api: str, cli: Cli
) -> None:
    c = consortium
    url = "/api/v1/projects/p1/requirements"
    with client(api, token(c, c.viewer, "read")) as http:
        listed = ok(http.get(url))
    from_cli = cli_json(cli, "--as", c.viewer, "requirement", "list", "p1")
    assert [{k: r[k] for k in from_cli[0]} for r in listed] == from_cli
    assert {r["project_id"] for r in listed} == {"p1"}
    assert [r["name"] for r in listed] == ["Controlled genomes", "Phenotype terms"]
    new = {"name": "Imaging", "kind": "click-wrap", "description": "Sign the DUA",
           "folders": ["imaging/mri", "imaging/ct"]}  # fmt: skip
    with client(api, token(c, c.steward)) as http:
        made = ok(http.post(url, json=new), 201)
        assert made["name"] == "Imaging"
        assert made["kind"] == "click-wrap"
        assert made["folders"] == ["imaging/ct", "imaging/mri"]
        assert made["id"].startswith("ar_")
        secret = problem(http.post(url, json={**new, "kind": "secret"}), 422)
        assert secret["errors"][0]["field"] == "kind"
        assert "controlled" in secret["errors"][0]["accepted"]
        climbing = problem(http.post(url, json={**new, "folders": ["../../etc"]}), 422)
        assert climbing["errors"][0]["field"] == "path"
        problem(http.post(url, json={"kind": "controlled"}), 422)
        problem(http.post("/api/v1/projects/p9/requirements", json=new), 404)
    after = cli_json(cli, "--as", c.viewer, "requirement", "list", "p1")
    assert [r["name"] for r in after] == ["Controlled genomes", "Imaging", "Phenotype terms"]
    with client(api, token(c, c.requester)) as http:
        refused = problem(http.post(url, json={**new, "name": "Mine"}), 403)
        assert refused["code"] == "forbidden"
    with client(api, token(c, c.steward, "read")) as http:
        assert "read" in problem(http.post(url, json={**new, "name": "Mine"}), 403)["detail"]
    with client(api, token(c, c.outsider)) as http:
        # to an outsider the project does not exist: the very words for an unknown one
        hidden = problem(http.get(url), 404)
        unknown = problem(http.get("/api/v1/projects/p9/requirements"), 404)
        assert hidden["detail"] == unknown["detail"].replace("p9", "p1")
    assert "Mine" not in [r["name"] for r in after]
    assert "denied" in _denied(c, c.requester, "add-requirement")


def test_the_folder_tree_is_the_clis_and_folders_are_registered(
    consortium: Consortium, api: str, cli: Cli
) -> None:
    c = consortium
    url = "/api/v1/projects/p1/tree"
    with client(api, token(c, c.requester, "read")) as http:
        assert ok(http.get(url)) == cli_json(cli, "--as", c.requester, "tree", "p1")
    with client(api, token(c, c.steward)) as http:
        made = ok(http.post(url, json={"path": "raw/wgs/batch-3/"}), 201)
        assert made == {"project": "p1", "path": "raw/wgs/batch-3", "requirement": None}
        governed = ok(http.post(url, json={"path": "pheno/extra",
                                           "requirement": "Phenotype terms"}), 201)  # fmt: skip
        assert governed["requirement"] == "Phenotype terms"
        bad = problem(http.post(url, json={"path": "raw/../../etc"}), 422)
        assert bad["errors"][0]["field"] == "path"
        missing = problem(http.post(url, json={"path": "x", "requirement": "Nope"}), 404)
        assert missing["errors"][0]["field"] == "requirement"
        tree = ok(http.get(url))
    assert tree == cli_json(cli, "--as", c.steward, "tree", "p1")
    raw = next(n for n in tree["children"] if n["name"] == "raw")
    batch = raw["children"][0]["children"][0]
    assert (batch["path"], batch["requirement"], batch["inherited"]) == (
        "raw/wgs/batch-3",
        "Controlled genomes",
        True,
    )
    with client(api, token(c, c.requester)) as http:
        problem(http.post(url, json={"path": "mine"}), 403)
    with client(api, token(c, c.outsider, "read")) as http:
        problem(http.get(url), 404)  # an outsider hears the project does not exist
    with client(api, token(c, c.steward, "read")) as http:
        problem(http.post(url, json={"path": "mine"}), 403)
    assert "mine" not in json.dumps(cli_json(cli, "--as", c.steward, "tree", "p1"))


# ---- reference: DUO codes and workflows ---------------------------------------------------
def test_duo_codes_and_workflows_are_the_clis(consortium: Consortium, api: str, cli: Cli) -> None:
    c = consortium
    with client(api, token(c, c.requester, "read")) as http:
        duo = ok(http.get("/api/v1/duo"))
        assert duo == cli_json(cli, "duo", "list")
        assert {"id", "shorthand", "label"} == set(duo[0])
        assert "GRU" in {d["shorthand"] for d in duo}
        shown = ok(http.get("/api/v1/workflows/access-request"))
        assert shown == cli_json(cli, "workflow", "show", "access-request")
        assert shown["mermaid"] == WORKFLOW.mermaid()
        assert shown["initial"] == "draft"
        approve = next(t for t in shown["transitions"] if t["command"] == "approve")
        assert (approve["from"], approve["to"]) == (["submitted"], "approved")
        assert "reviewer" in approve["roles"]
        sla = {s["name"]: s["sla_seconds"] for s in shown["states"]}
        assert sla["submitted"] == 4 * 86400
        every = ok(http.get("/api/v1/workflows"))
        assert {w["name"] for w in every} == {k.workflow.name for k in kinds()}
        assert {"access-request", "package", "share", "dataset"} <= {w["name"] for w in every}
        for w in every:
            assert w == cli_json(cli, "workflow", "show", w["name"])
        unknown = problem(http.get("/api/v1/workflows/dataset-lifecycle"), 422)
        assert unknown["errors"][0]["field"] == "name"
        assert "access-request" in unknown["errors"][0]["accepted"]
        problem(http.get("/api/v1/duo", params={"q": "GRU"}), 422)
        problem(http.get("/api/v1/workflows", params={"name": "x"}), 422)
    with client(api, None) as http:
        problem(http.get("/api/v1/duo"), 401)
        problem(http.get("/api/v1/workflows/package"), 401)


# ---- the queue -----------------------------------------------------------------------------
def test_jobs_show_their_state_and_progress_to_staff_only(
    consortium: Consortium, api: str, cli: Cli, tmp_path: Path, settings: Settings
) -> None:
    c = consortium
    data = make_dataset(tmp_path / "ds")
    spec = PackageSpec(name="cup", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    pkg, _ = packages.create(c.db, settings, actor=c.steward, project=c.project, spec=spec)
    _, action_id = package_build.request_build(c.db, actor=c.steward, package_id=pkg.id)
    with client(api, token(c, c.steward, "read")) as http:
        pending = ok(http.get(f"/api/v1/jobs/{action_id}"))
        assert pending == cli_json(cli, "--as", c.steward, "jobs", "show", action_id)
        assert (pending["state"], pending["subject_id"]) == ("pending", pkg.id)
        assert pending["progress"] is None
        assert [j["id"] for j in ok(http.get("/api/v1/jobs"))] == [action_id]
    drained = cli("--as", c.steward, "worker", "--drain")
    assert drained.code == 0, drained.err
    with client(api, token(c, c.steward, "read")) as http:
        done = ok(http.get(f"/api/v1/jobs/{action_id}"))
        assert done == cli_json(cli, "--as", c.steward, "jobs", "show", action_id)
        assert done["state"] == "done"
        progress = done["progress"]
        assert progress["items_total"] == progress["items_done"] > 0
        assert progress["bytes_total"] == progress["bytes_done"] > 0
        assert progress["finished_at"] is not None
        listed = ok(http.get("/api/v1/jobs", params=[("state", "done"), ("state", "failed")]))
        assert listed == cli_json(
            cli, "--as", c.steward, "jobs", "list", "--state", "done", "--state", "failed"
        )
        assert ok(http.get("/api/v1/jobs", params={"state": "pending"})) == []
        assert [j["id"] for j in ok(http.get("/api/v1/jobs", params={"subject": pkg.id}))] == [
            action_id
        ]
        assert len(ok(http.get("/api/v1/jobs", params={"limit": 1}))) == 1
        bad = problem(http.get("/api/v1/jobs", params={"state": "sleeping"}), 422)
        assert bad["errors"][0]["field"] == "state"
        problem(http.get("/api/v1/jobs", params={"limit": 0}), 422)
        problem(http.get("/api/v1/jobs", params={"kind": "build"}), 422)
        unknown = problem(http.get("/api/v1/jobs/act_nothing"), 404)
    with client(api, token(c, c.requester, "read")) as http:
        assert ok(http.get("/api/v1/jobs")) == []
        hidden = problem(http.get(f"/api/v1/jobs/{action_id}"), 404)
        _same_words(hidden, unknown, action_id, "act_nothing")
    with client(api, token(c, c.admin, "admin")) as http:
        assert ok(http.get(f"/api/v1/jobs/{action_id}"))["id"] == action_id
    assert jobs_service.get(c.db, actor=c.steward, action_id=action_id).state == "done"


# ---- the docs ------------------------------------------------------------------------------
DOC_SECTIONS = (
    "## Projects, members and users",
    "## Tokens, passwords and accounts",
    "## Access requirements and the folder tree",
    "## DUO codes and workflows",
    "## Reports",
    "## The queue: jobs",
)


def test_the_curl_examples_in_the_docs_run_as_written(db: Database, tmp_path: Path) -> None:
    """Every curl line of these sections of docs/api.md, in order, against a real server:
    an administrator's admin token in ADMIN_TOKEN, alice's (no administrator) in TOKEN."""
    import re
    import subprocess

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    access.add_user(db, actor="admin", user_id="alice")
    c = Consortium(db)
    env = dict(os.environ, ADMIN_TOKEN=token(c, "admin", "admin"), TOKEN=token(c, "alice"))
    with serving(db.settings) as api:
        for heading in DOC_SECTIONS:
            body = text[text.index(heading + "\n") + len(heading) :]
            body = body[: body.index("\n## ")]
            (block,) = re.findall(r"^```sh\n(.*?)^```$", body, flags=re.M | re.S)
            lines = [ln for ln in block.splitlines() if ln.strip()]
            assert lines, heading
            for line in lines:
                assert line.startswith("curl -fsS ")
                assert "http://127.0.0.1:8000/" in line
                run = subprocess.run(
                    ["bash", "-c", line.replace("http://127.0.0.1:8000", api)], env=env,
                    cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
                )  # fmt: skip
                assert run.returncode == 0, (line, run.stdout, run.stderr)
                if " -o " not in line:
                    assert isinstance(json.loads(run.stdout), dict | list), line
    members = access.list_members(db, actor="admin", project_id="1kd")
    assert {"user": "carol", "roles": ["requester"]} in [m.model_dump() for m in members]
    tree = catalog.tree(db, actor="alice", project="1kd")
    assert tree.children[0].children[0].children[0].path == "raw/wgs/batch-3"
    header = (tmp_path / "changelog.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == [col.machine_name for col in reports.COLUMNS["changelog"]]
    book = load_workbook(tmp_path / "time-in-state.xlsx", read_only=True)
    first = next(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    assert list(first) == [col.machine_name for col in reports.COLUMNS["time-in-state"]]
