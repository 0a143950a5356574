"""The ``steward`` command end to end, in-process, on a real SQLite file and a real PostgreSQL.

Setup commands (init, users, projects, requirements, folders) are exercised through the CLI
itself; the longer scenarios start from the ``consortium`` fixture to keep the suite quick.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from steward import __version__
from steward.config import Settings
from steward.domain.duo import terms
from steward.domain.requests import WORKFLOW, RequestFields
from steward.services import requests as request_service
from steward.timeutil import utcnow
from tests.conftest import CliResult, Consortium

Cli = Callable[..., CliResult]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No steward.toml or zone from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    for name in ("STEWARD_CONFIG", "STEWARD_TIMEZONE", "STEWARD_USER"):
        monkeypatch.delenv(name, raising=False)


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, f"exit {result.code}\nstdout:\n{result.out}\nstderr:\n{result.err}"
    return result


def data(result: CliResult) -> Any:
    return json.loads(ok(result).out)


def find(node: dict[str, Any], path: str) -> dict[str, Any]:
    if node["path"] == path:
        return node
    for child in node["children"]:
        if path == child["path"] or path.startswith(child["path"] + "/"):
            return find(child, path)
    raise AssertionError(f"{path} not in tree")


# Request histories with fixed timestamps (January: Helsinki is UTC+2), for exact reports.
HISTORY_CSV = """\
request,state,at,title,requester,actor,reason,institution,project_lead,intended_use,datasets,duo_codes,reviewer
EXT-1,draft,2024-01-05T09:00:00+02:00,Diabetes risk,ada,,,Uni A,Prof A,Diabetes,raw/wgs,GRU;HMB,rita
EXT-1,submitted,2024-01-06T08:00:00Z,,,ada,,,,,,,
EXT-1,approved,2024-01-09T08:00:00Z,,,rita,fine,,,,,,
EXT-2,submitted,2024-01-07T10:00:00Z,Statins,bea,,,Uni B,Prof B,Study statins,phenotypes,NPU,rob
EXT-2,returned,2024-01-08T10:00:00Z,,,rob,more detail please,,,,,,
EXT-2,submitted,2024-01-10T10:00:00Z,,,bea,,,,,,,
EXT-2,rejected,2024-01-20T10:00:00Z,,,rob,outside consent,,,,,,
EXT-3,submitted,2024-01-02T00:00:00Z,Late night,ada,,,Uni A,Prof A,Study sleep,raw/wgs,,
"""

HISTORY_JSONL = (
    "\n".join(
        json.dumps(row)
        for row in [
            {
                "request": "J-1",
                "state": "submitted",
                "at": "2024-02-01T12:00:00+00:00",
                "title": "From JSON lines",
                "requester": "bea",
                "institution": "Uni B",
                "project_lead": "Prof B",
                "intended_use": "Research",
                "datasets": ["raw/wgs"],
                "duo_codes": ["GRU", "DUO:0000021"],
            },
            {
                "request": "J-1",
                "state": "approved",
                "at": "2024-02-03T12:00:00+00:00",
                "actor": "rita",
                "reason": "ok",
            },
        ]
    )
    + "\n"
)


@pytest.fixture
def history(consortium: Consortium, cli: Cli, tmp_path: Path) -> dict[str, str]:
    """Import HISTORY_CSV into the consortium; returns external id → request id."""
    path = tmp_path / "history.csv"
    path.write_text(HISTORY_CSV, encoding="utf-8")
    out = data(cli("request", "import", str(path), "--project", "p1", "--as", "sam", "--json"))
    assert out == {"requests": 3, "events": 10, "skipped": 0, "users_created": []}
    rows = data(cli("request", "list", "--as", "sam", "--json"))
    return {r["external_id"]: r["id"] for r in rows}


def new_request(cli: Cli, *extra: str, who: str = "ada", title: str = "Study") -> dict[str, Any]:
    return data(
        cli(
            "request",
            "create",
            "p1",
            "--title",
            title,
            "--institution",
            "Uni",
            "--project-lead",
            "Prof X",
            "--intended-use",
            "Research",
            "--dataset",
            "raw/wgs",
            "--duo",
            "GRU",
            *extra,
            "--as",
            who,
            "--json",
        )
    )


# ---- setup -----------------------------------------------------------------------------------
def test_version(cli: Cli) -> None:
    result = ok(cli("--version"))
    assert result.out.strip() == f"steward {__version__}"


def test_init_creates_database_and_first_admin(cli: Cli, settings: Settings) -> None:
    result = ok(cli("init", "--admin", "root"))
    assert "Database ready" in result.out
    assert "Created administrator root" in result.out
    users = data(cli("user", "list", "--as", "root", "--json"))
    assert users == [
        {
            "id": "root",
            "display_name": "root",
            "email": "",
            "is_admin": True,
            "has_password": False,
            "disabled_at": None,
        }
    ]

    again = data(cli("init", "--admin", "someone-else", "--json"))
    assert again["admin_created"] is None
    assert again["database"] == settings.redacted_database_url()
    assert again["revision"]
    assert [u["id"] for u in data(cli("user", "list", "--as", "root", "--json"))] == ["root"]


def test_init_takes_admin_from_steward_user(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_USER", "zed")
    assert data(cli("init", "--json"))["admin_created"] == "zed"
    assert data(cli("user", "list", "--json"))[0] == {
        "id": "zed",
        "display_name": "zed",
        "email": "",
        "is_admin": True,
        "has_password": False,
        "disabled_at": None,
    }


def test_projects_users_members_requirements_folders(cli: Cli) -> None:
    ok(cli("init", "--admin", "root"))
    assert (
        "Project p1 ready"
        in ok(cli("project", "create", "p1", "--title", "One", "--as", "root")).out
    )
    user = data(
        cli(
            "user",
            "add",
            "ada",
            "--name",
            "Ada L",
            "--email",
            "ada@x.org",
            "--as",
            "root",
            "--json",
        )
    )
    assert user == {
        "id": "ada",
        "display_name": "Ada L",
        "email": "ada@x.org",
        "is_admin": False,
        "has_password": False,
        "disabled_at": None,
    }
    assert "User rita ready" in ok(cli("user", "add", "rita", "--as", "root")).out
    # Running it again updates, never duplicates.
    ok(cli("user", "add", "rita", "--name", "Rita R", "--as", "root"))
    users = data(cli("user", "list", "--as", "root", "--json"))
    assert [u["id"] for u in users] == ["ada", "rita", "root"]
    assert users[1]["display_name"] == "Rita R"

    assert data(
        cli("project", "add-member", "p1", "ada", "requester", "--as", "root", "--json")
    ) == {
        "user": "ada",
        "roles": ["requester"],
    }
    assert (
        "rita in p1: reviewer"
        in ok(cli("project", "add-member", "p1", "rita", "reviewer", "--as", "root")).out
    )
    members = data(cli("project", "members", "p1", "--as", "root", "--json"))
    assert {m["user"]: m["roles"] for m in members} == {
        "ada": ["requester"],
        "rita": ["reviewer"],
        "root": ["steward"],
    }
    assert data(cli("project", "list", "--as", "ada", "--json")) == [{"id": "p1", "title": "One"}]

    req = data(
        cli(
            "requirement",
            "add",
            "p1",
            "Controlled genomes",
            "--folder",
            "raw/wgs",
            "--folder",
            "raw/wes",
            "--description",
            "committee review",
            "--as",
            "root",
            "--json",
        )
    )
    assert (req["name"], req["kind"], req["folders"]) == (
        "Controlled genomes",
        "controlled",
        ["raw/wes", "raw/wgs"],
    )
    out = ok(
        cli(
            "requirement",
            "add",
            "p1",
            "Terms",
            "--kind",
            "click-wrap",
            "--folder",
            "phenotypes",
            "--as",
            "root",
        )
    ).out
    assert "Requirement Terms (click-wrap) on phenotypes" in out
    listed = data(cli("requirement", "list", "p1", "--as", "ada", "--json"))
    assert [(r["name"], r["kind"]) for r in listed] == [
        ("Controlled genomes", "controlled"),
        ("Terms", "click-wrap"),
    ]
    assert (
        "Folder raw/wgs/batch-1 registered in p1"
        in ok(cli("folder", "p1", "raw/wgs/batch-1", "--as", "root")).out
    )
    assert data(
        cli(
            "folder",
            "p1",
            "phenotypes/secret/",
            "--requirement",
            "Controlled genomes",
            "--as",
            "root",
            "--json",
        )
    ) == {"project": "p1", "path": "phenotypes/secret", "requirement": "Controlled genomes"}
    ok(cli("folder", "p1", "results/summary", "--as", "root"))

    tree = data(cli("tree", "p1", "--as", "ada", "--json"))
    assert tree["name"] == "p1"
    assert [c["name"] for c in tree["children"]] == ["phenotypes", "raw", "results"]
    expected = {
        "raw": (None, None, False),
        "raw/wgs": ("Controlled genomes", "controlled", False),
        "raw/wes": ("Controlled genomes", "controlled", False),
        "raw/wgs/batch-1": ("Controlled genomes", "controlled", True),
        "phenotypes": ("Terms", "click-wrap", False),
        "phenotypes/secret": ("Controlled genomes", "controlled", False),
        "results/summary": (None, None, False),
    }
    for path, (name, kind, inherited) in expected.items():
        node = find(tree, path)
        assert (node["requirement"], node["requirement_kind"], node["inherited"]) == (
            name,
            kind,
            inherited,
        ), path

    lines = ok(cli("tree", "p1", "--as", "ada")).out.splitlines()
    assert lines[0].strip() == "p1"

    def line_of(name: str) -> str:
        found = [ln for ln in lines if f" {name}  " in ln]
        assert len(found) == 1, (name, lines)
        return found[0]

    assert "Controlled genomes (controlled)" in line_of("wgs")
    assert "Controlled genomes (inherited)" in line_of("batch-1")
    assert "Terms (click-wrap)" in line_of("phenotypes")
    assert "(open)" in line_of("raw")
    assert "(open)" in line_of("summary")
    # Children are drawn under their parents.
    assert lines.index(line_of("wgs")) < lines.index(line_of("batch-1"))


# ---- the request lifecycle -----------------------------------------------------------------------
def test_request_lifecycle(consortium: Consortium, cli: Cli) -> None:
    draft = new_request(cli, title="Diabetes risk")
    rid = draft["id"]
    assert rid.startswith("req_")
    assert (draft["state"], draft["version"], draft["requester"]) == ("draft", 1, "ada")
    assert draft["duo_codes"] == ["DUO:0000042"]

    edited = data(
        cli("request", "edit", rid, "--title", "Diabetes risk v2", "--as", "ada", "--json")
    )
    assert (edited["title"], edited["state"], edited["version"]) == ("Diabetes risk v2", "draft", 2)

    out = ok(cli("request", "submit", rid, "--as", "ada")).out
    assert f"{rid} submitted: now submitted (version 3)" in out
    view = data(cli("request", "assign-reviewer", rid, "rita", "--as", "sam", "--json"))
    assert (view["reviewer"], view["state"]) == ("rita", "submitted")
    view = data(cli("request", "return", rid, "--reason", "say more", "--as", "rita", "--json"))
    assert (view["state"], view["decision_reason"]) == ("returned", "say more")
    view = data(cli("request", "resubmit", rid, "--as", "ada", "--json"))
    assert view["state"] == "submitted"
    view = data(cli("request", "comment", rid, "Looks complete now", "--as", "rita", "--json"))
    assert view["state"] == "submitted"
    view = data(
        cli("request", "approve", rid, "-r", "fine", "--expires", "365d", "--as", "rita", "--json")
    )
    assert (view["state"], view["decided_by"], view["decision_reason"]) == (
        "approved",
        "rita",
        "fine",
    )
    assert view["expires_at"] is not None
    view = data(cli("request", "revoke", rid, "-r", "agreement breached", "--as", "sam", "--json"))
    assert view["state"] == "revoked"

    detail = data(cli("request", "show", rid, "--as", "ada", "--json"))
    assert [e["type"] for e in detail["timeline"]] == [
        "created",
        "edited",
        "submitted",
        "reviewer_assigned",
        "returned",
        "resubmitted",
        "commented",
        "approved",
        "revoked",
    ]
    assert [e["actor"] for e in detail["timeline"]] == [
        "ada",
        "ada",
        "ada",
        "sam",
        "rita",
        "ada",
        "rita",
        "rita",
        "sam",
    ]
    assert detail["timeline"][6]["reason"] == "Looks complete now"
    assert detail["request"]["version"] == 9
    assert detail["available_actions"] == ["comment"]
    assert set(detail["time_in_state"]) == {"draft", "submitted", "returned", "approved"}

    shown = ok(cli("request", "show", rid, "--as", "ada")).out
    for text in (
        "Diabetes risk v2",
        "revoked",
        "agreement breached",
        "timeline",
        "time in each state",
    ):
        assert text in shown

    # Reject and cancel, on two more requests.
    other = new_request(cli, "--submit", who="bea")
    assert other["state"] == "submitted"
    assert (
        data(cli("request", "reject", other["id"], "-r", "no", "--as", "rob", "--json"))["state"]
        == "rejected"
    )
    third = new_request(cli)
    assert (
        data(cli("request", "cancel", third["id"], "--as", "ada", "--json"))["state"] == "cancelled"
    )

    listed = data(cli("request", "list", "--as", "sam", "--json"))
    assert {r["id"]: r["state"] for r in listed} == {
        rid: "revoked",
        other["id"]: "rejected",
        third["id"]: "cancelled",
    }
    table = ok(cli("request", "list", "--as", "sam")).out
    assert "3 row(s); times in UTC" in table
    for r in listed:
        assert r["id"] in table


def test_staff_files_on_behalf_and_requester_sees_only_own(
    consortium: Consortium, cli: Cli
) -> None:
    mine = new_request(cli, who="ada")
    filed = new_request(cli, "--on-behalf-of", "bea", who="sam")
    assert filed["requester"] == "bea"
    assert [r["id"] for r in data(cli("request", "list", "--as", "ada", "--json"))] == [mine["id"]]
    assert [r["id"] for r in data(cli("request", "list", "--as", "bea", "--json"))] == [filed["id"]]
    assert len(data(cli("request", "list", "--as", "vic", "--json"))) == 2


def test_list_filters(consortium: Consortium, cli: Cli, history: dict[str, str]) -> None:
    def ids(*args: str) -> set[str]:
        return {
            r["external_id"] for r in data(cli("request", "list", *args, "--as", "sam", "--json"))
        }

    assert ids() == {"EXT-1", "EXT-2", "EXT-3"}
    assert ids("--state", "approved", "-s", "rejected") == {"EXT-1", "EXT-2"}
    assert ids("--requester", "bea") == {"EXT-2"}
    assert ids("--reviewer", "rita") == {"EXT-1"}
    assert ids("--project", "p1", "--created-from", "2024-01-05") == {"EXT-1", "EXT-2"}
    assert ids("--created-to", "2024-01-05") == {"EXT-1", "EXT-3"}
    assert ids("--decided-from", "2024-01-10", "--decided-to", "2024-01-31") == {"EXT-2"}
    assert ids("--created-from", "2024-01-05T08:00:00+00:00") == {"EXT-2"}
    assert len(data(cli("request", "list", "--limit", "2", "--as", "sam", "--json"))) == 2


def test_idempotency_keys_and_versions(consortium: Consortium, cli: Cli) -> None:
    args = ("--idempotency-key", "form-42")
    first = new_request(cli, *args)
    again = new_request(cli, *args)
    assert again["id"] == first["id"]
    rid = first["id"]
    a = data(cli("request", "submit", rid, "--idempotency-key", "s-1", "--as", "ada", "--json"))
    b = data(cli("request", "submit", rid, "--idempotency-key", "s-1", "--as", "ada", "--json"))
    assert a["version"] == b["version"] == 2
    approved = data(cli("request", "approve", rid, "--if-version", "2", "--as", "rita", "--json"))
    assert approved["version"] == 3
    detail = data(cli("request", "show", rid, "--as", "sam", "--json"))
    assert [e["type"] for e in detail["timeline"]] == ["created", "submitted", "approved"]
    assert len(data(cli("request", "list", "--as", "sam", "--json"))) == 1


def test_expire_due(consortium: Consortium, cli: Cli) -> None:
    c = consortium
    past = utcnow() - timedelta(days=30)
    fields = RequestFields("Old", "Uni", "Prof", "Use", ("raw/wgs",))
    view = request_service.create(c.db, actor="ada", project="p1", fields=fields, at=past)
    request_service.act(c.db, actor="ada", request_id=view.id, command="submit", at=past)
    request_service.act(
        c.db,
        actor="rita",
        request_id=view.id,
        command="approve",
        at=past + timedelta(hours=1),
        expires_at=past + timedelta(days=10),
    )
    current = new_request(cli, "--submit")
    ok(cli("request", "approve", current["id"], "--expires", "2099-12-31", "--as", "rita"))

    assert data(cli("request", "expire-due", "--as", "sam", "--json")) == {"expired": [view.id]}
    assert (
        data(cli("request", "show", view.id, "--as", "sam", "--json"))["request"]["state"]
        == "expired"
    )
    assert (
        data(cli("request", "show", current["id"], "--as", "sam", "--json"))["request"]["state"]
        == "approved"
    )
    assert "Expired 0 request(s)" in ok(cli("request", "expire-due", "--as", "sam")).out


def test_expire_now(consortium: Consortium, cli: Cli) -> None:
    rid = new_request(cli, "--submit")["id"]
    ok(cli("request", "approve", rid, "--as", "rita"))
    assert (
        data(cli("request", "expire", rid, "-r", "project ended", "--as", "sam", "--json"))["state"]
        == "expired"
    )


# ---- who am I: --as and STEWARD_USER, global flags anywhere -------------------------------------
def test_steward_user_and_as(
    consortium: Consortium, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_request(cli, who="ada")
    new_request(cli, who="bea")
    monkeypatch.setenv("STEWARD_USER", "ada")
    assert [r["requester"] for r in data(cli("request", "list", "--json"))] == ["ada"]
    # --as wins over the environment.
    assert len(data(cli("request", "list", "--json", "--as", "sam"))) == 2
    # The default for new requests is the STEWARD_USER.
    assert new_request(cli, who="ada")["requester"] == "ada"


@pytest.mark.parametrize(
    "argv",
    [
        ["request", "list", "--as", "ada", "--json"],
        ["--as", "ada", "--json", "request", "list"],
        ["request", "--json", "list", "--as=ada"],
        ["--json", "request", "list", "--as", "ada", "--tz", "Europe/Helsinki"],
        ["request", "list", "--tz=Europe/Helsinki", "--json", "--as", "ada"],
    ],
)
def test_global_flags_anywhere(consortium: Consortium, cli: Cli, argv: list[str]) -> None:
    mine = new_request(cli, who="ada")
    new_request(cli, who="bea")
    assert [r["id"] for r in data(cli(*argv))] == [mine["id"]]


# ---- import ---------------------------------------------------------------------------------
def test_import_csv_and_jsonl(consortium: Consortium, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text(HISTORY_CSV, encoding="utf-8")
    out = ok(cli("request", "import", str(path), "-p", "p1", "--as", "sam")).out
    assert "Imported 3 request(s) with 10 event(s); 0 already present were skipped." in out
    again = data(cli("request", "import", str(path), "-p", "p1", "--as", "sam", "--json"))
    assert again == {"requests": 0, "events": 0, "skipped": 3, "users_created": []}

    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(HISTORY_JSONL, encoding="utf-8")
    assert (
        data(cli("request", "import", str(jsonl), "-p", "p1", "--as", "sam", "--json"))["requests"]
        == 1
    )

    rows = {r["external_id"]: r for r in data(cli("request", "list", "--as", "sam", "--json"))}
    assert {k: v["state"] for k, v in rows.items()} == {
        "EXT-1": "approved",
        "EXT-2": "rejected",
        "EXT-3": "submitted",
        "J-1": "approved",
    }
    assert rows["EXT-1"]["created_at"].startswith("2024-01-05T07:00:00")
    assert rows["EXT-1"]["duo_codes"] == ["DUO:0000042", "DUO:0000006"]
    assert rows["J-1"]["duo_codes"] == ["DUO:0000042", "DUO:0000021"]
    assert rows["EXT-2"]["decision_reason"] == "outside consent"
    detail = data(cli("request", "show", rows["EXT-2"]["id"], "--as", "sam", "--json"))
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in detail["timeline"]] == [
        (None, "draft", "bea"),
        ("draft", "submitted", "bea"),
        ("submitted", "returned", "rob"),
        ("returned", "submitted", "bea"),
        ("submitted", "rejected", "rob"),
    ]


def test_import_creates_missing_users_on_request(
    consortium: Consortium, cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "new.tsv"
    path.write_text(
        "request\tstate\tat\ttitle\trequester\n"
        "N-1\tsubmitted\t2024-03-01T10:00:00+01:00\tNewcomer\tnina\n",
        encoding="utf-8",
    )
    out = data(
        cli("request", "import", str(path), "-p", "p1", "--create-users", "--as", "sam", "--json")
    )
    assert out == {"requests": 1, "events": 2, "skipped": 0, "users_created": ["nina"]}
    assert [r["title"] for r in data(cli("request", "list", "--as", "nina", "--json"))] == [
        "Newcomer"
    ]


def test_import_assume_tz(consortium: Consortium, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "naive.csv"
    path.write_text(
        "request,state,at,title,requester\nL-1,submitted,2024-06-01 12:00:00,Local time,ada\n",
        encoding="utf-8",
    )
    ok(
        cli(
            "request",
            "import",
            str(path),
            "-p",
            "p1",
            "--assume-tz",
            "Europe/Helsinki",
            "--as",
            "sam",
        )
    )
    (row,) = data(cli("request", "list", "--as", "sam", "--json"))
    assert row["created_at"].startswith("2024-06-01T09:00:00")  # summer: UTC+3


# ---- reports -----------------------------------------------------------------------------------
def records(result: CliResult) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(ok(result).out)))


def test_report_tracking(consortium: Consortium, cli: Cli, history: dict[str, str]) -> None:
    rows = {r["request"]: r for r in records(cli("report", "tracking", "-f", "csv", "--as", "sam"))}
    one, two = rows[history["EXT-1"]], rows[history["EXT-2"]]
    assert (one["state"], one["requester"], one["reviewer"], one["datasets"]) == (
        "approved",
        "ada",
        "rita",
        "raw/wgs",
    )
    assert one["created"] == "2024-01-05T07:00:00+00:00"
    # Total duration: from the first submission to the decision.
    assert float(one["total_duration_seconds"]) == 3 * 86400
    assert float(two["total_duration_seconds"]) == 13 * 86400
    assert float(rows[history["EXT-3"]]["total_duration_seconds"]) > 300 * 86400  # still open

    table = ok(cli("report", "tracking", "--as", "sam")).out
    assert "tracking" in table
    assert "Diabetes risk" in table
    assert "3d 0h" in table
    assert "13d 0h" in table
    assert "3 row(s); times in UTC" in table

    as_json = data(cli("report", "tracking", "--format", "json", "--as", "sam"))
    assert {r["request"] for r in as_json} == set(history.values())
    assert next(r for r in as_json if r["request"] == history["EXT-1"])["datasets"] == ["raw/wgs"]


def test_report_filters_and_visibility(
    consortium: Consortium, cli: Cli, history: dict[str, str]
) -> None:
    approved = records(cli("report", "tracking", "-f", "csv", "--state", "approved", "--as", "sam"))
    assert [r["request"] for r in approved] == [history["EXT-1"]]
    # A requester's reports only cover their own requests.
    mine = records(cli("report", "tracking", "-f", "csv", "--as", "bea"))
    assert [r["request"] for r in mine] == [history["EXT-2"]]


def test_report_changelog(consortium: Consortium, cli: Cli, history: dict[str, str]) -> None:
    rows = records(cli("report", "changelog", "-f", "csv", "--as", "sam"))
    two = [r for r in rows if r["request"] == history["EXT-2"]]
    assert [(r["order"], r["from_state"], r["to_state"], r["actor"]) for r in two] == [
        ("1", "", "draft", "bea"),
        ("2", "draft", "submitted", "bea"),
        ("3", "submitted", "returned", "rob"),
        ("4", "returned", "submitted", "bea"),
        ("5", "submitted", "rejected", "rob"),
    ]
    assert [r["time_in_from_state_seconds"] for r in two] == [
        "",
        "0.0",
        "86400.0",
        "172800.0",
        "864000.0",
    ]
    assert [r["time_in_to_state_seconds"] for r in two] == [
        "0.0",
        "86400.0",
        "172800.0",
        "864000.0",
        "",
    ]
    assert [r["current"] for r in two] == ["False", "False", "False", "False", "True"]
    assert two[2]["reason"] == "more detail please"
    table = ok(cli("report", "changelog", "--as", "sam")).out
    assert "changelog" in table
    assert "10d 0h" in table


def test_report_screen_shows_a_limited_number_of_rows(
    consortium: Consortium, cli: Cli, history: dict[str, str]
) -> None:
    """On screen a report stops after --limit rows and says how many it has; files and JSON
    hold every row."""
    every = records(cli("report", "changelog", "-f", "csv", "--as", "sam"))
    assert len(every) > 3
    shown = ok(cli("report", "changelog", "--limit", "3", "--as", "sam")).out
    assert f"the first 3 of {len(every)} rows" in shown
    assert every[0]["request"] in shown
    assert every[-1]["request"] not in shown
    full = ok(cli("report", "changelog", "--limit", "0", "--as", "sam")).out
    assert f"{len(every)} row(s)" in full
    assert every[-1]["request"] in full
    as_json = data(cli("report", "changelog", "--limit", "3", "--format", "json", "--as", "sam"))
    assert len(as_json) == len(every)
    refused = cli("report", "changelog", "--limit", "-1", "--as", "sam")
    assert refused.code == 2


def test_report_changelog_times_are_exact(
    consortium: Consortium, cli: Cli, history: dict[str, str]
) -> None:
    """Each transition's time is the event's own timestamp, to the second."""
    rows = records(cli("report", "changelog", "-f", "csv", "--as", "sam"))
    one = [r["at"] for r in rows if r["request"] == history["EXT-1"]]
    assert one == [
        "2024-01-05T07:00:00+00:00",
        "2024-01-06T08:00:00+00:00",
        "2024-01-09T08:00:00+00:00",
    ]
    table = ok(cli("report", "changelog", "--as", "sam", "--state", "approved")).out
    assert "2024-01-05 07:00" in table


def test_report_time_in_state(consortium: Consortium, cli: Cli, history: dict[str, str]) -> None:
    rows = {
        r["state"]: r for r in records(cli("report", "time-in-state", "-f", "csv", "--as", "sam"))
    }
    assert list(rows) == [s.name for s in WORKFLOW.states if not s.terminal]
    sub = rows["submitted"]
    # Stays in submitted: EXT-1 3d, EXT-2 1d and 10d, EXT-3 still waiting (ongoing).
    assert (sub["count"], sub["ongoing"]) == ("4", "1")
    assert float(sub["sla_seconds"]) == 4 * 86400
    assert sub["over_sla"] == "2"
    ret = rows["returned"]
    assert (ret["count"], ret["ongoing"], ret["over_sla"]) == ("1", "0", "0")
    assert float(ret["median_seconds"]) == float(ret["max_seconds"]) == 2 * 86400
    assert rows["draft"]["sla_seconds"] == ""
    table = ok(cli("report", "time-in-state", "--as", "sam")).out
    assert "submitted" in table
    assert "14d 0h" in table  # the returned state's SLA


def test_report_sla(consortium: Consortium, cli: Cli, history: dict[str, str]) -> None:
    rows = records(cli("report", "sla", "-f", "csv", "--as", "sam"))
    assert [(r["request"], r["state"]) for r in rows] == [(history["EXT-3"], "submitted")]
    row = rows[0]
    assert float(row["sla_seconds"]) == 4 * 86400
    assert float(row["over_by_seconds"]) == pytest.approx(
        float(row["in_state_for_seconds"]) - 4 * 86400, abs=1
    )
    assert row["since"] == "2024-01-02T00:00:00+00:00"
    table = ok(cli("report", "sla", "--as", "sam")).out
    assert "Late night" in table
    assert "1 row(s)" in table


@pytest.mark.parametrize("name", ["tracking", "changelog", "time-in-state", "sla"])
def test_report_files(
    consortium: Consortium, cli: Cli, history: dict[str, str], tmp_path: Path, name: str
) -> None:
    expected = records(cli("report", name, "-f", "csv", "--as", "sam"))
    header = list(expected[0])

    csv_path = tmp_path / "out" / f"{name}.csv"
    csv_path.parent.mkdir()  # --output never creates folders
    result = ok(cli("report", name, "--format", "csv", "--output", str(csv_path), "--as", "sam"))
    assert f"Wrote {len(expected)} row(s) to {csv_path}" in result.out
    written = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert list(written[0]) == header
    assert len(written) == len(expected)

    json_path = tmp_path / f"{name}.json"
    info = data(cli("report", name, "-f", "json", "-o", str(json_path), "--as", "sam", "--json"))
    assert info == {"report": name, "rows": len(expected), "output": str(json_path)}
    as_json = json.loads(json_path.read_text(encoding="utf-8"))
    assert len(as_json) == len(expected)
    assert list(as_json[0]) == header

    xlsx_path = tmp_path / f"{name}.xlsx"
    ok(cli("report", name, "-f", "xlsx", "-o", str(xlsx_path), "--as", "sam"))
    book = load_workbook(xlsx_path, read_only=True)
    try:
        sheet = book.active
        assert sheet is not None
        cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    assert cells[0] == header
    assert len(cells) == len(expected) + 1
    assert not list(tmp_path.glob("**/*.part"))


# ---- time zones ---------------------------------------------------------------------------------
def test_tz_changes_displayed_times(
    consortium: Consortium, cli: Cli, history: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = history["EXT-1"]
    utc = ok(cli("request", "list", "--state", "approved", "--as", "sam")).out
    hel = ok(
        cli("request", "list", "--state", "approved", "--as", "sam", "--tz", "Europe/Helsinki")
    ).out
    assert "2024-01-05 07:00" in utc
    assert "times in UTC" in utc
    assert "2024-01-05 09:00" in hel
    assert "2024-01-05 07:00" not in hel
    assert "times in Europe/Helsinki" in hel

    shown = ok(cli("request", "show", rid, "--tz", "Europe/Helsinki", "--as", "sam")).out
    assert "2024-01-09 10:00" in shown  # approved at 08:00 UTC

    row = next(
        r
        for r in records(
            cli("report", "tracking", "-f", "csv", "--tz", "Europe/Helsinki", "--as", "sam")
        )
        if r["request"] == rid
    )
    assert row["created"] == "2024-01-05T09:00:00+02:00"
    assert row["last_change"] == "2024-01-09T10:00:00+02:00"

    # The zone can also come from the settings; --tz wins over them.
    monkeypatch.setenv("STEWARD_TIMEZONE", "America/New_York")
    assert "2024-01-05 02:00" in ok(cli("request", "list", "-s", "approved", "--as", "sam")).out
    assert (
        "2024-01-05 07:00"
        in ok(cli("request", "list", "-s", "approved", "--as", "sam", "--tz", "UTC")).out
    )


def test_tz_sets_the_day_of_date_filters(consortium: Consortium, cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    # 23:30 UTC on 5 January is already 6 January in Helsinki.
    path.write_text(
        "request,state,at,title,requester\nLATE,draft,2024-01-05T23:30:00Z,Late,ada\n",
        encoding="utf-8",
    )
    ok(cli("request", "import", str(path), "-p", "p1", "--as", "sam"))
    base = (
        "request",
        "list",
        "--created-from",
        "2024-01-05",
        "--created-to",
        "2024-01-05",
        "--as",
        "sam",
        "--json",
    )
    assert len(data(cli(*base))) == 1
    assert data(cli(*base, "--tz", "Europe/Helsinki")) == []


# ---- reference: workflow and DUO ----------------------------------------------------------------
def test_workflow_show(cli: Cli) -> None:
    table = ok(cli("workflow", "show", "access-request")).out
    for state in WORKFLOW.states:
        assert state.name in table
    for command in WORKFLOW.commands:
        assert command in table
    assert "4d 0h" in table  # submitted's SLA
    assert "```mermaid" in table

    mermaid = ok(cli("workflow", "show", "access-request", "--mermaid")).out
    assert mermaid.strip() == WORKFLOW.mermaid()
    assert mermaid.startswith("stateDiagram-v2\n")
    assert "    submitted --> approved: approve" in mermaid
    assert "    [*] --> draft" in mermaid

    doc = data(cli("workflow", "show", "access-request", "--json"))
    assert doc["initial"] == "draft"
    assert [s["name"] for s in doc["states"]] == list(WORKFLOW.state_names)
    assert {s["name"]: s["sla_seconds"] for s in doc["states"]}["submitted"] == 4 * 86400
    assert [t["command"] for t in doc["transitions"]] == [
        WORKFLOW.create.command,
        *(t.command for t in WORKFLOW.transitions),
    ]
    approve = next(t for t in doc["transitions"] if t["command"] == "approve")
    assert approve["from"] == ["submitted"]
    assert approve["to"] == "approved"
    assert "reviewer" in approve["roles"]
    assert "requester" not in approve["roles"]
    assert doc["mermaid"] == WORKFLOW.mermaid()


def test_duo_list(cli: Cli) -> None:
    table = ok(cli("duo", "list")).out
    assert "general research use" in table
    listed = data(cli("duo", "list", "--json"))
    assert [(d["id"], d["shorthand"]) for d in listed] == [
        (t.id, t.shorthand) for t in terms().values()
    ]
    assert {"id": "DUO:0000042", "shorthand": "GRU", "label": "general research use"} in listed


# ---- demo ---------------------------------------------------------------------------------------
def test_demo_twice_creates_nothing_new(cli: Cli) -> None:
    first = data(cli("demo", "--json"))
    assert {k: first[k] for k in ("project", "created", "total")} == {
        "project": "demo",
        "created": 60,
        "total": 60,
    }
    assert first["package"]["state"] == "built"
    assert first["share"]["state"] == "succeeded"
    assert Path(first["report"]).is_file()
    listed = data(cli("request", "list", "--project", "demo", "--as", "coord-sam", "--json"))
    events = data(cli("report", "changelog", "-p", "demo", "-f", "json", "--as", "coord-sam"))
    assert len(listed) == 60
    assert {r["state"] for r in listed} == set(WORKFLOW.state_names)

    second = ok(cli("demo"))
    assert "Demo project demo: 60 requests (0 new)" in second.out
    assert "tracking" in second.out
    assert "time-in-state" in second.out
    assert "sla-breaches" in second.out
    again = data(cli("request", "list", "--project", "demo", "--as", "coord-sam", "--json"))
    assert sorted(r["id"] for r in again) == sorted(r["id"] for r in listed)
    assert [(r["id"], r["version"]) for r in again] == [(r["id"], r["version"]) for r in listed]
    assert len(
        data(cli("report", "changelog", "-p", "demo", "-f", "json", "--as", "coord-sam"))
    ) == len(events)
    third = data(cli("demo", "--json"))
    for kind in ("package", "share"):  # the same package and share, untouched
        assert (third[kind]["id"], third[kind]["version"]) == (
            first[kind]["id"],
            first[kind]["version"],
        )
    assert "Data package demo-cohort" in second.out


def test_values_in_tables_are_shown_as_they_are_never_as_markup(cli: Cli) -> None:
    """A title or name with brackets (Rich's markup) is text: shown whole, never styled, and
    a stray closing tag is no error."""
    ok(cli("init", "--admin", "root"))
    title = "[/x] [bold]Gut[/bold] [link=https://evil.example]click[/link]"
    ok(cli("project", "create", "p1", "--title", title, "--as", "root"))
    listed = ok(cli("project", "list", "--as", "root"))
    assert "[/x]" in listed.out
    assert "[bold]Gut[/bold]" in listed.out
    ok(cli("user", "add", "ada", "--name", "[red]Ada[/red]", "--as", "root"))
    assert "[red]Ada[/red]" in ok(cli("user", "list", "--as", "root")).out
