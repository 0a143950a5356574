"""The CLI a kind gets from its registry declaration alone (``steward.cli.generic``).

Today every kind has a hand-written group, so the generated one is mounted here beside it
for an existing kind, and driven through the real entry point like any other command."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from steward.cli import app as cli_app
from steward.cli import generic, helpfmt
from steward.config import Settings
from steward.domain.requests import RequestFields
from steward.services import requests, tokens
from tests.api_server import serving
from tests.conftest import CliResult, Consortium

Cli = Callable[..., CliResult]
pytestmark = pytest.mark.usefixtures("mounted")


@pytest.fixture
def mounted() -> Iterator[None]:
    group = generic.group_for(requests.REQUEST)
    cli_app.app.add_typer(group, name="gen-request")
    helpfmt.reflow(cli_app.app)
    try:
        yield
    finally:
        cli_app.app.registered_groups.pop()


def _draft(c: Consortium, title: str = "Study") -> str:
    return requests.create(
        c.db, actor=c.requester, project=c.project,
        fields=RequestFields(title, "Uni", "Prof", "Research", datasets=("raw/wgs",)),
    ).id  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite"])  # help does not depend on the database
def test_the_commands_come_from_the_workflow_and_payloads(cli: Cli) -> None:
    top = cli("gen-request", "--help")
    assert top.code == 0
    for name in ("list", "show", "history", "submit", "approve", "reject", "comment"):
        assert name in top.out, name
    assert "record_effect" not in top.out  # Steward's own, not offered to people
    assert "start" not in top.out.split()
    approve = cli("gen-request", "approve", "--help")
    for option in ("--expires-at", "--if-version", "--key"):
        assert option in approve.out, option
    listing = cli("gen-request", "list", "--help")
    for option in ("--requester", "--reviewer", "--created-from", "--decided-to", "--sort"):
        assert option in listing.out, option


def test_list_show_act_and_history_through_the_generated_group(
    consortium: Consortium, cli: Cli
) -> None:
    c = consortium
    rid = _draft(c)
    other = _draft(c, "Other")
    listed = cli("--as", c.requester, "--json", "gen-request", "list", "--sort", "-id")
    assert listed.code == 0, listed.err
    assert [r["id"] for r in json.loads(listed.out)] == sorted([rid, other], reverse=True)
    one = cli("--as", c.steward, "gen-request", "list", "--requester", c.requester,
              "--state", "DRAFT", "--limit", "1")  # fmt: skip
    assert one.code == 0, one.err
    assert "1 row(s)" in one.out

    submitted = cli("--as", c.requester, "--json", "gen-request", "submit", rid, "--key", "k1")
    assert submitted.code == 0, submitted.err
    assert json.loads(submitted.out)["state"] == "submitted"
    again = cli("--as", c.requester, "--json", "gen-request", "submit", rid, "--key", "k1")
    assert json.loads(again.out)["version"] == json.loads(submitted.out)["version"]

    stale = cli("--as", c.requester, "gen-request", "comment", rid, "--text", "hi",
                "--if-version", "1")  # fmt: skip
    assert stale.code == 1
    assert "version" in stale.err
    commented = cli("--as", c.requester, "gen-request", "comment", rid, "--text", "hi")
    assert commented.code == 0, commented.err
    assert "commented" in commented.out

    shown = cli("--as", c.steward, "--json", "gen-request", "show", rid)
    detail = json.loads(shown.out)
    assert detail["request"]["id"] == rid
    assert "assign-reviewer" in detail["available_actions"]
    assert [e["type"] for e in detail["timeline"]] == ["created", "submitted", "commented"]
    screen = cli("--as", c.steward, "gen-request", "show", rid)
    assert "you may now" in screen.out
    assert "submitted for" in screen.out

    history = cli("--as", c.requester, "--json", "gen-request", "history", rid)
    assert [e["type"] for e in json.loads(history.out)["timeline"]][-1] == "commented"


def test_refusals_are_the_same_as_everywhere(consortium: Consortium, cli: Cli) -> None:
    c = consortium
    rid = _draft(c)
    hidden = cli("--as", c.requester2, "gen-request", "show", rid)
    unknown = cli("--as", c.requester2, "gen-request", "show", "req_nope")
    assert hidden.code == unknown.code == 1
    assert hidden.err.replace(rid, "ID") == unknown.err.replace("req_nope", "ID")
    forbidden = cli("--as", c.requester, "gen-request", "approve", rid)
    assert forbidden.code == 1
    assert "allowed now" in forbidden.err
    extra = cli("--as", c.requester, "gen-request", "list", "--colour", "blue")
    assert extra.code == 2
    bad_sort = cli("--as", c.requester, "--json", "gen-request", "list", "--sort", "colour")
    assert bad_sort.code == 2
    assert json.loads(bad_sort.out)["errors"][0]["field"] == "sort"


def test_the_generated_group_runs_against_a_server_the_same(
    consortium: Consortium, cli: Cli, settings: Settings
) -> None:
    """Every generated command through the server: what the next kinds (datasets…) get."""
    c = consortium
    here, there = _draft(c), _draft(c)
    secret = {u: tokens.create(c.db, actor=u, scope="write", expires_in=timedelta(hours=1)).secret
              for u in (c.requester, c.steward)}  # fmt: skip
    with serving(settings) as url:
        for user, args in (
            (c.requester, ("--json", "gen-request", "submit", "{id}", "--key", "k")),
            (c.steward, ("--json", "gen-request", "comment", "{id}", "--text", "noted")),
            (c.requester, ("--json", "gen-request", "comment", "{id}", "--text", "x",
                           "--if-version", "1")),  # stale: the same refusal
            (c.requester2, ("--json", "gen-request", "show", "{id}")),  # hidden from her
            (c.requester, ("--json", "gen-request", "approve", "{id}")),  # not hers to do
        ):  # fmt: skip
            local = cli("--as", user, *(a.format(id=here) for a in args))
            token = secret.get(user) or tokens.create(
                c.db, actor=user, scope="write", expires_in=timedelta(hours=1)).secret  # fmt: skip
            remote = cli("--server", url, "--token", token, *(a.format(id=there) for a in args))
            assert remote.code == local.code, (args, local, remote)
            mine = json.loads((local.out or local.err).replace(here, "ID"))
            theirs = json.loads((remote.out or remote.err).replace(there, "ID"))
            assert _timeless(theirs) == _timeless(mine), args
        for fmt in ("--json", "--tz=UTC"):
            local = cli("--as", c.steward, fmt, "gen-request", "history", here)
            remote = cli("--server", url, "--token", secret[c.steward], fmt, "gen-request",
                         "history", there)  # fmt: skip
            assert remote.code == local.code == 0
            assert _types(remote.out) == _types(local.out)
        listed = cli("--server", url, "--token", secret[c.steward], "--json", "gen-request",
                     "list", "--state", "submitted")  # fmt: skip
        assert {r["id"] for r in json.loads(listed.out)} == {here, there}, listed
        shown = cli("--server", url, "--token", secret[c.steward], "gen-request", "show", there)
        assert "you may now" in shown.out
        assert "assign-reviewer" in shown.out


def _timeless(shown: dict[str, object]) -> dict[str, object]:
    """A view less the moments its two runs took place at."""
    return {k: v for k, v in shown.items() if not k.endswith(("_at", "since"))}


def _types(out: str) -> list[str]:
    """The event types a timeline shows, in order (JSON or table)."""
    try:
        return [e["type"] for e in json.loads(out)["timeline"]]
    except ValueError:
        return [w for w in out.split() if w in {"created", "submitted", "commented"}]
