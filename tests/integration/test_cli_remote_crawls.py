"""Crawls over the API and ``steward --server URL crawl …``, through real HTTP to a real server
(uvicorn on loopback; queued crawls run by ``steward worker`` or the server's embedded worker):
the same output, exit
codes and ``--json`` problems as against the database; the server crawls only its own
configured sources; crawls and schedules of projects one does not coordinate do not exist.

The world is :mod:`tests.integration.test_crawl`'s: project p1 fed by five folder sources.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from steward.config import Settings
from steward.db.queue_tables import Action
from steward.services import access, tokens
from tests.api_server import serving
from tests.conftest import CliResult, Consortium
from tests.integration.test_crawl import build, sources

Cli = Callable[..., CliResult]


@pytest.fixture(autouse=True)
def sqlite_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's embedded SQLite queue (in STEWARD_HOME), on either database."""
    monkeypatch.delenv("STEWARD_QUEUE_URL", raising=False)


@dataclass
class Served:
    url: str
    file: Path
    """The same sources as the server's, as a file, for the same commands run here."""
    tokens: dict[str, str]
    settings: Settings
    """The server's (for a second one, with its worker)."""

    def run(self, cli: Cli, user: str, *args: str) -> CliResult:
        return cli("--server", self.url, "--token", self.tokens[user], *args)


@pytest.fixture
def served(settings: Settings, consortium: Consortium, tmp_path: Path) -> Iterator[Served]:
    """A server crawling p1's five folders (its steward.toml's [crawl]), and otto, the
    steward of another project p2. No worker: what is queued stays so until a test runs one."""
    c = consortium
    tree = tmp_path / "storage"
    build(tree)
    table = sources(tree)
    file = tmp_path / "atlas.yaml"
    file.write_text(yaml.safe_dump(table))
    access.add_user(c.db, actor=c.admin, user_id="otto")
    access.create_project(c.db, actor=c.admin, project_id="p2", title="Project two")
    access.add_member(c.db, actor=c.admin, project_id="p2", user_id="otto", role="steward")
    secrets = {
        user: tokens.create(c.db, actor=user, scope="write", expires_in=timedelta(hours=1)).secret
        for user in (c.steward, c.requester, "otto")
    }
    configured = settings.model_copy(update={"crawl": table})
    with serving(configured) as url:
        yield Served(url, file, secrets, configured)


def test_the_crawl_story_reads_the_same_both_ways(
    cli: Cli, served: Served, consortium: Consortium
) -> None:
    c = consortium
    # Crawl through a server with its worker, waiting: the worker crawls the server's sources.
    with serving(served.settings, worker=True) as url:
        there = cli("--server", url, "--token", served.tokens[c.steward], "crawl")
    assert there.code == 0, there
    crawl_id = there.err.split()[0]
    assert crawl_id.startswith("crl_")
    assert "waiting for the server's worker" in there.err
    here = cli("--as", c.steward, "crawl", "show", crawl_id)
    assert there.out == here.out  # the summary `crawl show` gives, sources and counts
    shown = json.loads(cli("--as", c.steward, "--json", "crawl", "show", crawl_id).out)
    assert (shown["status"], shown["counts"]["new"]["count"]) == ("ok", 6)
    # Queued only (--full is carried to the job), then run by `steward worker`.
    made = served.run(cli, c.steward, "--json", "crawl", "--no-wait", "--full")
    assert made.code == 0, made
    queued = json.loads(made.out)
    assert queued["crawl_id"].startswith("crl_")
    assert queued["action_id"].startswith("act_")
    with c.db.read() as s:
        action = s.get(Action, queued["action_id"])
        assert action is not None
        assert (action.subject_id, action.payload["full"]) == (queued["crawl_id"], True)
    ran = cli("--as", c.steward, "--json", "worker", "--drain")
    assert json.loads(ran.out)["delivered"] == {"done": 1}, ran
    there = served.run(cli, c.steward, "crawl", "schedule", "add", "nightly", "--every", "8h")
    here = cli("--as", c.steward, "crawl", "schedule", "add", "nightly", "--every", "8h",
               "--sources", str(served.file), "--replace")  # fmt: skip
    assert here.code == there.code == 0, (here, there)
    assert here.out == there.out
    # Every listing reads the same both ways (the same database behind both).
    for args in (
        ("crawl", "list"),
        ("--json", "crawl", "list", "--limit", "1"),
        ("crawl", "show", crawl_id),
        ("--json", "crawl", "show", crawl_id),
        ("crawl", "schedule", "list"),
        ("--json", "crawl", "schedule", "list"),
    ):
        here = cli("--as", c.steward, *args)
        there = served.run(cli, c.steward, *args)
        assert here.code == there.code == 0, (args, here, there)
        assert there.out == here.out, args
    for fmt in ((), ("--json",)):  # the server's sources, tried from the server
        here = cli("--as", c.steward, *fmt, "crawl", "sources", "--sources", str(served.file))
        there = served.run(cli, c.steward, *fmt, "crawl", "sources")
        assert here.code == there.code == 0, (here, there)
        assert there.out == here.out
    there = served.run(cli, c.steward, "--json", "crawl", "schedule", "remove", "nightly")
    assert there.code == 0
    assert json.loads(there.out)["name"] == "nightly"
    assert json.loads(served.run(cli, c.steward, "--json", "crawl", "schedule", "list").out) == []


def test_refusals_and_what_others_may_not_see(
    cli: Cli, served: Served, consortium: Consortium
) -> None:
    c = consortium
    r = served.run(cli, c.steward, "crawl", "--no-wait", "--sources", str(served.file))
    assert r.code == 2
    assert "the server crawls only its own configured sources" in r.err
    r = served.run(cli, c.steward, "crawl", "schedule", "add", "--every", "8h",
                   "--sources", str(served.file))  # fmt: skip
    assert r.code == 2
    assert "--sources" in r.err
    assert served.run(cli, c.steward, "crawl", "--dry-run").code == 2
    # The same problem both ways: a requester may not crawl; a bad interval.
    for user, args in (
        (c.requester, ("--json", "crawl", "--no-wait")),
        (c.steward, ("--json", "crawl", "schedule", "add", "x", "--every", "1s")),
    ):
        here = cli("--as", user, *args, "--sources", str(served.file))
        there = served.run(cli, user, *args)
        assert here.code == there.code != 0, (args, here, there)
        assert json.loads(there.err or there.out) == json.loads(here.err or here.out), (here, there)
    # The server's sources (places, projects) are told only to whoever may crawl them all.
    r = served.run(cli, c.requester, "--json", "crawl", "sources")
    assert r.code == 1
    assert json.loads(r.out)["code"] == "forbidden"
    # A crawl and a schedule of p1 do not exist for otto, who coordinates p2 only.
    queued = json.loads(served.run(cli, c.steward, "--json", "crawl", "--no-wait").out)
    made = served.run(cli, c.steward, "crawl", "schedule", "add", "nightly", "--every", "1d")
    assert made.code == 0, made
    for args in (("--json", "crawl", "show", queued["crawl_id"]),
                 ("--json", "crawl", "schedule", "remove", "nightly")):  # fmt: skip
        here = cli("--as", "otto", *args)
        there = served.run(cli, "otto", *args)
        assert here.code == there.code == 1, (args, here, there)
        problem = json.loads(there.out)
        assert problem == json.loads(here.out)
        assert problem["code"] == "not-found"
        assert c.steward not in json.dumps(problem)
    for args in (("crawl", "list"), ("crawl", "schedule", "list")):
        assert json.loads(served.run(cli, "otto", "--json", *args).out) == []
    # Over the API: a body naming sources is refused saying why; a key sent again answers
    # the first crawl, with another body it is refused.
    auth = {"Authorization": f"Bearer {served.tokens[c.steward]}"}
    r = httpx.post(f"{served.url}/api/v1/crawls", headers=auth, timeout=30,
                   json={"full": False, "sources": [{"url": "/etc"}]})  # fmt: skip
    assert r.status_code == 422
    assert "the server crawls only its own configured sources" in r.text
    keyed = {**auth, "Idempotency-Key": "k1"}
    first, again = (httpx.post(f"{served.url}/api/v1/crawls", headers=keyed, json={},
                               timeout=30) for _ in range(2))  # fmt: skip
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    r = httpx.post(f"{served.url}/api/v1/crawls", headers=keyed, json={"full": True}, timeout=30)
    assert r.status_code == 422
    # A schedule request sent again answers what the first did, never a change: refused
    # again (the name exists), or the schedule it made, as long as it is still that.
    plans = f"{served.url}/api/v1/crawl-schedules"
    for key, status in (("s1", 409), ("s2", 201)):
        name, every = ("nightly", "8h") if key == "s1" else ("weekly", "7d")
        sent = {**auth, "Idempotency-Key": key}
        answers = [
            httpx.post(plans, headers=sent, json={"name": name, "every": every}, timeout=30)
            for _ in range(2)
        ]
        assert [a.status_code for a in answers] == [status, status], answers
    listed = {v["name"]: v["every"] for v in httpx.get(plans, headers=auth, timeout=30).json()}
    assert listed == {"nightly": "1d", "weekly": "7d"}


def test_a_server_without_sources_says_so_as_the_cli_does(
    cli: Cli, settings: Settings, consortium: Consortium
) -> None:
    c = consortium
    token = tokens.create(c.db, actor=c.steward, scope="write", expires_in=timedelta(hours=1))
    with serving(settings) as url:
        for args in (("--json", "crawl", "--no-wait"), ("--json", "crawl", "sources")):
            here = cli("--as", c.steward, *args)
            there = cli("--server", url, "--token", token.secret, *args)
            assert here.code == there.code == 2, (here, there)
            local, remote = json.loads(here.out), json.loads(there.out)
            assert local["detail"].endswith("or give --sources FILE")
            # a caller of the server cannot give sources: told who can fix it instead
            assert remote["detail"] == (
                "no crawl sources: its administrator adds [[crawl.sources]] to the server's "
                "steward.toml"
            )
            assert remote["errors"] == local["errors"]
