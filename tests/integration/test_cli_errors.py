"""Errors through the CLI: exit codes, messages for people, problem+json with --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from steward.errors import (
    ConfigurationError,
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    StewardError,
    Unauthenticated,
    ValidationFailed,
)
from tests.conftest import CliResult, Consortium

Cli = Callable[..., CliResult]
PROBLEM_KEYS = set(StewardError("x").as_problem())


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("STEWARD_CONFIG", "STEWARD_TIMEZONE", "STEWARD_USER"):
        monkeypatch.delenv(name, raising=False)


def create(cli: Cli, *extra: str, who: str = "ada") -> str:
    result = cli(
        "request",
        "create",
        "p1",
        "--title",
        "Study",
        "--institution",
        "Uni",
        "--project-lead",
        "Prof",
        "--intended-use",
        "Research",
        "-d",
        "raw/wgs",
        *extra,
        "--as",
        who,
        "--json",
    )
    assert result.code == 0, result.err
    return str(json.loads(result.out)["id"])


def problem(result: CliResult) -> dict[str, Any]:
    """The problem+json document a --json error prints: alone on stdout, nothing on stderr."""
    doc = json.loads(result.out)
    assert isinstance(doc, dict)
    assert set(doc) == PROBLEM_KEYS
    assert result.err == ""
    return doc


def assert_problem(result: CliResult, cls: type[StewardError]) -> dict[str, Any]:
    doc = problem(result)
    shape = cls("x").as_problem()
    for key in ("type", "title", "status", "code"):
        assert doc[key] == shape[key], (key, doc)
    assert doc["detail"]
    assert result.code == cls.exit_code
    for err in doc["errors"]:
        assert set(err) <= {"message", "field", "row", "value", "accepted"}
        assert err["message"]
    return doc


# ---- exit codes and messages ----------------------------------------------------------------
def test_not_found(consortium: Consortium, cli: Cli) -> None:
    result = cli("request", "show", "req_nope", "--as", "sam")
    assert result.code == 1
    assert result.out == ""
    assert "error: no access request 'req_nope'" in result.err
    doc = assert_problem(cli("request", "show", "req_nope", "--as", "sam", "--json"), NotFound)
    assert doc["errors"] == [
        {"message": "unknown request", "field": "request", "value": "req_nope"}
    ]
    assert doc["status"] == 404


def test_forbidden(consortium: Consortium, cli: Cli) -> None:
    rid = create(cli, "--submit")
    result = cli("request", "approve", rid, "--as", "ada")
    assert result.code == 1
    assert "ada may not approve" in result.err
    doc = assert_problem(cli("request", "approve", rid, "--as", "ada", "--json"), Forbidden)
    assert doc["status"] == 403
    assert doc["errors"][0]["field"] == "role"
    # Nobody decides on their own request, whatever their roles.
    own = create(cli, "--submit", who="sam")
    doc = assert_problem(cli("request", "approve", own, "--as", "sam", "--json"), Forbidden)
    assert "own request" in doc["detail"]
    # Outsiders see nothing of the project; requesters see only their own requests, and of
    # anyone else's they hear what they would hear of an id that does not exist.
    outside = assert_problem(cli("tree", "p1", "--as", "olga", "--json"), NotFound)
    unknown = assert_problem(cli("tree", "p9", "--as", "olga", "--json"), NotFound)
    assert outside["detail"] == unknown["detail"].replace("p9", "p1")
    hidden = assert_problem(cli("request", "show", rid, "--as", "bea", "--json"), NotFound)
    unknown = assert_problem(cli("request", "show", "req_x", "--as", "bea", "--json"), NotFound)
    assert hidden["detail"] == unknown["detail"].replace("req_x", rid)
    assert "ada" not in json.dumps(hidden)
    assert_problem(cli("user", "add", "zoe", "--as", "sam", "--json"), Forbidden)


def test_invalid_transition(consortium: Consortium, cli: Cli) -> None:
    rid = create(cli)
    result = cli("request", "approve", rid, "--as", "rita")
    assert result.code == 1
    assert "cannot approve: the access-request is draft; allowed now:" in result.err
    doc = assert_problem(
        cli("request", "approve", rid, "--as", "rita", "--json"), InvalidTransition
    )
    assert doc["status"] == 409
    assert doc["errors"][0]["value"] == "draft"
    assert "submit" in doc["errors"][0]["accepted"]
    assert cli("request", "cancel", rid, "--as", "ada").code == 0
    doc = assert_problem(cli("request", "submit", rid, "--as", "ada", "--json"), InvalidTransition)
    assert "cancelled" in doc["detail"]


def test_conflicts(consortium: Consortium, cli: Cli) -> None:
    rid = create(cli)
    result = cli("request", "submit", rid, "--if-version", "7", "--as", "ada")
    assert result.code == 1
    assert "version 1, not 7" in result.err
    doc = assert_problem(
        cli("request", "submit", rid, "--if-version", "7", "--as", "ada", "--json"), Conflict
    )
    assert doc["errors"][0] == {
        "message": "stale version",
        "field": "version",
        "value": "7",
        "accepted": "1",
    }
    # One idempotency key, two different commands.
    assert cli("request", "submit", rid, "--idempotency-key", "k1", "--as", "ada").code == 0
    doc = assert_problem(
        cli("request", "cancel", rid, "--idempotency-key", "k1", "--as", "ada", "--json"), Conflict
    )
    assert doc["errors"][0]["field"] == "idempotency_key"


def test_who_are_you(consortium: Consortium, cli: Cli) -> None:
    result = cli("request", "list")
    assert result.code == 2
    assert "--as USER" in result.err
    assert "STEWARD_USER" in result.err
    doc = assert_problem(cli("request", "list", "--json"), Unauthenticated)
    assert doc["status"] == 401
    doc = assert_problem(cli("request", "list", "--as", "nobody", "--json"), Unauthenticated)
    assert "steward user add nobody" in doc["detail"]


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["request", "list", "--created-from", "2024-13-01"], "created_from", "2024-13-01"),
        (["request", "list", "--decided-to", "last week"], "decided_to", "last week"),
        (["report", "tracking", "--created-to", "31/12/2024"], "created_to", "31/12/2024"),
        (["request", "list", "--tz", "Mars/Olympus_Mons"], "tz", "Mars/Olympus_Mons"),
        (["report", "sla", "--tz", "CEST+1"], "tz", "CEST+1"),
        (["request", "list", "--state", "pending"], "state", "pending"),
        (["report", "tracking", "--format", "pdf"], "format", "pdf"),
        (["report", "tracking", "-f", "xlsx"], "output", None),
        (["workflow", "show", "dataset-lifecycle"], "name", "dataset-lifecycle"),
        (["project", "add-member", "p1", "ada", "wizard"], "role", "wizard"),
        (["user", "add", "Bad Name"], "user", "Bad Name"),
        (["folder", "p1", "raw/../../etc"], "path", "raw/../../etc"),
        (["requirement", "add", "p1", "Secret", "--kind", "secret"], "kind", "secret"),
    ],
)
def test_validation_errors(
    consortium: Consortium, cli: Cli, argv: list[str], field: str, value: str | None
) -> None:
    result = cli(*argv, "--as", "sam")
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("error: ")
    assert "Traceback" not in result.err
    doc = assert_problem(cli(*argv, "--as", "sam", "--json"), ValidationFailed)
    assert doc["status"] == 422
    assert doc["errors"][0]["field"] == field
    assert doc["errors"][0].get("value") == value


def test_request_input_errors(consortium: Consortium, cli: Cli) -> None:
    bad_duo = ("request", "create", "p1", "--title", "T", "--duo", "GRU", "--duo", "XYZ")
    result = cli(*bad_duo, "--duo", "DUO:0009999", "--as", "ada")
    assert result.code == 2
    assert "malformed DUO code" in result.err
    assert "unknown DUO code" in result.err
    doc = assert_problem(cli(*bad_duo, "--as", "ada", "--json"), ValidationFailed)
    assert doc["errors"] == [
        {
            "message": "malformed DUO code",
            "field": "duo_codes",
            "value": "XYZ",
            "accepted": "DUO:NNNNNNN (7 digits) or a shorthand such as GRU, HMB, NPU",
        }
    ]
    doc = assert_problem(
        cli("request", "create", "p1", "--title", "T", "-d", "raw/nope", "--as", "ada", "--json"),
        ValidationFailed,
    )
    assert doc["errors"][0]["field"] == "datasets"
    assert "steward tree p1" in doc["errors"][0]["accepted"]

    # Every missing field is listed at once, not just the first.
    bare = cli("request", "create", "p1", "--title", "Bare", "--as", "ada", "--json")
    rid = json.loads(bare.out)["id"]
    doc = assert_problem(cli("request", "submit", rid, "--as", "ada", "--json"), ValidationFailed)
    assert [e["field"] for e in doc["errors"]] == [
        "institution",
        "project_lead",
        "intended_use",
        "datasets",
    ]
    submitted = create(cli, "--submit")
    doc = assert_problem(
        cli("request", "reject", submitted, "--as", "rita", "--json"), ValidationFailed
    )
    assert doc["errors"] == [{"message": "required", "field": "reason"}]
    for expires in ("2001-01-01", "someday"):
        result = cli("request", "approve", submitted, "--expires", expires, "--as", "rita")
        assert result.code == 2, expires
    assert cli("request", "assign-reviewer", submitted, "ada", "--as", "sam").code == 2
    assert cli("request", "assign-reviewer", submitted, "vic", "--as", "sam").code == 2


def test_missing_things_are_not_found(consortium: Consortium, cli: Cli) -> None:
    assert_problem(cli("tree", "nope", "--as", "admin", "--json"), NotFound)
    assert_problem(
        cli("project", "add-member", "p1", "ghost", "viewer", "--as", "sam", "--json"), NotFound
    )
    doc = assert_problem(
        cli("folder", "p1", "raw/x", "--requirement", "Nope", "--as", "sam", "--json"), NotFound
    )
    assert doc["errors"][0]["field"] == "requirement"


# ---- usage errors (Typer's parser) -----------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["request", "list", "--bogus"], "No such option: --bogus"),
        (["request", "show"], "Missing argument"),
        (["request", "list", "--limit", "many"], "Invalid value for '--limit'"),
        (["request", "frobnicate"], "No such command"),
        (["report", "tracking", "--output"], "requires an argument"),
    ],
)
def test_usage_errors(consortium: Consortium, cli: Cli, argv: list[str], message: str) -> None:
    result = cli(*argv, "--as", "sam")
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    doc = assert_problem(cli(*argv, "--as", "sam", "--json"), ValidationFailed)
    assert message in doc["detail"]


def test_bare_group_prints_help(cli: Cli) -> None:
    result = cli("request")
    assert result.code == 2
    assert "Usage:" in result.out + result.err
    assert "assign-reviewer" in result.out + result.err


# ---- settings ------------------------------------------------------------------------------------
def test_bad_setting_is_named(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_CONNECT_TIMEOUT", "soon")
    result = cli("request", "list", "--as", "ada")
    assert result.code == 1
    assert "STEWARD_CONNECT_TIMEOUT" in result.err
    doc = assert_problem(cli("request", "list", "--as", "ada", "--json"), ConfigurationError)
    assert doc["errors"][0]["field"] == "STEWARD_CONNECT_TIMEOUT"


def test_bad_timezone_setting_is_named(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong zone in the settings names the setting, not the --tz option."""
    monkeypatch.setenv("STEWARD_TIMEZONE", "Mars/Olympus_Mons")
    result = cli("request", "list", "--as", "ada", "--json")
    assert result.code != 0
    doc = problem(result)
    assert [e["field"] for e in doc["errors"]] == ["STEWARD_TIMEZONE"]


def test_unusable_database_url(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_DATABASE_URL", "not a url")
    result = cli("init")
    assert result.code == 1
    assert "STEWARD_DATABASE_URL" in result.err
    doc = assert_problem(cli("request", "list", "--as", "ada", "--json"), ConfigurationError)
    assert doc["errors"][0]["field"] == "STEWARD_DATABASE_URL"


# ---- import files -------------------------------------------------------------------------------
HEADER = "request,state,at,title,requester\n"
GOOD = "A,draft,2024-01-01T00:00:00Z,T,ada\n"


def import_file(cli: Cli, path: Path, *extra: str) -> CliResult:
    return cli("request", "import", str(path), "--project", "p1", "--as", "sam", *extra)


@pytest.mark.parametrize(
    ("name", "content", "line", "text"),
    [
        (
            "latin1.csv",
            (HEADER + GOOD + "B,draft,2024-01-01T00:00:00Z,Caf\xe9,ada\n").encode("latin-1"),
            3,
            "not UTF-8",
        ),
        (
            "cut.csv",
            (HEADER + GOOD + "A,submitted,2024-01-0").encode(),
            3,
            "truncated",
        ),
        (
            "cut-quote.csv",
            (HEADER + GOOD + 'A,submitted,2024-01-02T00:00:00Z,"A long ti').encode(),
            3,
            "truncated",
        ),
        (
            "cut.jsonl",
            (
                b'{"request": "A", "state": "draft", "at": "2024-01-01T00:00:00Z", '
                b'"title": "T", "requester": "ada"}\n'
                b'{"request": "A", "state": "subm'
            ),
            2,
            "truncated",
        ),
        (
            "utf16.jsonl",
            '{"request": "A", "state": "draft"}\n'.encode("utf-16"),
            1,
            "not UTF-8",
        ),
        (
            "jumps.csv",
            (HEADER + GOOD + "A,approved,2024-01-02T00:00:00Z,,\n").encode(),
            3,
            "cannot go from draft to approved",
        ),
        (
            "duo.csv",
            b"request,state,at,title,requester,duo_codes\nA,draft,2024-01-01T00:00:00Z,T,ada,GRU;XX\n",
            2,
            "malformed DUO code",
        ),
        ("naive.csv", (HEADER + "A,draft,2024-01-01 09:00,T,ada\n").encode(), 2, "no UTC offset"),
        (
            "columns.csv",
            b"request,state,when\nA,draft,2024-01-01T00:00:00Z\n",
            1,
            "unknown columns",
        ),
    ],
)
def test_bad_import_files(
    consortium: Consortium,
    cli: Cli,
    tmp_path: Path,
    name: str,
    content: bytes,
    line: int,
    text: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = import_file(cli, path)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert f"line {line}" in result.err
    assert text in result.err
    doc = assert_problem(import_file(cli, path, "--json"), ValidationFailed)
    assert line in [e.get("row") for e in doc["errors"]]
    # All or nothing: not one request was imported.
    listed = cli("request", "list", "--as", "sam", "--json")
    assert json.loads(listed.out) == []


def test_naive_timestamp_error_names_the_right_option(
    consortium: Consortium, cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "naive.csv"
    path.write_text(HEADER + "A,draft,2024-01-01 09:00,T,ada\n", encoding="utf-8")
    result = import_file(cli, path)
    assert result.code == 2
    assert "--assume-tz" in result.err
    assert import_file(cli, path, "--assume-tz", "Europe/Helsinki").code == 0


def test_import_file_problems_are_all_listed(
    consortium: Consortium, cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "many.csv"
    path.write_text(
        HEADER
        + GOOD
        + "B,limbo,2024-01-01T00:00:00Z,T,ada\n"
        + "C,draft,yesterday,T,ada\n"
        + ",draft,2024-01-01T00:00:00Z,T,ada\n"
        + GOOD,
        encoding="utf-8",
    )
    doc = assert_problem(import_file(cli, path, "--json"), ValidationFailed)
    assert [(e.get("row"), e.get("field")) for e in doc["errors"]] == [
        (3, "state"),
        (4, "at"),
        (5, "request"),
        (6, None),
    ]
    assert "duplicate of line 2" in doc["errors"][3]["message"]


def test_import_refuses_unknown_users_and_files(
    consortium: Consortium, cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "who.csv"
    path.write_text(HEADER + "A,draft,2024-01-01T00:00:00Z,T,nina\n", encoding="utf-8")
    doc = assert_problem(import_file(cli, path, "--json"), ValidationFailed)
    assert doc["errors"][0] == {
        "message": "unknown user",
        "field": "user",
        "row": 2,
        "value": "nina",
        "accepted": "existing users, or pass --create-users",
    }
    doc = assert_problem(import_file(cli, tmp_path / "missing.csv", "--json"), ValidationFailed)
    assert doc["errors"][0]["field"] == "file"
    xls = tmp_path / "history.xls"
    xls.write_text(HEADER + GOOD, encoding="utf-8")
    doc = assert_problem(import_file(cli, xls, "--json"), ValidationFailed)
    assert doc["errors"][0]["value"] == ".xls"
    good = tmp_path / "good.csv"
    good.write_text(HEADER + GOOD, encoding="utf-8")
    assert_problem(
        cli("request", "import", str(good), "-p", "p1", "--as", "ada", "--json"), Forbidden
    )


# ---- an unreachable database, in a real process ----------------------------------------------
def run_steward(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    clean.update({"STEWARD_HOME": str(tmp_path / "home"), "NO_COLOR": "1", **env})
    return subprocess.run(
        [sys.executable, "-m", "steward", *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


UNREACHABLE = "postgresql+psycopg://steward:s3cret-pw@127.0.0.1:1/steward"


@pytest.mark.parametrize("argv", [["init"], ["request", "list", "--as", "ada"]])
def test_unreachable_postgres(tmp_path: Path, argv: list[str]) -> None:
    proc = run_steward(tmp_path, *argv, STEWARD_DATABASE_URL=UNREACHABLE)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    err = proc.stderr
    assert "Traceback" not in err
    assert "s3cret-pw" not in err
    assert "postgresql+psycopg://steward:***@127.0.0.1:1/steward" in err
    assert "STEWARD_DATABASE_URL" in err
    assert err.startswith("error: cannot reach the database")
    # One short paragraph: the message and its hint, no blank lines, no stack.
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 3
    assert all(line.strip() for line in lines)


def test_unreachable_postgres_json(tmp_path: Path) -> None:
    proc = run_steward(
        tmp_path, "request", "list", "--as", "ada", "--json", STEWARD_DATABASE_URL=UNREACHABLE
    )
    assert proc.returncode == 1
    assert proc.stderr == ""
    assert "s3cret-pw" not in proc.stdout
    doc = json.loads(proc.stdout)
    assert set(doc) == PROBLEM_KEYS
    assert (doc["code"], doc["status"]) == ("database-unavailable", 503)
    assert doc["errors"][0]["field"] == "STEWARD_DATABASE_URL"


def test_module_entry_point(tmp_path: Path) -> None:
    proc = run_steward(tmp_path, "--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("steward ")
    proc = run_steward(tmp_path, "request", "list", "--bogus")
    assert proc.returncode == 2
    assert "No such option: --bogus" in proc.stderr
    assert "Traceback" not in proc.stderr
