"""GA4GH DRS 1.5 over real HTTP: built packages as bundles, their files as blobs, bytes by
local path or by a presigned S3 link minted per request (SeaweedFS), checked by a DRS client
written from the spec; who may not see the package hears "not found"."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from steward.config import Settings
from steward.services import package_build, packages, shares, tokens
from steward.services.packages import PackageSpec
from tests import s3
from tests.api_server import serving
from tests.conftest import Consortium
from tests.drs_client import DrsClient
from tests.packaging_data import Dataset, make_dataset

DRS = "/ga4gh/drs/v1"


@pytest.fixture
def s3_settings(settings: Settings, seaweedfs: s3.SeaweedFS) -> Settings:
    cfg = seaweedfs.config()
    return settings.model_copy(update={
        "s3_endpoint": cfg.endpoint, "s3_region": cfg.region,
        "s3_access_key_id": cfg.access_key_id,
        "s3_secret_access_key": SecretStr(cfg.secret_access_key or ""),
    })  # fmt: skip


@pytest.fixture
def data(tmp_path: Path) -> Dataset:
    return make_dataset(tmp_path / "ds")


@pytest.fixture
def built(consortium: Consortium, s3_settings: Settings, data: Dataset) -> packages.PackageView:
    c = consortium
    spec = PackageSpec(name="cup", manifest=data.manifest, workflow_manifest=data.workflow_manifest)
    view, _ = packages.create(c.db, s3_settings, actor=c.steward, project=c.project, spec=spec)
    return package_build.build(c.db, s3_settings, actor=c.steward, package_id=view.id)


@pytest.fixture
def api(consortium: Consortium, s3_settings: Settings) -> Iterator[str]:
    with serving(s3_settings) as url:
        yield url


def _token(c: Consortium, user: str) -> str:
    return tokens.create(c.db, actor=user, scope="read", expires_in=timedelta(hours=1)).secret


def test_a_package_is_a_bundle_of_blobs_whose_bytes_check_out(
    consortium: Consortium, built: packages.PackageView, api: str
) -> None:
    c = consortium
    client = DrsClient(api, _token(c, c.viewer))
    host = api.removeprefix("http://")
    bundle = client.resolve(f"drs://{host}/{built.id}")
    # In byte order of their paths, as DRS numbers them on either database.
    files = sorted(
        packages.files(c.db, actor=c.steward, package_id=built.id), key=lambda f: f.relpath
    )
    assert bundle["id"] == built.id
    assert bundle["self_uri"] == f"drs://{host}/{built.id}"
    assert [m["name"] for m in bundle["contents"]] == [f.relpath for f in files]
    assert bundle["size"] == sum(f.size or 0 for f in files)
    joined = "".join(sorted(f.sha256 or "" for f in files))
    assert bundle["checksums"] == [
        {"checksum": hashlib.sha256(joined.encode()).hexdigest(), "type": "sha-256"}
    ]
    for member, f in zip(bundle["contents"], files, strict=True):
        blob = client.resolve(member["drs_uri"][0])
        assert blob["size"] == f.size
        assert {ck["type"] for ck in blob["checksums"]} == {"sha-256", "md5"}
        assert [m["type"] for m in blob["access_methods"]] == ["file"]
        client.bytes_of(blob)  # read from the bag, every checksum verified


def test_after_a_push_to_s3_a_presigned_link_is_minted_per_request(
    consortium: Consortium, built: packages.PackageView, s3_settings: Settings,
    s3_bucket: str, api: str,
) -> None:  # fmt: skip
    c = consortium
    share = shares.push(c.db, s3_settings, actor=c.steward, package_id=built.id,
                        destination=f"s3://{s3_bucket}/out")  # fmt: skip
    client = DrsClient(api, _token(c, c.viewer))
    blob = client.resolve(f"drs://{api.removeprefix('http://')}/{built.id}.1")
    s3_method = next(m for m in blob["access_methods"] if m["type"] == "s3")
    assert s3_method["access_url"]["url"].startswith(f"s3://{s3_bucket}/out/cup/data/")
    assert s3_method["access_id"] == f"https-{share.id}"
    blob["access_methods"] = [s3_method]  # fetch it from S3, not from the bag
    data = client.bytes_of(blob)
    assert data
    headers = {"Authorization": f"Bearer {client.token}"}
    first = httpx.get(f"{api}{DRS}/objects/{built.id}.1/access/{s3_method['access_id']}",
                      headers=headers, timeout=60).json()["url"]  # fmt: skip
    assert "X-Amz-Expires=900" in first  # a link for the next 15 minutes, not for a week
    nope = httpx.get(f"{api}{DRS}/objects/{built.id}.1/access/ftp", headers=headers, timeout=60)
    assert nope.status_code == 404
    assert s3_method["access_id"] in nope.json()["errors"][0]["accepted"]


def test_who_may_not_see_the_package_hears_not_found(
    consortium: Consortium, built: packages.PackageView, api: str
) -> None:
    c = consortium
    outsider = {"Authorization": f"Bearer {_token(c, c.requester)}"}
    for object_id in (built.id, f"{built.id}.1"):
        hidden = httpx.get(f"{api}{DRS}/objects/{object_id}", headers=outsider, timeout=60)
        assert hidden.status_code == 404
        body = hidden.json()
        # A problem document that also speaks DRS's Error.
        assert body["status"] == body["status_code"] == 404
        assert body["msg"] == body["detail"] == f"no DRS object {object_id!r}"
    unknown = httpx.get(f"{api}{DRS}/objects/{built.id}.999", headers=outsider, timeout=60).json()
    assert unknown["msg"] == f"no DRS object '{built.id}.999'"
    anonymous = httpx.get(f"{api}{DRS}/objects/{built.id}", timeout=60)
    assert anonymous.status_code == 401
    assert anonymous.json()["status_code"] == 401


def test_service_info_bulk_and_authorizations(
    consortium: Consortium, built: packages.PackageView, api: str
) -> None:
    c = consortium
    info = httpx.get(f"{api}{DRS}/service-info", timeout=60).json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "drs", "version": "1.5.0"}
    assert info["maxBulkRequestLength"] == info["drs"]["maxBulkRequestLength"] >= 1
    assert {"name", "url"} <= set(info["organization"])
    opts = httpx.options(f"{api}{DRS}/objects/{built.id}")
    assert opts.json() == {"drs_object_id": built.id, "supported_types": ["BearerAuth"]}
    headers = {"Authorization": f"Bearer {_token(c, c.viewer)}"}
    ids = [built.id + ".1", built.id + ".2", "pkg_x"]
    bulk = httpx.post(
        f"{api}{DRS}/objects", headers=headers, json={"bulk_object_ids": ids}, timeout=60
    ).json()
    assert bulk["summary"] == {"requested": 3, "resolved": 2, "unresolved": 1}
    assert bulk["unresolved_drs_objects"] == [{"error_code": 404, "object_ids": ["pkg_x"]}]
    passports = httpx.post(f"{api}{DRS}/objects/{built.id}", headers=headers,
                           json={"passports": ["eyJ..."]}, timeout=60)  # fmt: skip
    assert passports.status_code == 422


def test_the_drs_examples_in_the_docs_run_as_written(
    consortium: Consortium, built: packages.PackageView, api: str
) -> None:
    import json
    import os
    import re
    import subprocess

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    section = text[text.index("## GA4GH DRS") :]
    section = section[: section.index("\n## ")]
    (block,) = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.M | re.S)
    lines = [ln for ln in block.splitlines() if ln.strip()]
    assert len(lines) >= 4
    env = dict(os.environ, TOKEN=_token(consortium, consortium.viewer), PKG=built.id)
    for line in lines:
        real = line.replace("http://127.0.0.1:8000", api)
        run = subprocess.run(["bash", "-c", real], env=env, capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
        assert run.returncode == 0, (line, run.stdout, run.stderr)
        answer = json.loads(run.stdout)
        assert answer, line
    assert answer["summary"]["resolved"] == 2
