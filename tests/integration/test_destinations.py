"""Where ``share push`` and ``share presign`` may write: malformed places and protected ones.

Found by a new user: ``--to ""`` (an unset variable) pushed the bag to ``/NAME``, ``--to s3://``
made a local folder ``./s3:/NAME``, and ``--to $STEWARD_HOME/packages/PKG/data/inside``
corrupted the bag being pushed. Each such destination is now refused, by the service itself,
before anything is recorded or moved.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from steward.adapters.storage import DESTINATION_ACCEPTED, open_store, parse_destination
from steward.config import Settings
from steward.db.models import Share
from steward.errors import ValidationFailed
from steward.services import package_build, packages, shares
from steward.services.packages import PackageSpec
from tests import s3
from tests.conftest import CliResult, Consortium
from tests.packaging_data import Dataset, make_dataset, tree_digests

Cli = Callable[..., CliResult]


@pytest.fixture
def data(tmp_path: Path) -> Dataset:
    return make_dataset(tmp_path / "ds")


@pytest.fixture
def s3_settings(settings: Settings, seaweedfs: s3.SeaweedFS) -> Settings:
    cfg = seaweedfs.config()
    return settings.model_copy(
        update={
            "s3_endpoint": cfg.endpoint,
            "s3_region": cfg.region,
            "s3_access_key_id": cfg.access_key_id,
            "s3_secret_access_key": SecretStr(cfg.secret_access_key or ""),
        }
    )


@pytest.fixture
def name() -> Iterator[str]:
    """A package name no other test uses: the old code pushed ``--to ""`` to ``/NAME``."""
    unique = f"dest-{secrets.token_hex(4)}"
    yield unique
    shutil.rmtree(Path("/") / unique, ignore_errors=True)


def built(
    c: Consortium, settings: Settings, manifest: Path, name: str, **spec: object
) -> packages.PackageView:
    view, _ = packages.create(
        c.db,
        settings,
        actor=c.steward,
        project=c.project,
        spec=PackageSpec(name=name, manifest=manifest, **spec),  # type: ignore[arg-type]
    )
    return package_build.build(c.db, settings, actor=c.steward, package_id=view.id)


def share_count(c: Consortium) -> int:
    with c.db.transaction() as s:
        return s.scalar(select(func.count()).select_from(Share)) or 0


def push(c: Consortium, settings: Settings, pkg: str, destination: str) -> shares.ShareView:
    return shares.push(c.db, settings, actor=c.steward, package_id=pkg, destination=destination)


# -- malformed destinations -------------------------------------------------------------------

MALFORMED = [
    ("", "empty"),
    ("   ", "empty"),
    ("s3://", "no bucket"),
    ("s3:///x", "no bucket"),
    ("s3://Not_A_Bucket/x", "not a bucket name"),
    ("s3://bucket/../x", "'..'"),
    ("s3:/bucket/x", "two slashes"),
    ("relative/dir", "relative path"),
    ("./out", "relative path"),
    ("~/out", "'~' is not expanded"),
    ("ftp://x", "not supported"),
    ("file://server/share", "names a host"),
    ("file://", "no folder"),
    ("file:///tmp/out?x=1", "'?' or '#'"),
    (" /tmp/out", "white space"),
    ("/tmp/o\nut", "control characters"),
]


@pytest.mark.parametrize(("text", "why"), MALFORMED)
def test_malformed_destinations_are_refused_by_the_parser(text: str, why: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        parse_destination(text, field="destination")
    (detail,) = err.value.details
    assert detail.field == "destination"
    assert why in detail.message
    assert detail.accepted == DESTINATION_ACCEPTED


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/srv/out/", "/srv/out"),
        ("file:///srv/my%20out", "/srv/my out"),
        ("file://localhost/srv/out", "/srv/out"),
        ("s3://bucket", "s3://bucket"),
        ("S3://bucket/a//b/", "s3://bucket/a/b"),
    ],
)
def test_good_destinations_are_normalised(text: str, parsed: str) -> None:
    assert parse_destination(text) == parsed


@pytest.mark.parametrize(("text", "why"), MALFORMED[:9] + MALFORMED[10:11])
def test_the_service_refuses_malformed_destinations_before_anything_moves(
    consortium: Consortium,
    settings: Settings,
    data: Dataset,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    why: str,
) -> None:
    pkg = built(consortium, settings, data.manifest, name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # where a relative destination would have gone
    with pytest.raises(ValidationFailed) as err:
        push(consortium, settings, pkg.id, text)
    assert err.value.details[0].field == "destination"
    assert why in err.value.details[0].message
    assert share_count(consortium) == 0
    assert list(work.iterdir()) == []
    assert not (Path("/") / name).exists()


def test_the_cli_says_what_was_given_and_what_is_accepted(
    cli: Cli, consortium: Consortium, settings: Settings, data: Dataset, name: str
) -> None:
    pkg = built(consortium, settings, data.manifest, name)
    r = cli("--as", "sam", "share", "push", pkg.id, "--to", "")
    assert r.code == 2, r.out + r.err
    assert "destination" in r.err
    assert "empty" in r.err
    assert "s3://bucket" in r.err
    assert "absolute" in r.err
    r = cli("--as", "sam", "--json", "share", "push", pkg.id, "--to", "s3://")
    assert r.code == 2
    problem = json.loads(r.out or r.err)
    assert problem["errors"][0] == {
        "message": "no bucket after s3://",
        "field": "destination",
        "value": "s3://",
        "accepted": DESTINATION_ACCEPTED,
    }
    assert share_count(consortium) == 0
    assert not (Path("/") / name).exists()


# -- protected places -------------------------------------------------------------------------


def test_steward_home_bags_and_sources_are_refused(
    consortium: Consortium, settings: Settings, data: Dataset, tmp_path: Path
) -> None:
    pkg = built(consortium, settings, data.manifest, "cup")
    bag = packages.bag_dir(settings, pkg.id)
    before = tree_digests(bag)
    link = tmp_path / "looks-harmless"
    link.symlink_to(bag / "data")
    sources = data.root / "runs"
    refused = {
        str(bag / "data" / "inside"): "the packages folder",
        f"file://{bag}": "the packages folder",
        str(settings.home): "STEWARD_HOME",
        str(settings.home / "elsewhere"): "STEWARD_HOME",
        str(link): "the packages folder",  # a symbolic link into the bag is the bag
        str(sources / "RUN1"): "a folder this package's files come from",
        f"{sources}/RUN1/deeper": "a folder this package's files come from",
    }
    for destination, what in refused.items():
        with pytest.raises(ValidationFailed) as err:
            push(consortium, settings, pkg.id, destination)
        assert err.value.details[0].field == "destination", destination
        assert what in " ".join(d.message for d in err.value.details), destination
        assert err.value.details[0].value == destination
    assert tree_digests(bag) == before
    check = packages.validate(
        consortium.db, settings, actor=consortium.steward, package_id=pkg.id, full=True
    )
    assert check.problems == []
    assert share_count(consortium) == 0
    assert sorted(p.name for p in (sources / "RUN1").iterdir()) == sorted(
        f"L{i:03d}_R{r}.fastq.gz" for i in range(3) for r in (1, 2)
    )
    # the package's folder may not hold the sources either: "source" at ds/ is their parent
    other = built(consortium, settings, data.manifest, "source")
    with pytest.raises(ValidationFailed, match="Steward does not write there") as err:
        push(consortium, settings, other.id, str(data.root.parent))
    assert "contains a folder this package's files come from" in err.value.details[0].message
    # and a place outside all of them works
    ok = push(consortium, settings, pkg.id, str(tmp_path / "recipient"))
    assert ok.state == "succeeded"
    assert tree_digests(tmp_path / "recipient" / "cup") == before


def test_an_s3_push_into_the_sources_own_prefix_is_refused(
    consortium: Consortium, s3_settings: Settings, s3_bucket: str, tmp_path: Path
) -> None:
    store = open_store(f"s3://{s3_bucket}", s3_settings.s3_config())
    rows = []
    for i in range(2):
        key = f"runs/RUN1/L{i}_R1.fastq.gz"
        store.write(key, f"reads {i}\n".encode())
        rows.append(
            {
                "sample_id": f"S{i}",
                "library_id": f"L{i}",
                "subject_id": f"SBJ{i}",
                "project_id": "PRJA",
                "data_type": "fastq",
                "run_id": "RUN1",
                "lane": "1",
                "path": f"s3://{s3_bucket}/{key}",
            }
        )
    manifest = tmp_path / "samples.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    pkg = built(consortium, s3_settings, manifest, "runs", mode="fetch")
    for destination in (f"s3://{s3_bucket}/runs/RUN1", f"s3://{s3_bucket}/"):
        with pytest.raises(ValidationFailed) as err:
            push(consortium, s3_settings, pkg.id, destination)
        assert "a folder this package's files come from" in err.value.details[0].message
    assert sorted(o.key for o in store.list()) == [
        "runs/RUN1/L0_R1.fastq.gz",
        "runs/RUN1/L1_R1.fastq.gz",
    ]
    ok = push(consortium, s3_settings, pkg.id, f"s3://{s3_bucket}/outgoing")
    assert ok.state == "succeeded"


# -- presign: where the script goes ------------------------------------------------------------


@pytest.fixture
def pushed(
    consortium: Consortium, s3_settings: Settings, s3_bucket: str, data: Dataset
) -> packages.PackageView:
    pkg = built(
        consortium, s3_settings, data.manifest, "cup", workflow_manifest=data.workflow_manifest
    )
    push(consortium, s3_settings, pkg.id, f"s3://{s3_bucket}/outgoing/")
    return pkg


def presign(
    c: Consortium, settings: Settings, pkg: str, output: Path | None, force: bool = False
) -> shares.ShareView:
    return shares.presign(
        c.db,
        settings,
        actor=c.steward,
        package_id=pkg,
        expires=timedelta(hours=1),
        output=output,
        force=force,
    )


def test_scripts_are_private_and_never_replace_a_file_unasked(
    consortium: Consortium,
    s3_settings: Settings,
    pushed: packages.PackageView,
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        default = presign(consortium, s3_settings, pushed.id, None)
        chosen = tmp_path / "get-cup.sh"
        presign(consortium, s3_settings, pushed.id, chosen)
    finally:
        os.umask(old)
    assert default.script_path is not None
    script = Path(default.script_path)
    assert script.parent.parent == s3_settings.home / "shares"
    assert stat.S_IMODE(script.stat().st_mode) == 0o700
    assert stat.S_IMODE(script.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o700
    first = hashlib.sha256(chosen.read_bytes()).hexdigest()
    count = share_count(consortium)
    with pytest.raises(ValidationFailed, match="already exists") as err:
        presign(consortium, s3_settings, pushed.id, chosen)
    assert err.value.details[0].field == "output"
    assert "--force" in (err.value.details[0].accepted or "")
    assert hashlib.sha256(chosen.read_bytes()).hexdigest() == first
    assert share_count(consortium) == count  # refused before anything was recorded
    again = presign(consortium, s3_settings, pushed.id, chosen, force=True)
    assert again.state == "succeeded"
    assert hashlib.sha256(chosen.read_bytes()).hexdigest() != first
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o700
    with pytest.raises(ValidationFailed, match="does not exist"):
        presign(consortium, s3_settings, pushed.id, tmp_path / "no" / "such" / "x.sh")
    assert not (tmp_path / "no").exists()


def test_scripts_are_not_written_into_bags_sources_or_steward_home(
    consortium: Consortium,
    s3_settings: Settings,
    pushed: packages.PackageView,
    data: Dataset,
    cli: Cli,
) -> None:
    bag = packages.bag_dir(s3_settings, pushed.id)
    before = tree_digests(bag)
    count = share_count(consortium)
    for where in (
        bag / "get.sh",
        bag / "data" / "get.sh",
        s3_settings.home / "get.sh",
        data.root / "runs" / "RUN1" / "get.sh",
    ):
        with pytest.raises(ValidationFailed, match="Steward does not write there"):
            presign(consortium, s3_settings, pushed.id, where)
        assert not where.exists()
    assert tree_digests(bag) == before
    assert share_count(consortium) == count
    r = cli("--as", "sam", "share", "presign", pushed.id, "-o", str(bag / "x.sh"))
    assert r.code == 2, r.out + r.err
    assert "the packages folder" in r.err


def test_open_store_never_reads_a_host_or_an_empty_file_url_as_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationFailed, match="names the host 'server'"):
        open_store("file://server/share")
    assert open_store("file://").url == "file:///"  # what "file:///x".rpartition("/") leaves
    assert open_store("file://localhost/srv").url == "file:///srv"
