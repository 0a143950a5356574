"""The CLI against a server (``--server``/``--token``): the same commands give the same
output, exit codes and ``--json`` errors as against the database, through real HTTP."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from steward.config import Settings
from steward.services import tokens
from tests.api_server import serving
from tests.conftest import CliResult, Consortium

Cli = Callable[..., CliResult]


@pytest.fixture
def server(settings: Settings, consortium: Consortium) -> Iterator[str]:
    with serving(settings) as url:
        yield url


def _token(c: Consortium, user: str) -> str:
    return tokens.create(c.db, actor=user, scope="write", expires_in=timedelta(hours=1)).secret


def _both(cli: Cli, server: str, token: str, user: str, *args: str) -> tuple[CliResult, CliResult]:
    here = cli("--as", user, *args)
    there = cli("--server", server, "--token", token, *args)
    return here, there


_IDS = re.compile(r"req_[0-9A-Z]{26}")


def _same(here: CliResult, there: CliResult, ids: dict[str, str]) -> None:
    """Equal once the two requests' ids (made in each run) are named alike."""
    assert here.code == there.code, (here, there)
    swap = ids.get
    assert _IDS.sub(lambda m: swap(m[0], m[0]), there.out) == here.out
    assert _IDS.sub(lambda m: swap(m[0], m[0]), there.err) == here.err


def test_the_request_story_reads_the_same_both_ways(
    cli: Cli, server: str, consortium: Consortium
) -> None:
    c = consortium
    ada, sam, rita = (_token(c, u) for u in (c.requester, c.steward, c.reviewer))
    made: list[str] = []
    for args in (("--as", c.requester), ("--server", server, "--token", ada)):
        r = cli(*args, "--json", "request", "create", c.project, "--title", "Cohort",
                "--institution", "Uni", "--project-lead", "Lee", "--intended-use", "study",
                "--dataset", "Controlled genomes", "--duo", "HMB")  # fmt: skip
        assert r.code == 0, r
        made.append(json.loads(r.out)["id"])
    local, remote = made
    ids = {remote: local}
    steps: list[tuple[str, str, tuple[str, ...]]] = [
        (c.requester, ada, ("request", "submit", "{id}")),
        (c.steward, sam, ("request", "assign-reviewer", "{id}", c.reviewer)),
        (c.reviewer, rita, ("request", "approve", "{id}", "--reason", "fine", "--expires", "30d")),
        (c.requester, ada, ("request", "comment", "{id}", "thanks")),
    ]
    for user, token, step in steps:
        here = cli("--as", user, *(a.format(id=local) for a in step))
        there = cli("--server", server, "--token", token, *(a.format(id=remote) for a in step))
        _same(here, there, ids)
        assert here.code == 0
    # Lists and details (times differ by the run's seconds: compare what does not)
    for fmt in ((), ("--json",)):
        here, there = _both(cli, server, sam, c.steward, *fmt, "request", "list",
                            "--state", "approved")  # fmt: skip
        assert here.code == there.code == 0
        assert there.out.count(remote) == 1
        assert here.out.count(local) == 1
    here = cli("--as", c.requester, "--json", "request", "show", local)
    there = cli("--server", server, "--token", ada, "--json", "request", "show", remote)
    mine, theirs = json.loads(here.out), json.loads(there.out)
    steps = [(e["type"], e["actor"], e["to_state"], e["reason"]) for e in mine["timeline"]]
    assert [
        (e["type"], e["actor"], e["to_state"], e["reason"]) for e in theirs["timeline"]
    ] == steps
    assert theirs["available_actions"] == mine["available_actions"]
    assert theirs["request"]["state"] == mine["request"]["state"] == "approved"


def test_refusals_have_the_same_exit_code_and_problem_both_ways(
    cli: Cli, server: str, consortium: Consortium
) -> None:
    c = consortium
    ada = _token(c, c.requester)
    cases = [
        ("--json", "request", "show", "req_00000000000000000000000000"),  # not found: 1
        ("--json", "request", "submit", "req_00000000000000000000000000"),
        ("--json", "request", "list", "--state", "nonsense"),  # validation: 2
        ("--json", "request", "create", "p1", "--title", ""),
        ("--json", "request", "create", "nope", "--title", "x"),
    ]
    for args in cases:
        here, there = _both(cli, server, ada, c.requester, *args)
        assert here.code == there.code != 0, (args, here, there)
        assert json.loads(there.err or there.out) == json.loads(here.err or here.out), args


def test_commands_not_yet_served_say_so_and_bad_tokens_are_refused(
    cli: Cli, server: str, consortium: Consortium
) -> None:
    c = consortium
    r = cli("--server", server, "--token", _token(c, c.steward), "--json", "request", "expire-due")
    assert r.code == 2
    problem = json.loads(r.err or r.out)
    assert "does not run against a server" in problem["detail"]
    r = cli("--server", server, "--token", "stw_nope_nope", "--json", "request", "list")
    assert r.code == 2
    assert json.loads(r.err or r.out)["code"] == "unauthenticated"
    r = cli("--server", server, "--token", "x", "--as", c.steward, "request", "list")
    assert r.code == 2
    assert "drop --as" in r.err


def test_an_unreachable_server_is_named(cli: Cli, consortium: Consortium) -> None:
    from tests.pg import free_port

    url = f"http://127.0.0.1:{free_port()}"
    r = cli("--server", url, "--token", "stw_a_b", "--json", "request", "list")
    assert r.code == 1
    assert url in json.loads(r.err or r.out)["detail"]


def test_login_keeps_the_token_private_and_logout_forgets_it(
    cli: Cli,
    server: str,
    consortium: Consortium,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import sys

    c = consortium
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    token = _token(c, c.requester)
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    r = cli("login", server, "--token-stdin")
    assert r.code == 0, r
    assert token not in r.out + r.err
    stored = tmp_path / "config" / "steward" / "credentials.json"
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(stored.parent).st_mode) == 0o700
    r = cli("--server", server, "--json", "request", "list")  # no --token: the kept one
    assert r.code == 0, r
    assert json.loads(r.out) == []
    r = cli("logout", server)
    assert r.code == 0
    r = cli("--server", server, "--json", "request", "list")
    assert r.code == 2
    assert "steward login" in json.loads(r.err or r.out)["detail"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("stw_bad_token\n"))
    assert cli("login", server, "--token-stdin").code == 2  # a token that does not work
    assert not json.loads(stored.read_text())["servers"]


def test_package_and_share_lists_and_notes_read_the_same_both_ways(
    cli: Cli, server: str, consortium: Consortium, settings: Settings, tmp_path: Path
) -> None:
    from steward.services import packages
    from steward.services.packages import PackageSpec
    from tests.packaging_data import make_dataset

    c = consortium
    data = make_dataset(tmp_path / "ds", samples=2, fastq_size=100)
    spec = PackageSpec(name="two", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    pkg, _ = packages.create(c.db, settings, actor=c.steward, project=c.project, spec=spec)
    sam = _token(c, c.steward)
    listings = [
        ("--json", "package", "list"),
        ("package", "list", "--state", "pending"),
        ("--json", "share", "list"),
        ("--json", "package", "list", "--name", "nope"),
    ]
    for args in listings:
        here, there = _both(cli, server, sam, c.steward, *args)
        assert here.code == there.code == 0, (args, here, there)
        assert there.out == here.out, args
    assert pkg.id in cli("--as", c.steward, "--json", "package", "list").out
    there = cli("--server", server, "--token", sam, "--json", "package", "comment", pkg.id, "hi")
    assert there.code == 0, there
    assert json.loads(there.out)["id"] == pkg.id
    shown = json.loads(cli("--as", c.steward, "--json", "package", "show", pkg.id).out)
    assert [e["data"].get("text") for e in shown["timeline"] if e["type"] == "commented"] == ["hi"]
    for args in (("--json", "package", "comment", "pkg_00000000000000000000000000", "x"),
                 ("--json", "share", "abort", "shr_00000000000000000000000000")):  # fmt: skip
        here, there = _both(cli, server, sam, c.steward, *args)
        assert here.code == there.code != 0
        assert json.loads(there.err or there.out) == json.loads(here.err or here.out)
