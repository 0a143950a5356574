"""The CLI's people, projects, catalogue, sites, tokens, queue, audit and report commands
against a server: changes made through the API, then every read both ways — the same output,
exit codes and ``--json`` problems as against the database (one database under both)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from steward.config import Settings
from steward.domain.requests import RequestFields
from steward.services import accounts, requests, tokens
from tests.api_server import serving
from tests.conftest import CliResult, Consortium

Cli = Callable[..., CliResult]
PASSWORD = "a long enough passphrase"


@pytest.fixture
def server(settings: Settings, consortium: Consortium) -> Iterator[str]:
    with serving(settings) as url:
        yield url


@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    return lambda text: monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def _token(c: Consortium, user: str, scope: str = "write") -> str:
    return tokens.create(c.db, actor=user, scope=scope, expires_in=timedelta(hours=1)).secret


class Both:
    """One person, locally (``--as``) and through the server (their token)."""

    def __init__(self, cli: Cli, server: str, user: str, token: str) -> None:
        self.cli, self.server, self.user, self.token = cli, server, user, token

    def there(self, *args: str) -> CliResult:
        return self.cli("--server", self.server, "--token", self.token, *args)

    def here(self, *args: str) -> CliResult:
        return self.cli("--as", self.user, *args)

    def same(self, *args: str) -> CliResult:
        """The command both ways: equal exit code, stdout and stderr."""
        here, there = self.here(*args), self.there(*args)
        assert (there.code, there.out, there.err) == (here.code, here.out, here.err), args
        return here


def test_projects_catalogue_and_sites_read_the_same_after_changes_through_the_server(
    cli: Cli, server: str, consortium: Consortium
) -> None:
    c = consortium
    admin = Both(cli, server, c.admin, _token(c, c.admin, "admin"))
    sam = Both(cli, server, c.steward, _token(c, c.steward))
    ada = Both(cli, server, c.requester, _token(c, c.requester))

    made = admin.there("project", "create", "px", "--title", "Project X")
    assert made.code == 0, made
    assert "Project px ready" in made.out
    assert admin.there("project", "add-member", "px", c.requester, "viewer").code == 0
    for fmt in ((), ("--json",)):
        listed = admin.same(*fmt, "project", "list")
        assert "px" in listed.out
        members = admin.same(*fmt, "project", "members", "px")
        assert c.requester in members.out
        assert ada.same(*fmt, "project", "list").code == 0

    added = sam.there("requirement", "add", c.project, "Genomes", "--folder", "raw/wgs",
                      "--description", "sign the DAA")  # fmt: skip
    assert added.code == 0, added
    assert sam.there("folder", c.project, "raw/wgs/batch-1").code == 0
    for fmt in ((), ("--json",)):
        assert "Genomes" in sam.same(*fmt, "requirement", "list", c.project).out
        assert "batch-1" in sam.same(*fmt, "tree", c.project).out

    assert admin.there("site", "add", "site-x", "--name", "Site X").code == 0
    assert admin.there("site", "add-member", "site-x", c.requester).code == 0
    for fmt in ((), ("--json",)):
        assert "site-x" in admin.same(*fmt, "site", "list").out
        assert c.requester in admin.same(*fmt, "site", "show", "site-x").out
        assert "site-x" in ada.same(*fmt, "site", "list").out  # an analyst sees their site
    gone = admin.there("site", "remove-member", "site-x", c.requester)
    assert "is no longer a member of site-x" in gone.out
    again = admin.same("site", "remove-member", "site-x", c.requester)
    assert "nothing changed" in again.out

    # Refusals: the same problem and exit code both ways
    for who, args in (
        (ada, ("--json", "project", "members", "nope")),
        (ada, ("--json", "site", "show", "site-x")),  # no longer hers: does not exist
        (ada, ("--json", "project", "create", "py")),  # not an administrator
        (sam, ("--json", "requirement", "add", c.project, "R", "--kind", "sometimes")),
        (ada, ("--json", "tree", "p2")),
    ):
        here, there = who.here(*args), who.there(*args)
        assert here.code == there.code != 0, (args, here, there)
        assert json.loads(there.err or there.out) == json.loads(here.err or here.out), args


def test_users_tokens_and_passwords_through_the_server(
    cli: Cli, server: str, consortium: Consortium, stdin: Callable[[str], None]
) -> None:
    c = consortium
    admin = Both(cli, server, c.admin, _token(c, c.admin, "admin"))
    ada = Both(cli, server, c.requester, _token(c, c.requester))

    assert admin.there("user", "add", "zed", "--name", "Zed").code == 0
    for fmt in ((), ("--json",)):
        assert "zed" in admin.same(*fmt, "user", "list").out
    off = admin.there("--json", "user", "disable", "zed")
    assert off.code == 0, off
    assert json.loads(off.out)["disabled_at"] is not None
    assert json.loads(admin.there("--json", "user", "enable", "zed").out)["disabled_at"] is None
    refused = ada.there("--json", "user", "disable", "zed")  # a write token, not an admin's
    assert refused.code == 1
    assert json.loads(refused.out)["code"] == "forbidden"

    # Tokens: made through the server, listed both ways, revoked; never stronger than the
    # token that asks
    made = ada.there("--json", "token", "create", "--scope", "read", "--name", "ci")
    assert made.code == 0, made
    new = json.loads(made.out)
    assert new["secret"].startswith("stw_")
    assert new["token"]["scope"] == "read"
    mine = ada.here("--json", "token", "list")
    theirs = ada.there("--json", "token", "list")
    drop = ("last_used_at",)  # the call through the server uses its own token

    def strip(rows: str) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k not in drop} for r in json.loads(rows)]

    assert strip(theirs.out) == strip(mine.out)
    assert new["token"]["id"] in theirs.out
    stronger = Both(cli, server, c.requester, new["secret"]).there(
        "--json", "token", "create", "--scope", "write"
    )
    assert stronger.code == 1
    assert json.loads(stronger.out)["code"] == "forbidden"
    revoked = ada.there("token", "revoke", new["token"]["id"])
    assert revoked.code == 0
    assert "revoked" in revoked.out
    dead = Both(cli, server, c.requester, new["secret"]).there("--json", "request", "list")
    assert json.loads(dead.err or dead.out)["code"] == "unauthenticated"

    # Passwords: your own takes the current one too (first line), the new one second
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester, password=PASSWORD)
    stdin("wrong current password\n" + PASSWORD + "!\n")
    wrong = ada.there("--json", "user", "passwd", c.requester, "--password-stdin")
    assert wrong.code == 2
    assert json.loads(wrong.out)["errors"][0]["field"] == "current_password"
    stdin(PASSWORD + "\n" + PASSWORD + "!\n")
    done = ada.there("user", "passwd", c.requester, "--password-stdin")
    assert done.code == 0, done
    assert accounts.login(c.db, user=c.requester, password=PASSWORD + "!", address="t").user_id
    stdin(PASSWORD + "?\n")  # an administrator sets someone else's: no current one asked
    assert admin.there("user", "passwd", c.requester, "--password-stdin").code == 0
    assert accounts.login(c.db, user=c.requester, password=PASSWORD + "?", address="t")


def test_reports_jobs_and_audit_read_the_same_both_ways(
    cli: Cli, server: str, consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    sam = Both(cli, server, c.steward, _token(c, c.steward))
    admin = Both(cli, server, c.admin, _token(c, c.admin, "admin"))
    rid = requests.create(c.db, actor=c.requester, project=c.project, fields=RequestFields(
        "Cohort", "Uni", "Lee", "study", datasets=("raw/wgs",)), submit=True).id  # fmt: skip
    requests.act(c.db, actor=c.steward, request_id=rid, command="reject", reason="no")

    decided = ("--state", "rejected")  # decided: nothing in it runs on with the clock
    for fmt in ("table", "csv", "json"):
        shown = sam.same("report", "tracking", "--format", fmt, *decided)
        assert rid in shown.out
    assert rid in sam.same("report", "changelog", "--format", "csv", *decided).out
    for name in ("xlsx", "csv"):
        here, there = tmp_path / f"here.{name}", tmp_path / f"there.{name}"
        assert sam.here("report", "tracking", "-f", name, "-o", str(here), *decided).code == 0
        wrote = sam.there("report", "tracking", "-f", name, "-o", str(there), *decided)
        assert wrote.code == 0
        assert "Wrote 1 row(s)" in wrote.out
    assert (tmp_path / "there.csv").read_bytes() == (tmp_path / "here.csv").read_bytes()
    sheet = load_workbook(tmp_path / "there.xlsx").active
    assert sheet is not None
    assert rid in [cell.value for cell in sheet["A"]]
    exists = sam.there("--json", "report", "tracking", "-o", str(tmp_path / "there.csv"))
    assert exists.code == 2  # no overwriting without --force, through the server too

    for fmt in ((), ("--json",)):
        sam.same(*fmt, "jobs", "list")
        admin.same(*fmt, "audit", "--action", "token-create", "--limit", "3")
    unknown = ("--json", "jobs", "show", "act_00000000000000000000000000")
    here, there = sam.here(*unknown), sam.there(*unknown)
    assert here.code == there.code == 1
    assert json.loads(there.out) == json.loads(here.out)


def test_commands_that_work_on_the_database_say_so(
    cli: Cli, server: str, consortium: Consortium
) -> None:
    c = consortium
    for args in (("request", "expire-due"), ("init",), ("worker", "--once")):
        r = cli("--server", server, "--token", _token(c, c.admin, "admin"), "--json", *args)
        assert r.code == 2, (args, r)
        assert "does not run against a server" in json.loads(r.err or r.out)["detail"]
