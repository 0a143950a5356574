"""The dataset tracker's read commands through a real server (uvicorn on loopback) and
``steward --server``: the same output, ``--json`` and exit codes as against the database; the
server's settings decide (its accession mappings); datasets one may not see stay unseen.

The world is :mod:`tests.integration.test_dataset_views`' (test_crawl's tree, crawled once).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from steward.config import Settings
from steward.services import tokens
from tests.api_server import serving
from tests.conftest import CliResult, Consortium
from tests.crawl_trees import write_tree
from tests.integration.test_crawl import build, config_of, run, sources

Cli = Callable[..., CliResult]
OTHER_MAPPING = {"accession_mappings": [{"left": "E-GEOD-{n}", "right": "GSX{n}"}]}
"""The server's own mapping, unlike the CLI's default: E-GEOD-5 is not GSE5 there."""
SIDECARS = {  # for verify: one data file as its sidecar says, one not
    "E-MTAB-4/raw/good.fq": "ACGT\n",
    "E-MTAB-4/raw/good.fq.md5": hashlib.md5(b"ACGT\n").hexdigest() + "  good.fq\n",
    "E-MTAB-4/raw/bad.fq": "GGGG\n",
    "E-MTAB-4/raw/bad.fq.md5": hashlib.md5(b"CCCC\n").hexdigest() + "\n",
}


@dataclass
class Served:
    url: str
    tokens: dict[str, str]
    file: Path
    """The server's [crawl] as a file, for the same commands run here."""

    def run(self, cli: Cli, user: str, *args: str) -> CliResult:
        return cli("--server", self.url, "--token", self.tokens[user], *args)


@pytest.fixture
def served(settings: Settings, consortium: Consortium, tmp_path: Path) -> Iterator[Served]:
    """test_crawl's tree crawled into p1, and a server over the same database whose
    steward.toml crawls that tree but maps accessions differently from the CLI's default."""
    c = consortium
    root = tmp_path / "storage"
    build(root)
    write_tree(root / "external", {"E-GEOD-77/E-GEOD-77.txt": "from GEO, not loaded"})
    write_tree(root / "loading", SIDECARS)
    run(c, config_of(root))
    secrets = {
        user: tokens.create(c.db, actor=user, scope="write", expires_in=timedelta(hours=1)).secret
        for user in (c.steward, c.viewer, c.outsider)
    }
    table = {**sources(root), **OTHER_MAPPING}
    file = tmp_path / "served.json"
    file.write_text(json.dumps(table))
    with serving(settings.model_copy(update={"crawl": table})) as url:
        yield Served(url, secrets, file)


def test_views_read_the_same_both_ways_and_the_server_decides_already_ingested(
    cli: Cli, served: Served, consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    for args in (
        ("dataset", "list", "--view", "track"),
        ("--json", "dataset", "list", "--view", "track", "--stage", "loading"),
        ("dataset", "list", "--view", "track", "-f", "csv", "--sort", "-id", "--limit", "3"),
        ("dataset", "list", "--view", "discover", "-f", "json", "--title", "GEO"),
    ):
        here = cli("--as", c.viewer, *args)
        there = served.run(cli, c.viewer, *args)
        assert here.code == there.code == 0, (args, here, there)
        assert there.out == here.out, args
    written = {}
    for where, run_as in (
        ("here", ("--as", c.viewer)),
        ("there", ("--server", served.url, "--token", served.tokens[c.viewer])),
    ):
        target = tmp_path / f"{where}.csv"
        r = cli(*run_as, "dataset", "export", "--view", "track", "--to", str(target))
        assert r.code == 0, r
        written[where] = target.read_bytes()
    assert written["here"] == written["there"]
    # "already ingested" by the server's mapping (GSX), not the caller's default (GSE).
    args = ("--json", "dataset", "list", "--view", "discover")
    here = {r["accession"]: r for r in json.loads(cli("--as", c.viewer, *args).out)}
    there = {r["accession"]: r for r in json.loads(served.run(cli, c.viewer, *args).out)}
    assert here["E-GEOD-5"]["already_ingested"] == ["E-MTAB-1 (incoming)"]
    assert there["E-GEOD-5"]["already_ingested"] == []
    # The same refusal both ways; an outsider sees no dataset either way.
    args = ("--json", "dataset", "list", "--view", "track", "--state", "external")
    here, there = cli("--as", c.viewer, *args), served.run(cli, c.viewer, *args)
    assert here.code == there.code == 2, (here, there)
    assert json.loads(there.out) == json.loads(here.out)
    args = ("--json", "dataset", "list", "--view", "track")
    assert json.loads(served.run(cli, c.outsider, *args).out) == []
    assert json.loads(cli("--as", c.outsider, *args).out) == []
    # Over HTTP: CSV for Accept: text/csv, the very text the CLI writes; "views" is no id.
    auth = {"Authorization": f"Bearer {served.tokens[c.viewer]}", "Accept": "text/csv"}
    r = httpx.get(f"{served.url}/api/v1/datasets/views/track", headers=auth,
                  params={"tz": "UTC", "stage": "incoming"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    assert {row["accession"] for row in csv.DictReader(io.StringIO(r.text))} == {
        "E-MTAB-1",
        "E-MTAB-2",
    }
    r = httpx.get(f"{served.url}/api/v1/datasets/views/nope", headers=auth, timeout=30)
    assert r.status_code == 422


def test_duplicates_read_the_same_both_ways_with_the_servers_config(
    cli: Cli, served: Served, consortium: Consortium
) -> None:
    c = consortium
    mapping = served.file
    for args in (("dataset", "duplicates"), ("--json", "dataset", "duplicates", "-p", "p1")):
        here = cli("--as", c.viewer, *args, "--sources", str(mapping))
        there = served.run(cli, c.viewer, *args)
        assert here.code == there.code == 0, (args, here, there)
        assert there.out == here.out, args
    pairs = json.loads(there.out)["pairs"]
    assert [(p["dataset"], p["reason"]) for p in pairs] == [("E-MTAB-4", "same-stage")]
    # With the caller's default mapping E-GEOD-5 would be E-MTAB-1 (GSE5); not on the server.
    assert all("E-GEOD-5" not in (p["dataset"], p["other"]) for p in pairs)
    local = json.loads(cli("--as", c.viewer, "--json", "dataset", "duplicates").out)["pairs"]
    assert any("E-GEOD-5" in (p["dataset"], p["other"]) for p in local)
    # An outsider sees no pair; --sources is not sent to a server.
    assert json.loads(served.run(cli, c.outsider, "--json", "dataset", "duplicates").out) == {
        "pairs": [],
        "content": None,
    }
    r = served.run(cli, c.viewer, "dataset", "duplicates", "--sources", str(mapping))
    assert r.code == 2
    assert "the server reads only its own configured sources" in r.err


def test_files_list_the_same_both_ways_and_get_stays_here(
    cli: Cli, served: Served, consortium: Consortium
) -> None:
    c = consortium
    for args in (("dataset", "files", "E-MTAB-4"), ("--json", "dataset", "files", "E-MTAB-1")):
        here = cli("--as", c.steward, *args, "--sources", str(served.file))
        there = served.run(cli, c.steward, *args)
        assert here.code == there.code == 0, (args, here, there)
        assert there.out == here.out, args
    listed = json.loads(there.out)
    assert {f["kind"] for f in listed["files"]} >= {"metadata"}
    # A dataset one may not see does not exist, the same problem both ways.
    args = ("--json", "dataset", "files", "E-MTAB-4")
    here, there = cli("--as", c.outsider, *args), served.run(cli, c.outsider, *args)
    assert here.code == there.code == 1, (here, there)
    assert json.loads(there.out) == json.loads(here.out)
    assert json.loads(there.out)["code"] == "not-found"
    r = httpx.get(f"{served.url}/api/v1/datasets/{listed['id']}/files", timeout=30,
                  headers={"Authorization": f"Bearer {served.tokens[c.outsider]}"})  # fmt: skip
    assert r.status_code == 404
    # --get reads storage where the command runs: refused through a server, saying so.
    r = served.run(cli, c.steward, "dataset", "files", "E-MTAB-4", "--get", "x.idf.txt")
    assert r.code == 2
    assert "--get x.idf.txt is not taken with --server" in r.err


def test_verify_runs_on_the_server_through_its_own_sources(
    cli: Cli, served: Served, consortium: Consortium
) -> None:
    c = consortium
    for args in (("--json", "dataset", "verify", "E-MTAB-4"), ("dataset", "verify", "E-MTAB-4")):
        there = served.run(cli, c.steward, *args)
        here = cli("--as", c.steward, *args, "--sources", str(served.file))
        assert here.code == there.code == 1, (args, here, there)  # bad.fq does not match
        assert there.out == here.out, args
    found = json.loads(served.run(cli, c.steward, "--json", "dataset", "verify", "E-MTAB-4").out)
    assert (found["checked"], found["matched"], found["mismatched"]) == (2, 1, 1)
    history = json.loads(cli("--as", c.viewer, "--json", "dataset", "history", "E-MTAB-4").out)
    assert [e["type"] for e in history["timeline"]].count("verified") == 5
    # The same refusals both ways: a viewer may not verify; to an outsider it does not exist.
    for user, code in ((c.viewer, 1), (c.outsider, 1)):
        args = ("--json", "dataset", "verify", "E-MTAB-4")
        here, there = cli("--as", user, *args), served.run(cli, user, *args)
        assert here.code == there.code == code, (here, there)
        assert json.loads(there.out) == json.loads(here.out)
    assert json.loads(there.out)["code"] == "not-found"
    r = served.run(cli, c.steward, "dataset", "verify", "E-MTAB-4", "--sources", str(served.file))
    assert r.code == 2
    assert "the server reads only its own configured sources" in r.err


def test_the_overview_page_comes_from_the_server_with_the_same_figures(
    cli: Cli, served: Served, consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    found = {}
    for where, run_as in (
        ("here", ("--as", c.viewer)),
        ("there", ("--server", served.url, "--token", served.tokens[c.viewer])),
    ):
        target = tmp_path / f"{where}.html"
        r = cli(*run_as, "--json", "dataset", "overview", "-o", str(target), "--every", "week")
        assert r.code == 0, r
        found[where] = json.loads(r.out)
        assert found[where].pop("output") == str(target)
        assert "E-MTAB-1" in target.read_text()
    assert found["there"] == found["here"]
    assert found["there"]["datasets"] > 0
    # The page itself, for a browser: sandboxed; someone who sees nothing gets an empty one.
    auth = {"Authorization": f"Bearer {served.tokens[c.viewer]}"}
    page = httpx.get(f"{served.url}/api/v1/datasets/overview", headers=auth, timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("sandbox allow-scripts")
    outsider = served.run(cli, c.outsider, "--json", "dataset", "overview", "-o",
                          str(tmp_path / "none.html"))  # fmt: skip
    assert json.loads(outsider.out)["datasets"] == 0
    refused = httpx.get(
        f"{served.url}/api/v1/datasets/overview", headers={**auth, "Accept": "image/png"},
        timeout=30,
    )  # fmt: skip
    assert refused.status_code == 406
    # an existing file is refused before the server is asked, as here
    again = served.run(cli, c.viewer, "dataset", "overview", "-o", str(tmp_path / "there.html"))
    assert again.code == 2
