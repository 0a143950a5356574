"""`--json` prints only JSON, whatever goes wrong; no traceback in any mode; help that teaches."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from typer.core import TyperGroup

from steward.cli.app import app
from tests.conftest import CliResult, Consortium

Cli = Callable[..., CliResult]
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


def _commands() -> Iterator[tuple[list[str], object]]:
    """Every command path under ``steward`` with its click command, groups included."""
    root = typer.main.get_command(app)

    def walk(path: list[str], command: object) -> Iterator[tuple[list[str], object]]:
        yield path, command
        if isinstance(command, TyperGroup):
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                yield from walk([*path, name], command.get_command(ctx, name))

    yield from walk([], root)


COMMANDS = [path for path, _ in _commands() if path]
LEAVES = [path for path, c in _commands() if path and not isinstance(c, TyperGroup)]
GROUPS = [
    path
    for path, c in _commands()
    if isinstance(c, TyperGroup) and not c.invoke_without_command  # `crawl` runs on its own
]
NEEDS_ARGUMENTS = [
    path
    for path, c in _commands()
    if path and not isinstance(c, TyperGroup) and any(p.required for p in c.params)  # type: ignore[attr-defined]
]


def only_json(result: CliResult) -> object:
    """The whole of stdout is one JSON document and nothing went to stderr."""
    assert result.err == "", result.err
    assert "Traceback" not in result.out
    return json.loads(result.out)


def test_the_walk_finds_every_command() -> None:
    # A guard on the parametrisation below: if the walk broke, the other tests would pass empty.
    assert ["request", "create"] in LEAVES
    assert ["share", "push"] in LEAVES
    assert ["report", "changelog"] in LEAVES
    assert [] in GROUPS
    assert ["request"] in GROUPS
    assert ["request", "show"] in NEEDS_ARGUMENTS


@SQLITE_ONLY
@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_unknown_option_is_a_json_problem(
    consortium: Consortium, cli: Cli, path: list[str]
) -> None:
    result = cli(*path, "--no-such-option", "--as", "sam", "--json")
    assert result.code == 2
    doc = only_json(result)
    assert isinstance(doc, dict)
    assert doc["code"] == "validation-failed"
    assert "--no-such-option" in doc["detail"]
    assert doc["detail"].startswith("steward " + " ".join(path))


@SQLITE_ONLY
@pytest.mark.parametrize("path", NEEDS_ARGUMENTS, ids=" ".join)
def test_missing_arguments_are_a_json_problem(
    consortium: Consortium, cli: Cli, path: list[str]
) -> None:
    result = cli(*path, "--as", "sam", "--json")
    assert result.code == 2
    doc = only_json(result)
    assert isinstance(doc, dict)
    assert doc["code"] == "validation-failed"
    assert "Missing" in doc["detail"]


@SQLITE_ONLY
@pytest.mark.parametrize("path", GROUPS, ids=lambda p: " ".join(p) or "steward")
def test_a_group_without_a_command_is_a_json_problem(cli: Cli, path: list[str]) -> None:
    result = cli("--json", *path)
    assert result.code == 2
    doc = only_json(result)
    assert isinstance(doc, dict)
    assert doc["detail"] == " ".join(["steward", *path]) + ": a command is missing"
    assert doc["errors"][0]["field"] == "command"
    assert doc["errors"][0]["accepted"]


@SQLITE_ONLY
def test_a_group_that_runs_on_its_own_answers_in_json(consortium: Consortium, cli: Cli) -> None:
    doc = only_json(cli("--json", "crawl", "--as", "sam"))  # no sources anywhere
    assert isinstance(doc, dict)
    assert doc["errors"][0]["field"] == "crawl.sources"


@SQLITE_ONLY
def test_unknown_command_is_a_json_problem(cli: Cli) -> None:
    doc = only_json(cli("--json", "nosuchcommand"))
    assert isinstance(doc, dict)
    assert "nosuchcommand" in doc["detail"]


@SQLITE_ONLY
def test_an_unforeseen_error_is_a_message_and_a_private_log(
    consortium: Consortium, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bug (here: a service raising something Steward did not foresee) never shows a
    traceback; the traceback goes to a private log file the message names."""
    from steward.services import access

    def broken(*_a: object, **_k: object) -> object:
        raise RuntimeError(
            "the flux capacitor is empty; postgresql://u:hunter2secret@db/x?password=hunter2secret"
        )

    monkeypatch.setattr(access, "list_users", broken)
    text = cli("user", "list", "--as", "admin")
    assert text.code == 1
    assert "Traceback" not in text.out + text.err
    assert "internal error (RuntimeError): the flux capacitor is empty" in text.err
    assert "this is a bug in Steward" in text.err
    doc = only_json(cli("user", "list", "--as", "admin", "--json"))
    assert isinstance(doc, dict)
    assert "the flux capacitor is empty" in doc["detail"]
    logs = sorted((tmp_path / "home" / "logs").glob("error-*.log"))
    assert len(logs) == 2
    assert "Traceback" in logs[0].read_text()
    assert "flux capacitor" in logs[0].read_text()
    assert stat.S_IMODE(logs[0].stat().st_mode) == 0o600
    # Credentials in the exception never reach the screen or the log file.
    assert "hunter2secret" not in text.err + logs[0].read_text() + logs[1].read_text()
    assert stat.S_IMODE(logs[0].parent.stat().st_mode) == 0o700


@SQLITE_ONLY
def test_empty_timezone_is_refused(consortium: Consortium, cli: Cli) -> None:
    """`--tz "$UNSET"` is a mistake, not a request for UTC."""
    result = cli("--tz", "", "request", "list", "--as", "sam")
    assert result.code == 2
    assert "unknown time zone ''" in result.err
    doc = only_json(cli("--tz", "", "request", "list", "--as", "sam", "--json"))
    assert isinstance(doc, dict)
    assert doc["errors"][0]["field"] == "tz"


@SQLITE_ONLY
@pytest.mark.parametrize("json_mode", [False, True], ids=["table", "json"])
def test_a_reader_that_goes_away_is_not_a_failure(
    consortium: Consortium, cli: Cli, tmp_path: Path, json_mode: bool
) -> None:
    """`steward report … | head -1` exits 0, quietly, like any other Unix tool."""
    for i in range(40):
        cli(
            "request", "create", "p1", "--title", f"Study {i}", "--institution", "Uni",
            "--project-lead", "Prof", "--intended-use", "Research", "-d", "raw/wgs",
            "--as", "ada",
        )  # fmt: skip
    env = {**os.environ, "STEWARD_USER": "sam"}
    argv = [sys.executable, "-m", "steward", "request", "list", "--limit", "0"]
    argv += ["--json"] if json_mode else []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        first = proc.stdout.read(64)
        proc.stdout.close()  # the reader goes away, as `head` does
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, err
    assert first
    assert err == ""


def _help(cli: Cli, path: list[str]) -> str:
    result = cli(*path, "--help")
    assert result.code == 0
    return result.out + result.err


@SQLITE_ONLY
@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_shows_flags_as_flags(cli: Cli, path: list[str]) -> None:
    text = _help(cli, path)
    assert "<bool>" not in text
    assert "list[" not in text


def test_help_paragraphs_are_reflowed() -> None:
    """Source docstrings are wrapped at 100 columns; Rich keeps a later paragraph's line
    breaks, which came out ragged at the terminal's width. Every paragraph reaches Rich as one
    line (lists and pre-formatted blocks excepted), so Rich wraps it evenly."""
    multi = 0
    for path, command in _commands():
        text = getattr(command, "help", None) or ""
        paragraphs = text.split("\n\n")
        multi += len(paragraphs) > 1
        for para in paragraphs:
            lines = para.splitlines()
            if any(ln.startswith((" ", "-", "*")) for ln in lines[1:]):
                continue
            assert len(lines) <= 1, (" ".join(path), para)
    assert multi >= 3  # the check saw real multi-paragraph help


@SQLITE_ONLY
def test_top_level_help_claims_only_what_exists(cli: Cli) -> None:
    text = _help(cli, [])
    for absent in ("dataset tracking", "run delivery", "federated"):
        assert absent not in text.lower()
    assert "access requests" in text.lower()


# ---- list options that used to be silently wrong ----------------------------------------------
@SQLITE_ONLY
def test_a_negative_limit_is_refused_everywhere(consortium: Consortium, cli: Cli) -> None:
    from steward.errors import ValidationFailed
    from steward.services import kinds, subjects

    for group in ("request", "package", "share"):
        result = cli(group, "list", "--limit", "-5", "--as", "sam")
        assert result.code == 2, group
        assert "--limit" in result.err, group
    for kind in kinds.kinds():
        with pytest.raises(ValidationFailed) as err:
            subjects.list_(consortium.db, kind, actor="sam", flt=kind.filter(limit=-1))
        assert err.value.details[0].field == "limit"


@SQLITE_ONLY
def test_an_unknown_or_foreign_project_is_named_not_silently_empty(
    consortium: Consortium, cli: Cli
) -> None:
    from steward.services import access

    access.create_project(consortium.db, actor="admin", project_id="p2", title="other")
    for project in ("nope", "p2"):  # p2 exists, but sam is not in it: the same words
        result = cli("request", "list", "--project", project, "--as", "sam")
        assert result.code == 1
        assert f"no project '{project}'" in result.err
        doc = only_json(cli("request", "list", "--project", project, "--as", "sam", "--json"))
        assert isinstance(doc, dict)
        assert doc["code"] == "not-found"
    assert cli("request", "list", "--project", "p2", "--as", "admin").code == 0


@SQLITE_ONLY
def test_state_names_ignore_case(consortium: Consortium, cli: Cli) -> None:
    made = cli(
        "request", "create", "p1", "--title", "T", "--institution", "U", "--project-lead", "P",
        "--intended-use", "R", "-d", "raw/wgs", "--submit", "--as", "ada", "--json",
    )  # fmt: skip
    rid = only_json(made)["id"]  # type: ignore[index]
    listed = only_json(cli("request", "list", "--state", " Submitted ", "--as", "sam", "--json"))
    assert [r["id"] for r in listed] == [rid]  # type: ignore[union-attr, index]


def test_a_fresh_home_says_to_run_init(cli: Cli, tmp_path: Path) -> None:
    """Before `steward init` there are no users: say so, and what to run."""
    result = cli("request", "list", "--as", "carol")
    assert result.code == 2
    assert "no users yet" in result.err
    assert "steward init --admin carol" in result.err


@SQLITE_ONLY
def test_request_list_sorts(consortium: Consortium, cli: Cli) -> None:
    made = []
    for title in ("First", "Second", "Third"):
        out = cli(
            "request", "create", "p1", "--title", title, "--as", "ada", "--json",
        )  # fmt: skip
        made.append(only_json(out)["id"])  # type: ignore[index]
    newest = only_json(cli("request", "list", "--sort", "-created", "--as", "sam", "--json"))
    assert [r["id"] for r in newest] == made[::-1]  # type: ignore[union-attr, index]
    oldest = only_json(cli("request", "list", "--as", "sam", "--json"))
    assert [r["id"] for r in oldest] == made  # type: ignore[union-attr, index]
    bad = cli("request", "list", "--sort", "colour", "--as", "sam")
    assert bad.code == 2
    assert "cannot sort by 'colour'" in bad.err


@SQLITE_ONLY
@pytest.mark.parametrize(
    "path", [["report", "tracking"], ["report", "changelog"], ["dataset", "list"]], ids=" ".join
)
def test_csv_on_stdout_with_json_is_refused_not_printed(
    consortium: Consortium, cli: Cli, path: list[str]
) -> None:
    """``--json`` promises JSON on stdout; ``--format csv`` there is a usage error (exit 2),
    and ``--format json`` is the way."""
    result = cli(*path, "--format", "csv", "--as", "sam", "--json")
    assert result.code == 2
    doc = only_json(result)
    assert isinstance(doc, dict)
    assert doc["errors"][0]["field"] == "format"
    fine = cli(*path, "--format", "json", "--as", "sam", "--json")
    assert fine.code == 0
    assert isinstance(only_json(fine), list)
