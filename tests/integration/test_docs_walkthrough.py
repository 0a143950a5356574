"""The README's and the guides' command examples, run as written, in order, on a fresh Steward.

`test_docs.py` checks that every example *parses*; here the stories people copy line by line
are really run: each line must succeed. Only what a reader would fill in is filled in: the
`req_…`/`pkg_…`/`shr_…` placeholders become the id the story created last, and the input files
the story names (a LIMS manifest, an export from another system) are put in the folder first.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from steward.config import Settings
from steward.db.models import AccessRequest, Package, Share
from steward.db.session import Database
from tests import s3
from tests.conftest import CliResult
from tests.packaging_data import make_dataset

ROOT = Path(__file__).resolve().parents[2]
Cli = Callable[..., CliResult]
PLACEHOLDER = re.compile(r"^(req|pkg|shr)_(…|01J0{23})$")
MODELS = {"req": AccessRequest, "pkg": Package, "shr": Share}


def story(path: Path, heading: str) -> list[str]:
    """The shell lines of the ``sh`` blocks under ``heading`` (continuations joined)."""
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    nxt = text.find("\n## ", start + len(heading))
    body = text[start : nxt if nxt != -1 else len(text)]
    lines: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```$", body, flags=re.M | re.S):
        lines += [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip()]
    assert lines, f"no sh block under {heading!r} in {path.name}"
    return lines


def commands(line: str) -> Iterator[list[str]]:
    """``a && b`` → [a], [b]; comments dropped."""
    words = shlex.split(line, comments=True)
    current: list[str] = []
    for w in words:
        if w == "&&":
            yield current
            current = []
        else:
            current.append(w)
    if current:
        yield current


def latest(db: Database, prefix: str) -> str:
    model = MODELS[prefix]
    with db.transaction() as s:
        found = s.scalar(select(model.id).order_by(model.created_at.desc(), model.id.desc()))
    assert found, f"the story uses a {prefix}_… id before creating one"
    return str(found)


def run_story(
    lines: list[str], cli: Cli, db: Database, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Run each line; return what was run (placeholders filled in) for the failure message."""
    ran: list[str] = []
    for line in lines:
        for words in commands(line):
            if words[0] == "source":
                # `source .venv/bin/activate`: what it puts on PATH must be there.
                assert (ROOT / words[1]).exists() or words[1] == ".venv/bin/activate"
                continue
            if words[0] == "make":
                continue  # the suite itself is what `make` set up
            if words[0] == "export":
                name, _, value = words[1].partition("=")
                monkeypatch.setenv(name, value)
                continue
            assert words[0] == "steward", f"unexpected command in a story: {line}"
            args = [latest(db, m.group(1)) if (m := PLACEHOLDER.match(w)) else w for w in words[1:]]
            result = cli(*args)
            ran.append(shlex.join(["steward", *args]))
            assert result.code == 0, f"{ran[-1]}\nexit {result.code}\n{result.err}{result.out}"
            assert "Traceback" not in result.out + result.err
    return ran


@pytest.fixture
def story_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("BROWSER", "true")  # `--open` opens a browser that does nothing
    for name in ("STEWARD_USER", "STEWARD_TIMEZONE", "STEWARD_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return folder


def test_readme_using_it(
    settings: Settings,
    cli: Cli,
    story_folder: Path,
    seaweedfs: s3.SeaweedFS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The files the README's story names: a LIMS manifest and its workflow outputs, and an
    # export of request histories from another system, with the story's own people.
    data = make_dataset(story_folder)
    shutil.copy(data.manifest, story_folder / "lims.csv")
    shutil.copy(data.workflow_manifest, story_folder / "workflow.csv")
    for rel in ("runs", "analysis"):
        shutil.copytree(data.root / rel, story_folder / rel)
    with (story_folder / "export.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["request", "state", "at", "title", "requester", "actor", "reason"])
        w.writerow(
            ["DAR-7", "draft", "2026-01-10T09:00:00+00:00", "Old study", "carol", "carol", ""]
        )
        w.writerow(["DAR-7", "submitted", "2026-01-11T09:00:00+00:00", "", "", "carol", ""])
        w.writerow(["DAR-7", "returned", "2026-01-13T09:00:00+00:00", "", "", "bob", "Scope?"])
    # The tracker's sources: one folder of incoming datasets, with MAGE-TAB, a manifest and
    # a checksum sidecar.
    (story_folder / "sources.toml").write_text(
        "[[crawl.sources]]\n"
        f'name = "incoming"\nproject = "1kd"\nurl = "{story_folder}/storage/incoming"\n'
        'stage = "incoming"\n'
        "pattern = '^E-MTAB-\\d+$'\n"
        'extractors = ["mage-tab-idf", "expected-files"]\n',
        encoding="utf-8",
    )
    dataset = story_folder / "storage" / "incoming" / "E-MTAB-1"
    (dataset / "raw").mkdir(parents=True)
    (dataset / "E-MTAB-1.idf.txt").write_text("Investigation Title\tLiver atlas\n")
    (dataset / "raw" / "run1.fq").write_text("ACGT\n")
    (dataset / "raw" / "run1.fq.md5").write_text("58ce66d7df0a1cf9b360cabf43da3ea5  run1.fq\n")
    (dataset / "manifest.tsv").write_text("path\tsize\nraw/run1.fq\t5\n")
    # `s3://recipient/…` is the recipient's bucket on the configured endpoint.
    cfg = seaweedfs.config()
    monkeypatch.setenv("STEWARD_S3_ENDPOINT", seaweedfs.endpoint)
    monkeypatch.setenv("STEWARD_S3_REGION", cfg.region)
    monkeypatch.setenv("STEWARD_S3_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("STEWARD_S3_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    for name in set(os.environ) - set(s3.loopback_env()):
        monkeypatch.delenv(name)  # CA bundles and proxies meant for the outside world
    with contextlib.suppress(RuntimeError):  # made by the other backend's run of this test
        seaweedfs.make_bucket("recipient")

    db = Database(settings)
    try:
        ran = run_story(story(ROOT / "README.md", "## Using it"), cli, db, monkeypatch)
        with db.read() as s:
            states = dict(s.execute(select(AccessRequest.external_id, AccessRequest.state)).all())
    finally:
        db.dispose()  # a pooled connection left to the garbage collector warns in a later test
    assert any(r.startswith("steward share presign") for r in ran)
    assert (story_folder / "changelog.xlsx").stat().st_size > 0
    assert states.get("DAR-7") == "returned"
    assert (story_folder / "datasets.xlsx").stat().st_size > 0
    assert "E-MTAB-1" in (story_folder / "datasets.html").read_text(encoding="utf-8")


def test_index_first_steps(
    settings: Settings, cli: Cli, story_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(settings)
    try:
        ran = run_story(
            story(ROOT / "docs" / "index.md", "It runs with zero setup"), cli, db, monkeypatch
        )
    finally:
        db.dispose()
    assert ran[0] == "steward demo"
    assert len(ran) == 3


def test_csv_lists_are_joined_as_the_docs_say(
    cli: Cli, story_folder: Path, consortium: object
) -> None:
    """docs/access-requests.md says how a list lands in a CSV cell; the export must agree."""
    doc = (ROOT / "docs" / "access-requests.md").read_text(encoding="utf-8")
    assert "in CSV joined by `; `" in doc
    created = cli(
        "request", "create", "p1", "--title", "Two datasets", "--institution", "Uni",
        "--project-lead", "Prof", "--intended-use", "Research", "-d", "raw/wgs", "-d", "phenotypes",
        "--as", "ada",
    )  # fmt: skip
    assert created.code == 0, created.err
    out = cli("report", "tracking", "--format", "csv", "--as", "sam")
    assert out.code == 0, out.err
    rows = list(csv.DictReader(out.out.splitlines()))
    assert [r["datasets"] for r in rows] == ["raw/wgs; phenotypes"]
