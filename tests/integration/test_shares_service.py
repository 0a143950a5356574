"""Pushing packages to a folder and to real S3 (SeaweedFS), and presigned download scripts."""

from __future__ import annotations

import csv
import os
import subprocess
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from steward.config import Settings
from steward.db.models import Share, ShareObject
from steward.errors import InvalidTransition, StewardError, ValidationFailed
from steward.services import package_build, packages, shares
from steward.services.packages import PackageSpec
from steward.services.shares import ShareFilter
from tests import s3
from tests.conftest import Consortium
from tests.packaging_data import Dataset, make_dataset, tree_digests


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


def _built(c: Consortium, settings: Settings, data: Dataset) -> packages.PackageView:
    spec = PackageSpec(name="cup", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    view, _ = packages.create(c.db, settings, actor=c.steward, project=c.project, spec=spec)
    return package_build.build(c.db, settings, actor=c.steward, package_id=view.id)


def test_push_to_a_folder_copies_the_whole_bag_and_records_every_object(
    consortium: Consortium, settings: Settings, data: Dataset, tmp_path: Path
) -> None:
    pkg = _built(consortium, settings, data)
    dest = tmp_path / "recipient"
    share = shares.push(
        consortium.db, settings, actor=consortium.steward, package_id=pkg.id, destination=str(dest)
    )
    assert share.state == "succeeded"
    bag = packages.bag_dir(settings, pkg.id)
    assert tree_digests(dest / "cup") == tree_digests(bag)
    with consortium.db.transaction() as s:
        registered = s.scalar(
            select(func.count()).select_from(ShareObject).where(ShareObject.share_id == share.id)
        )
    assert registered == len(tree_digests(bag)) == share.object_count
    # the same push again: the same share, nothing new
    again = shares.push(
        consortium.db, settings, actor=consortium.steward, package_id=pkg.id, destination=str(dest)
    )
    assert again.id == share.id
    listed = shares.list_shares(
        consortium.db, actor=consortium.viewer, flt=ShareFilter(package=pkg.id)
    )
    assert [v.id for v in listed] == [share.id]


def test_only_built_packages_are_shared(
    consortium: Consortium, settings: Settings, data: Dataset, tmp_path: Path
) -> None:
    spec = PackageSpec(name="cup", manifest=data.manifest)
    view, _ = packages.create(
        consortium.db, settings, actor=consortium.steward, project=consortium.project, spec=spec
    )
    with pytest.raises(InvalidTransition, match="built"):
        shares.push(
            consortium.db,
            settings,
            actor=consortium.steward,
            package_id=view.id,
            destination=str(tmp_path / "x"),
        )


def test_push_to_s3_then_presign_and_download_with_the_script(
    consortium: Consortium,
    s3_settings: Settings,
    data: Dataset,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    pkg = _built(consortium, s3_settings, data)
    share = shares.push(
        consortium.db,
        s3_settings,
        actor=consortium.steward,
        package_id=pkg.id,
        destination=f"s3://{s3_bucket}/outgoing/",
    )
    assert share.state == "succeeded"
    assert share.destination == f"s3://{s3_bucket}/outgoing/cup"
    script_share = shares.presign(
        consortium.db,
        s3_settings,
        actor=consortium.steward,
        package_id=pkg.id,
        expires=timedelta(hours=1),
        output=tmp_path / "get-cup.sh",
    )
    assert script_share.method == "presign"
    assert script_share.state == "succeeded"
    dest = tmp_path / "downloaded"
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper() and "CA_BUNDLE" not in k}
    env.pop("SSL_CERT_FILE", None)
    done = subprocess.run(
        ["sh", str(tmp_path / "get-cup.sh"), "--dest", str(dest)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert tree_digests(dest) == tree_digests(packages.bag_dir(s3_settings, pkg.id))


def test_presign_needs_a_push_to_s3_first(
    consortium: Consortium, settings: Settings, data: Dataset, tmp_path: Path
) -> None:
    pkg = _built(consortium, settings, data)
    with pytest.raises(ValidationFailed, match="not in object storage"):
        shares.presign(
            consortium.db,
            settings,
            actor=consortium.steward,
            package_id=pkg.id,
            expires=timedelta(days=1),
        )
    with pytest.raises(ValidationFailed, match="7 days"):
        shares.presign(
            consortium.db,
            settings,
            actor=consortium.steward,
            package_id=pkg.id,
            expires=timedelta(days=8),
        )


def test_a_missing_bucket_or_wrong_key_stops_before_anything_moves(
    consortium: Consortium,
    s3_settings: Settings,
    data: Dataset,
    s3_bucket: str,
) -> None:
    pkg = _built(consortium, s3_settings, data)
    with pytest.raises(StewardError, match="no-such-bucket"):
        shares.push(
            consortium.db,
            s3_settings,
            actor=consortium.steward,
            package_id=pkg.id,
            destination="s3://no-such-bucket/x/",
        )
    bucket = s3_bucket
    bad = s3_settings.model_copy(update={"s3_secret_access_key": SecretStr("not-the-secret")})
    with pytest.raises(StewardError) as err:
        shares.push(
            consortium.db,
            bad,
            actor=consortium.steward,
            package_id=pkg.id,
            destination=f"s3://{bucket}/x/",
        )
    assert "not-the-secret" not in str(err.value)
    with consortium.db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Share)) == 0


def test_a_fetch_package_with_awkward_source_names_is_pushed_complete(
    consortium: Consortium, settings: Settings, tmp_path: Path
) -> None:
    """A fetch-mode push copies each payload file from its source, whose URI is
    percent-encoded (``file:///…/a%20b.fq``): the file read must be the one the URI names."""
    src = tmp_path / "src dir #1"
    src.mkdir()
    names = ["plain_R1.fastq.gz", "with space_R1.fastq.gz", "ünï #2 & $x_R1.fastq.gz"]
    rows = []
    for i, file_name in enumerate(names):
        (src / file_name).write_bytes(f"reads {i}\n".encode())
        rows.append(
            {
                "sample_id": f"S{i}",
                "library_id": f"L{i}",
                "subject_id": f"SBJ{i}",
                "project_id": "PRJA",
                "data_type": "fastq",
                "run_id": "RUN1",
                "lane": "1",
                "path": file_name,
            }
        )
    manifest = src / "samples.csv"
    with manifest.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    spec = PackageSpec(name="holey", manifest=manifest, mode="fetch")
    view, _ = packages.create(
        consortium.db, settings, actor=consortium.steward, project=consortium.project, spec=spec
    )
    pkg = package_build.build(consortium.db, settings, actor=consortium.steward, package_id=view.id)
    dest = tmp_path / "recipient"
    share = shares.push(
        consortium.db, settings, actor=consortium.steward, package_id=pkg.id, destination=str(dest)
    )
    assert share.state == "succeeded"
    for i, file_name in enumerate(names):
        pushed = dest / "holey" / "data" / "PRJA" / "fastq" / "RUN1" / f"L{i}" / file_name
        assert pushed.read_bytes() == f"reads {i}\n".encode()


def test_shares_are_hidden_from_whoever_may_not_see_them_and_every_touch_is_audited(
    consortium: Consortium, settings: Settings, data: Dataset, tmp_path: Path
) -> None:
    """Readers (staff, reviewers, viewers) see shares; a requester or an outsider hears the
    same "not found" as for an id that does not exist — no project, no package, no owner —
    whether they look, list the objects, comment, abort or push; each refusal is audited."""
    from steward.db.models import AuditEntry
    from steward.errors import NotFound

    c = consortium
    pkg = _built(c, settings, data)
    share = shares.push(
        c.db, settings, actor=c.steward, package_id=pkg.id, destination=str(tmp_path / "r")
    )
    for who in (c.steward, c.reviewer, c.viewer, c.admin):
        assert shares.get(c.db, actor=who, share_id=share.id).share.id == share.id
        assert len(shares.objects(c.db, actor=who, share_id=share.id)) == share.object_count
    with pytest.raises(NotFound) as unknown:
        shares.get(c.db, actor=c.requester, share_id="shr_00000000000000000000000000")
    for who in (c.requester, c.outsider):
        for attempt in (
            partial(shares.get, c.db, actor=who, share_id=share.id),
            partial(shares.objects, c.db, actor=who, share_id=share.id),
            partial(shares.act, c.db, actor=who, share_id=share.id, command="comment", text="x"),
            partial(shares.act, c.db, actor=who, share_id=share.id, command="abort", reason="x"),
        ):
            with pytest.raises(NotFound) as hidden:
                attempt()
            problem = hidden.value.as_problem()
            assert problem["detail"] == unknown.value.message.replace(
                "shr_00000000000000000000000000", share.id
            )
            assert c.project not in str(problem)
            assert pkg.id not in str(problem)
        with pytest.raises(NotFound, match=f"no package '{pkg.id}'"):
            shares.push(
                c.db, settings, actor=who, package_id=pkg.id, destination=str(tmp_path / "x")
            )
    with c.db.transaction() as s:
        denied = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.subject_id).where(
                AuditEntry.outcome == "denied", AuditEntry.subject_kind == "share"
            )
        ).all()
    for who in (c.requester, c.outsider):
        assert {(a, act) for a, act, sid in denied if a == who and sid == share.id} == {
            (who, "show"),
            (who, "objects"),
            (who, "comment"),
            (who, "abort"),
        }


def test_a_store_refusing_stewards_credentials_is_not_a_persons_denial(
    consortium: Consortium,
    settings: Settings,
    data: Dataset,
    seaweedfs: s3.SeaweedFS,
    s3_bucket: str,
) -> None:
    """Read-only keys cannot write the recipient's bucket: that is the store refusing Steward
    (StorageDenied, HTTP 502), not the steward lacking a role (Forbidden, 403, audited as
    their denial)."""
    from steward.db.models import AuditEntry
    from steward.errors import Forbidden, StorageDenied

    c = consortium
    pkg = _built(c, settings, data)
    cfg = seaweedfs.readonly_config()
    readonly = settings.model_copy(
        update={
            "s3_endpoint": cfg.endpoint,
            "s3_region": cfg.region,
            "s3_access_key_id": cfg.access_key_id,
            "s3_secret_access_key": SecretStr(cfg.secret_access_key or ""),
        }
    )
    with pytest.raises(StorageDenied) as refused:
        shares.push(
            c.db, readonly, actor=c.steward, package_id=pkg.id, destination=f"s3://{s3_bucket}/in"
        )
    assert not isinstance(refused.value, Forbidden)
    assert refused.value.as_problem()["status"] == 502
    with c.db.read() as s:
        denied = s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.outcome == "denied")
        )
    assert denied == 0
