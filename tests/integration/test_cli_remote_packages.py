"""``steward package …`` and ``steward share …`` against a server (``--server``): the same
commands give the same output, exit codes and ``--json`` as against the database, through
real HTTP, with the server's worker doing the builds and pushes."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from steward.config import Settings
from steward.services import packages, tokens
from tests import s3
from tests.api_server import serving
from tests.conftest import CliResult, Consortium
from tests.packaging_data import Dataset, make_dataset

Cli = Callable[..., CliResult]
_IDS = re.compile(r"\b(?:pkg|shr|act)_[0-9A-Z]{26}\b")


@dataclass
class Both:
    """One person, here (``--as``, on the database) and there (``--server``, their token)."""

    cli: Cli
    server: str
    user: str
    token: str

    def here(self, *args: str) -> CliResult:
        return self.cli("--as", self.user, *args)

    def there(self, *args: str) -> CliResult:
        return self.cli("--server", self.server, "--token", self.token, *args)


def _same(here: CliResult, there: CliResult, names: dict[str, str]) -> None:
    """Equal once what each run made (ids, names) is named alike."""

    def plain(text: str) -> str:
        for mine, theirs in names.items():
            text = text.replace(theirs, mine)
        return _IDS.sub("ID", text)

    assert here.code == there.code, (here, there)
    assert plain(there.out) == plain(here.out), (here.out, there.out)
    assert plain(there.err) == plain(here.err), (here.err, there.err)


@dataclass
class Setup:
    c: Consortium
    server: str
    settings: Settings
    data: Dataset
    outbox: Path


def _setup(settings: Settings, c: Consortium, tmp_path: Path, **changes: Any) -> Iterator[Setup]:
    data = make_dataset(tmp_path / "lims", samples=3, fastq_size=300)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    served = settings.model_copy(update={"api_source_roots": [str(tmp_path / "lims")],
                                         "api_push_roots": [str(outbox)], **changes})  # fmt: skip
    with serving(served, worker=True) as url:
        yield Setup(c, url, served, data, outbox)


@pytest.fixture
def setup(settings: Settings, consortium: Consortium, tmp_path: Path) -> Iterator[Setup]:
    yield from _setup(settings, consortium, tmp_path)


def _token(c: Consortium, user: str, scope: str = "write") -> str:
    return tokens.create(c.db, actor=user, scope=scope, expires_in=timedelta(hours=1)).secret


def _create_args(s: Setup, name: str, *extra: str) -> tuple[str, ...]:
    return ("package", "create", name, "-p", s.c.project, "-m", str(s.data.manifest),
            "--workflow-manifest", str(s.data.workflow_manifest),
            "--base-dir", str(s.data.root), *extra)  # fmt: skip


def _made(result: CliResult) -> str:
    found = _IDS.search(result.out)
    assert found, result
    return found[0]


def test_the_package_and_share_story_reads_the_same_both_ways(cli: Cli, setup: Setup) -> None:
    s, c = setup, setup.c
    sam = Both(cli, s.server, c.steward, _token(c, c.steward))
    names = {"cup-here": "cup-there"}
    here = sam.here(*_create_args(s, "cup-here"))
    there = sam.there(*_create_args(s, "cup-there"))
    _same(here, there, names)
    assert here.code == 0, here
    assert "created: now built (version 3)" in there.out
    mine, theirs = _made(here), _made(there)
    ids = {mine: theirs}

    def both(*args: str) -> tuple[CliResult, CliResult]:
        return (sam.here(*(a.format(p=mine) for a in args)),
                sam.there(*(a.format(p=theirs) for a in args)))  # fmt: skip

    def same(*args: str) -> tuple[CliResult, CliResult]:
        found = both(*args)
        _same(*found, names | ids)
        return found

    # the same package asked for again: "already exists", nothing built twice
    _same(sam.here(*_create_args(s, "cup-here")), sam.there(*_create_args(s, "cup-there")), names)
    same("package", "build", "{p}")
    same("--json", "package", "files", "{p}")
    same("package", "files", "{p}")
    same("package", "validate", "{p}")
    same("--json", "package", "validate", "{p}", "--full")
    same("--json", "package", "retry", "{p}")  # built: nothing to retry, the same refusal
    here, there = both("--json", "package", "show", "{p}")
    mine_shown, theirs_shown = json.loads(here.out), json.loads(there.out)
    for key in ("files_by_data_type", "bytes_by_data_type", "warnings", "available_actions"):
        assert theirs_shown[key] == mine_shown[key], key
    assert [e["type"] for e in theirs_shown["timeline"]] == [
        e["type"] for e in mine_shown["timeline"]
    ]
    assert theirs_shown["bag_path"] == str(packages.bag_dir(s.settings, theirs))
    here, there = both("package", "show", "{p}")
    assert here.code == there.code == 0
    assert "warnings" not in there.out
    assert "you may now" in there.out

    # the report: downloaded to this machine (by default into STEWARD_HOME/reports)
    there = sam.there("package", "report", theirs)
    assert there.code == 0, there
    local_copy = Path(there.out.strip())
    assert local_copy == (s.settings.home / "reports" / theirs / "report.html").resolve()
    bag = packages.bag_dir(s.settings, theirs)
    assert local_copy.read_bytes() == (bag / "report.html").read_bytes()
    out = s.outbox.parent / "mine.html"
    there = sam.there("--json", "package", "report", theirs, "-o", str(out))
    assert json.loads(there.out) == {"report": str(out)}
    assert out.read_bytes() == (bag / "report.html").read_bytes()
    again = sam.there("--json", "package", "report", theirs, "-o", str(out))
    assert again.code == 2  # no overwriting without --force, as here
    assert sam.here("--json", "package", "report", mine, "-o", str(out)).code == 2
    assert sam.there("package", "report", theirs, "-o", str(out), "--force").code == 0
    copy = s.outbox.parent / "copy.html"
    here = sam.here("package", "report", mine, "-o", str(copy))
    assert (here.code, here.out.strip()) == (0, str(copy))
    assert copy.read_bytes() == (packages.bag_dir(s.settings, mine) / "report.html").read_bytes()
    inside = sam.here("--json", "package", "report", mine, "-o", str(bag / "x.html"))
    assert inside.code == 2  # never into a bag

    # pushes: the server's worker sends, the command shows the same
    here, there = both("share", "push", "{p}", "--to", str(s.outbox))
    _same(here, there, names | ids)
    assert "pushed: now succeeded" in there.out
    assert (s.outbox / "cup-there" / "bagit.txt").is_file()
    shr_here, shr_there = _made(here), _made(there)
    same("share", "push", "{p}", "--to", str(s.outbox))  # sent already: said the same way
    for args in (("--json", "share", "show", "{s}", "--objects"), ("share", "show", "{s}")):
        h = sam.here(*(a.format(s=shr_here) for a in args))
        t = sam.there(*(a.format(s=shr_there) for a in args))
        assert h.code == t.code == 0, (h, t)
        if "--json" in args:
            mine_j, theirs_j = json.loads(h.out), json.loads(t.out)
            assert [o["key"].split("/", 1)[-1] for o in theirs_j["objects"]] == [
                o["key"].split("/", 1)[-1] for o in mine_j["objects"]
            ]
            assert theirs_j["detail"]["registered_objects"] == len(theirs_j["objects"])
    # --no-wait: queued, said the same way
    names["late-here"] = "late-there"
    here = sam.here("--json", *_create_args(s, "late-here", "--no-build"))
    there = sam.there("--json", *_create_args(s, "late-there", "--no-build"))
    assert json.loads(here.out)["state"] == json.loads(there.out)["state"] == "pending"
    late = json.loads(there.out)["id"]
    queued = sam.there("--json", "package", "build", late)
    assert queued.code == 0, queued
    assert json.loads(queued.out)["state"] == "built"


def test_refusals_read_the_same_both_ways(cli: Cli, setup: Setup, tmp_path: Path) -> None:
    s, c = setup, setup.c
    sam = Both(cli, s.server, c.steward, _token(c, c.steward))
    unknown = "pkg_00000000000000000000000000"
    cases = [
        ("--json", "package", "show", unknown),
        ("--json", "package", "files", unknown),
        ("--json", "package", "validate", unknown),
        ("--json", "package", "report", unknown),
        ("--json", "package", "build", unknown),
        ("--json", "package", "retry", unknown),
        ("--json", "share", "show", "shr_00000000000000000000000000"),
        ("--json", "share", "push", unknown, "--to", str(s.outbox)),
        ("--json", "share", "presign", unknown, "--expires", "3d"),
        ("--json", "share", "presign", unknown, "--expires", "soon"),
        ("--json", "package", "create", "x", "-p", "nope", "-m", str(s.data.manifest),
         "--base-dir", str(s.data.root)),
    ]  # fmt: skip
    for args in cases:
        here, there = sam.here(*args), sam.there(*args)
        assert here.code == there.code != 0, (args, here, there)
        assert json.loads(there.err or there.out) == json.loads(here.err or here.out), args
    # a pending package cannot be validated, either way
    pending = json.loads(sam.here("--json", *_create_args(s, "p", "--no-build")).out)["id"]
    here, there = (
        sam.here("--json", "package", "validate", pending),
        sam.there("--json", "package", "validate", pending),
    )
    assert here.code == there.code == 2
    assert json.loads(there.out) == json.loads(here.out)
    # a missing manifest file: a usage error either way
    missing = ("package", "create", "m", "-p", c.project, "-m", str(tmp_path / "none.csv"))
    assert sam.here(*missing).code == sam.there(*missing).code == 2


def test_over_a_server_only_the_servers_places_are_open(
    cli: Cli, setup: Setup, tmp_path: Path
) -> None:
    s, c = setup, setup.c
    sam = Both(cli, s.server, c.steward, _token(c, c.steward))
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(s.data.root, elsewhere)
    outside = sam.there("--json", "package", "create", "far", "-p", c.project,
                        "-m", str(elsewhere / "samples.csv"),
                        "--base-dir", str(elsewhere))  # fmt: skip
    assert outside.code == 2
    problem = json.loads(outside.out)
    assert problem["errors"][0]["field"] == "base_dir"
    assert "STEWARD_API_SOURCE_ROOTS" in json.dumps(problem)
    relative = sam.there("--json", "package", "create", "rel", "-p", c.project,
                         "-m", str(s.data.manifest))  # fmt: skip
    assert relative.code == 2
    assert "base_dir" in json.loads(relative.out)["errors"][0]["message"]
    built = _made(sam.there(*_create_args(s, "cup")))
    far = sam.there("--json", "share", "push", built, "--to", str(elsewhere))
    assert far.code == 2
    assert "STEWARD_API_PUSH_ROOTS" in json.loads(far.out)["detail"]
    read_only = Both(cli, s.server, c.steward, _token(c, c.steward, scope="read"))
    refused = read_only.there("--json", *_create_args(s, "ro"))
    assert refused.code == 1
    assert json.loads(refused.out)["code"] == "forbidden"
    viewer = Both(cli, s.server, c.viewer, _token(c, c.viewer))
    for args in (("--json", *_create_args(s, "v")),
                 ("--json", "share", "push", built, "--to", str(s.outbox))):  # fmt: skip
        here, there = viewer.here(*args), viewer.there(*args)
        assert here.code == there.code == 1, (here, there)
        assert json.loads(there.out)["code"] == json.loads(here.out)["code"] == "forbidden"


# ---- presigned links (S3) ------------------------------------------------------------------
@pytest.fixture
def s3_setup(
    settings: Settings, consortium: Consortium, tmp_path: Path, seaweedfs: s3.SeaweedFS,
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Setup, str]]:  # fmt: skip
    cfg = seaweedfs.config()
    for name, value in (
        ("STEWARD_S3_ENDPOINT", cfg.endpoint),
        ("STEWARD_S3_REGION", cfg.region),
        ("STEWARD_S3_ACCESS_KEY_ID", cfg.access_key_id or ""),
        ("STEWARD_S3_SECRET_ACCESS_KEY", cfg.secret_access_key or ""),
    ):
        monkeypatch.setenv(name, value or "")  # the local CLI reaches the same store  # fmt: skip
    with_s3 = settings.model_copy(update={
        "s3_endpoint": cfg.endpoint, "s3_region": cfg.region,
        "s3_access_key_id": cfg.access_key_id,
        "s3_secret_access_key": SecretStr(cfg.secret_access_key or ""),
    })  # fmt: skip
    for s in _setup(with_s3, consortium, tmp_path, api_push_roots=[f"s3://{s3_bucket}/in"]):
        yield s, s3_bucket


def test_presign_writes_the_script_here_both_ways(
    cli: Cli, s3_setup: tuple[Setup, str], tmp_path: Path
) -> None:
    s, bucket = s3_setup
    c = s.c
    sam = Both(cli, s.server, c.steward, _token(c, c.steward))
    mine = _made(sam.here(*_create_args(s, "here")))
    theirs = _made(sam.there(*_create_args(s, "there")))
    for who, pkg in ((sam.here, mine), (sam.there, theirs)):
        pushed = who("share", "push", pkg, "--to", f"s3://{bucket}/in/")
        assert pushed.code == 0, pushed
    here = sam.here("share", "presign", mine, "--expires", "1h")
    there = sam.there("share", "presign", theirs, "--expires", "1h")
    assert here.code == there.code == 0, (here, there)
    first = re.sub(r"shr_\w+|until .*", "X", there.out.splitlines()[0])
    assert first == re.sub(r"shr_\w+|until .*", "X", here.out.splitlines()[0])
    script = Path(there.out.splitlines()[1])
    assert script.parent.parent == (s.settings.home / "shares").resolve()
    assert script.name == "download-there.sh"
    assert stat.S_IMODE(os.stat(script).st_mode) == 0o700
    assert "X-Amz-Signature" in script.read_text()
    target = tmp_path / "got"
    env = {k: v for k, v in os.environ.items() if not k.endswith("CA_BUNDLE")}
    run = subprocess.run(["sh", str(script), "--dest", str(target)], capture_output=True,
                         text=True, timeout=120, env=env, check=False)  # fmt: skip
    assert run.returncode == 0, (run.stdout, run.stderr)
    bag = packages.bag_dir(s.settings, theirs)
    assert (target / "report.html").read_bytes() == (bag / "report.html").read_bytes()
    # -o: checked before anything is asked for, then written 0700 there
    out = tmp_path / "dl.sh"
    made = sam.there("--json", "share", "presign", theirs, "-o", str(out))
    assert made.code == 0, made
    assert json.loads(made.out)["script_path"] == str(out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    kept = sam.there("--json", "share", "presign", theirs, "-o", str(out))
    assert kept.code == 2
    assert json.loads(kept.out)["errors"][0]["field"] == "output"
