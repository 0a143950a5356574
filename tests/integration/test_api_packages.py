"""Packages and shares over the API, through real HTTP on loopback, on SQLite and PostgreSQL:
a package from an uploaded manifest (confined to the server's ``api_source_roots``), its build
queued and done by the embedded worker, its files, contents, validation and report; pushes
(confined to ``api_push_roots``) and presigned links; and every bad input refused with a
problem document that names what is wrong."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from steward.config import Settings
from steward.services import package_build, packages, tokens
from steward.services.packages import PackageSpec
from tests import s3
from tests.api_server import serving
from tests.conftest import Consortium
from tests.packaging_data import Dataset, make_dataset

PROBLEM = "application/problem+json"
V1 = "/api/v1"


def _token(c: Consortium, user: str, scope: str = "write") -> str:
    return tokens.create(c.db, actor=user, scope=scope, expires_in=timedelta(hours=1)).secret


def _client(api: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=api, headers=headers, timeout=60)


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert body["status"] == status
    return dict(body)


@dataclass
class Place:
    api: str
    c: Consortium
    settings: Settings
    data: Dataset
    outbox: Path


def _served(settings: Settings, c: Consortium, tmp: Path, **changes: Any) -> Iterator[Place]:
    data = make_dataset(tmp / "lims", samples=3, fastq_size=300)
    outbox = tmp / "outbox"
    outbox.mkdir()
    configured = settings.model_copy(
        update={
            "api_source_roots": [str(tmp / "lims")],
            "api_push_roots": [str(outbox)],
            "api_upload_mib": 1,
            **changes,
        }
    )
    with serving(configured, worker=True) as api:
        yield Place(api, c, configured, data, outbox)


@pytest.fixture
def place(settings: Settings, consortium: Consortium, tmp_path: Path) -> Iterator[Place]:
    yield from _served(settings, consortium, tmp_path)


def _form(p: Place, name: str = "cup", **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {"name": name, "project": p.c.project, "base_dir": str(p.data.root)}
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


def _files(p: Place, manifest: bytes | None = None) -> dict[str, Any]:
    return {
        "manifest": ("lims.csv", manifest or p.data.manifest.read_bytes(), "text/csv"),
        "workflow_manifest": ("workflow.csv", p.data.workflow_manifest.read_bytes(), "text/csv"),
    }


def _wait_for_job(http: httpx.Client, action_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = http.get(f"{V1}/jobs/{action_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"{action_id} did not finish: {job}")


def _uploads(settings: Settings) -> list[Path]:
    folder = settings.home / "uploads" / "manifests"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_package_from_an_uploaded_manifest_is_built_by_the_worker(place: Place) -> None:
    p, c = place, place.c
    with _client(p.api, _token(c, c.steward)) as http:
        made = http.post(f"{V1}/packages", data=_form(p), files=_files(p),
                         headers={"Idempotency-Key": "cup-1"})  # fmt: skip
        assert made.status_code == 201, made.text
        body = made.json()
        pkg = body["package"]
        assert body["created"] is True
        assert made.headers["location"] == f"{V1}/packages/{pkg['id']}"
        assert pkg["file_count"] == 12
        assert body["warnings"] == []
        job = _wait_for_job(http, body["action_id"])
        assert job["state"] == "done", job
        assert job["subject_id"] == pkg["id"]
        assert http.get(f"{V1}/packages/{pkg['id']}").json()["item"]["state"] == "built"
        # the same form again (also with the same key): the same package, nothing queued
        again = http.post(f"{V1}/packages", data=_form(p), files=_files(p),
                          headers={"Idempotency-Key": "cup-1"})  # fmt: skip
        assert again.status_code == 200, again.text
        assert again.json()["created"] is False
        assert again.json()["package"]["id"] == pkg["id"]
        assert again.json()["action_id"] is None
        # the upload is kept for the package, private; the repeat's is not
        kept = _uploads(p.settings)
        assert [k.name for k in kept] == ["lims.csv", "workflow.csv"]
        assert {stat.S_IMODE(os.stat(k).st_mode) for k in kept} == {0o600}
        assert stat.S_IMODE(os.stat(kept[0].parent).st_mode) == 0o700
        assert kept[0].read_bytes() == p.data.manifest.read_bytes()

        contents = http.get(f"{V1}/packages/{pkg['id']}/contents").json()
        assert contents["files_by_data_type"] == {"bam": 3, "fastq": 6, "vcf": 3}
        assert contents["bag_path"] == str(packages.bag_dir(p.settings, pkg["id"]))
        seen, url = [], f"{V1}/packages/{pkg['id']}/files?limit=5"
        while url:
            page = http.get(url).json()
            assert page["total"] == 12
            seen += [f["relpath"] for f in page["items"]]
            url = page["next"]
        local = packages.files(c.db, actor=c.steward, package_id=pkg["id"])
        assert seen == [f.relpath for f in local]
        for full in ("false", "true"):
            check = http.get(f"{V1}/packages/{pkg['id']}/validation", params={"full": full})
            assert check.status_code == 200, check.text
            assert check.json()["problems"] == []
            assert check.json()["files"] == 12

        html = http.get(f"{V1}/packages/{pkg['id']}/report")
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        assert "sandbox allow-scripts" in html.headers["content-security-policy"]
        bag = packages.bag_dir(p.settings, pkg["id"])
        assert html.content == (bag / "report.html").read_bytes()
        data = http.get(f"{V1}/packages/{pkg['id']}/report", headers={"Accept": "application/json"})
        assert data.status_code == 200
        assert data.json()["package_id"] == pkg["id"]
        assert len(data.json()["files"]["rows"]) == 12
        assert http.get(f"{V1}/packages/{pkg['id']}/report?format=json").json() == data.json()
        refused = _problem(
            http.get(f"{V1}/packages/{pkg['id']}/report", headers={"Accept": "text/csv"}), 406
        )
        assert refused["errors"][0]["accepted"] == "text/html, application/json"

        # pushed to a folder of api_push_roots, by the worker
        pushed = http.post(f"{V1}/shares", json={"package": pkg["id"],
                                                  "destination": str(p.outbox)})  # fmt: skip
        assert pushed.status_code == 202, pushed.text
        share = pushed.json()["share"]
        assert pushed.headers["location"] == f"{V1}/shares/{share['id']}"
        assert _wait_for_job(http, pushed.json()["action_id"])["state"] == "done"
        assert (p.outbox / "cup" / "bagit.txt").is_file()
        registry = http.get(f"{V1}/shares/{share['id']}/objects", params={"limit": 100}).json()
        assert registry["total"] == len(registry["items"]) > 12
        assert registry["bytes"] == sum(o["size"] for o in registry["items"])
        done = http.post(f"{V1}/shares", json={"package": pkg["id"], "destination": str(p.outbox)})
        assert done.status_code == 200  # already sent: nothing queued
        assert done.json() == {"share": done.json()["share"], "action_id": None}
        assert done.json()["share"]["id"] == share["id"]


def test_a_pending_package_is_queued_on_request(place: Place) -> None:
    p, c = place, place.c
    with _client(p.api, _token(c, c.steward)) as http:
        made = http.post(f"{V1}/packages", data=_form(p, build="false"), files=_files(p))
        assert made.status_code == 201, made.text
        assert made.json()["action_id"] is None
        pkg = made.json()["package"]["id"]
        assert made.json()["package"]["state"] == "pending"
        queued = http.post(f"{V1}/packages/{pkg}/build")
        assert queued.status_code == 202, queued.text
        assert _wait_for_job(http, queued.json()["action_id"])["state"] == "done"
        again = _problem(http.post(f"{V1}/packages/{pkg}/build"), 409)
        assert "built" in again["detail"]
        other = http.post(f"{V1}/packages", data=_form(p, name="later", build="false"),
                          files=_files(p)).json()["package"]["id"]  # fmt: skip
    with _client(p.api, _token(c, c.viewer)) as http:
        assert _problem(http.post(f"{V1}/packages/{other}/build"), 403)["code"] == "forbidden"


def _row_problem(r: httpx.Response) -> dict[str, Any]:
    body = _problem(r, 422)
    assert body["errors"], body
    return body


def test_an_uploaded_manifest_may_name_files_only_in_the_servers_places(
    place: Place, tmp_path: Path
) -> None:
    p, c = place, place.c
    secret = tmp_path / "secret" / "passwd.fastq.gz"
    secret.parent.mkdir()
    secret.write_bytes(b"root:x:0:0")
    lines = p.data.manifest.read_text().splitlines()
    header = lines[0]
    outside = "\n".join([header, lines[1], lines[2].replace(lines[2].split(",")[-1], str(secret))])
    with _client(p.api, _token(c, c.steward)) as http:
        r = http.post(f"{V1}/packages", data=_form(p, name="x1"),
                      files={"manifest": ("lims.csv", outside.encode(), "text/csv")})  # fmt: skip
        body = _row_problem(r)
        (err,) = [e for e in body["errors"] if e.get("row") == 3]
        assert str(secret) in err["value"]
        assert "STEWARD_API_SOURCE_ROOTS" in err["accepted"]
        assert str(secret) in json.dumps(body)
        # a symbolic link inside the place that leads out of it is refused the same way
        link = p.data.root / "runs" / "link.fastq.gz"
        link.symlink_to(secret)
        linked = "\n".join(
            [header, lines[1].replace(lines[1].split(",")[-1], "runs/link.fastq.gz")]
        )
        r = http.post(f"{V1}/packages", data=_form(p, name="x2"),
                      files={"manifest": ("lims.csv", linked.encode(), "text/csv")})  # fmt: skip
        assert "leads to" in json.dumps(_row_problem(r))
        # relative paths need base_dir; base_dir must lie in the places
        r = http.post(f"{V1}/packages", data=_form(p, name="x3", base_dir=None), files=_files(p))
        assert "base_dir" in _row_problem(r)["errors"][0]["message"]
        r = http.post(f"{V1}/packages", data=_form(p, name="x4", base_dir=str(tmp_path / "secret")),
                      files=_files(p))  # fmt: skip
        assert _row_problem(r)["errors"][0]["field"] == "base_dir"
        # s3:// files: only under an s3:// place, and none is listed here
        s3row = "\n".join([header, lines[1].replace(lines[1].split(",")[-1], "s3://bkt/a/x.fq")])
        r = http.post(f"{V1}/packages", data=_form(p, name="x5"),
                      files={"manifest": ("lims.csv", s3row.encode(), "text/csv")})  # fmt: skip
        assert "s3://bkt/a/x.fq" in json.dumps(_row_problem(r))
        # allow_root may narrow the places, never widen them
        r = http.post(f"{V1}/packages", data=_form(p, name="x6", allow_root=str(tmp_path)),
                      files=_files(p))  # fmt: skip
        assert _row_problem(r)["errors"][0]["field"] == "allow_root"
    assert _uploads(p.settings) == []  # nothing of a refused upload is kept


def test_with_no_places_configured_every_file_is_refused_naming_the_setting(
    settings: Settings, consortium: Consortium, tmp_path: Path
) -> None:
    for p in _served(settings, consortium, tmp_path, api_source_roots=[], api_push_roots=[]):
        c = p.c
        with _client(p.api, _token(c, c.steward)) as http:
            absolute = p.data.manifest.read_text().replace(",runs/", f",{p.data.root}/runs/")
            r = http.post(f"{V1}/packages", data=_form(p, base_dir=None),
                          files={"manifest": ("m.csv", absolute.encode())})  # fmt: skip
            body = _row_problem(r)
            assert all("STEWARD_API_SOURCE_ROOTS" in e["accepted"] for e in body["errors"])
            assert all("none on this server" in e["accepted"] for e in body["errors"])
            assert {e["row"] for e in body["errors"]} >= {2, 3}
            assert all("outside" in e["message"] for e in body["errors"])
            spec = PackageSpec(name="b", manifest=p.data.manifest,
                               workflow_manifest=p.data.workflow_manifest)  # fmt: skip
            built, _ = packages.create(c.db, p.settings, actor=c.steward, project=c.project,
                                       spec=spec)  # fmt: skip
            package_build.build(c.db, p.settings, actor=c.steward, package_id=built.id)
            push = _problem(
                http.post(f"{V1}/shares", json={"package": built.id, "destination": str(p.outbox)}),
                422,
            )
            assert "STEWARD_API_PUSH_ROOTS" in push["detail"]
            assert not any(p.outbox.iterdir())


def test_bad_requests_are_refused_with_a_problem(place: Place, tmp_path: Path) -> None:
    p, c = place, place.c
    url = f"{V1}/packages"
    with _client(p.api, _token(c, c.steward)) as http:
        as_json = http.post(url, json={"name": "cup", "project": c.project})
        assert _problem(as_json, 415)["errors"][0]["accepted"] == "multipart/form-data"
        plain = http.post(url, content=b"name=cup", headers={"Content-Type": "text/plain"})
        _problem(plain, 415)
        big = {"manifest": ("lims.csv", b"x" * (2 << 20), "text/csv")}
        too_large = _problem(http.post(url, data=_form(p), files=big), 413)
        assert "STEWARD_API_UPLOAD_MIB" in too_large["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n'
            for _ in range(40):
                yield b"y" * (64 << 10)

        multipart = {"Content-Type": "multipart/form-data; boundary=b"}
        streamed = http.post(url, content=chunks(), headers=multipart)
        _problem(streamed, 413)
        missing = _problem(http.post(url, data=_form(p), files={"other": ("a", b"a")}), 422)
        assert "manifest" in {e["field"] for e in missing["errors"]}
        extra = _problem(http.post(url, data=_form(p, colour="red"), files=_files(p)), 422)
        assert extra["errors"][0]["field"] == "colour"
        nul = _problem(http.post(url, data=_form(p, description="a\x00b"), files=_files(p)), 422)
        assert nul["errors"][0]["field"] == "description"
        unknown = _problem(http.post(url, data=_form(p, project="nope"), files=_files(p)), 404)
        assert "nope" in unknown["detail"]
        bad_name = _problem(http.post(url, data=_form(p, name="../x"), files=_files(p)), 422)
        assert bad_name["errors"][0]["field"] == "name"
        first = http.post(url, data=_form(p, name="k1"), files=_files(p),
                          headers={"Idempotency-Key": "same"})  # fmt: skip
        assert first.status_code == 201, first.text
        other = http.post(url, data=_form(p, name="k2"), files=_files(p),
                          headers={"Idempotency-Key": "same"})  # fmt: skip
        assert _problem(other, 422)["errors"][0]["field"] == "Idempotency-Key"
        changed = _files(p, p.data.manifest.read_bytes() + b"\n")
        other_file = http.post(url, data=_form(p, name="k1"), files=changed,
                               headers={"Idempotency-Key": "same"})  # fmt: skip
        assert _problem(other_file, 422)["errors"][0]["field"] == "Idempotency-Key"
        bad_dest = _problem(
            http.post(f"{V1}/shares", json={"package": "pkg_x", "destination": "/tmp", "x": 1}), 422
        )
        assert bad_dest["errors"][0]["field"] == "x"
    with _client(p.api, _token(c, c.steward, scope="read")) as http:
        read_only = _problem(http.post(url, data=_form(p), files=_files(p)), 403)
        assert "read" in read_only["detail"]
    for who, status in ((c.requester, 403), (c.viewer, 403), (c.outsider, 404)):
        with _client(p.api, _token(c, who)) as http:
            _problem(http.post(url, data=_form(p, name=f"by-{who}"), files=_files(p)), status)
    with _client(p.api, None) as http:
        _problem(http.post(url, data=_form(p), files=_files(p)), 401)


def test_an_upload_with_the_session_cookie_needs_the_csrf_token(place: Place) -> None:
    """A form on another site can send multipart/form-data (not JSON): the cookie alone does
    not get an upload in."""
    from steward.services import accounts

    p, c = place, place.c
    accounts.set_password(c.db, actor=c.admin, user_id=c.steward, password="long enough pw 1")
    with _client(p.api, None) as http:
        signed = http.post(
            f"{V1}/session", json={"user": c.steward, "password": "long enough pw 1"}
        )
        assert signed.status_code == 201, signed.text
        forged = _problem(http.post(f"{V1}/packages", data=_form(p), files=_files(p)), 403)
        assert forged["code"] == "forbidden"
        assert _uploads(p.settings) == []
        made = http.post(f"{V1}/packages", data=_form(p), files=_files(p),
                         headers={"X-CSRF-Token": signed.json()["csrf_token"]})  # fmt: skip
        assert made.status_code == 201, made.text


# ---- presigned links (S3) ------------------------------------------------------------------
@pytest.fixture
def s3_place(
    settings: Settings, consortium: Consortium, tmp_path: Path, seaweedfs: s3.SeaweedFS,
    s3_bucket: str,
) -> Iterator[tuple[Place, str]]:  # fmt: skip
    cfg = seaweedfs.config()
    with_s3 = settings.model_copy(update={
        "s3_endpoint": cfg.endpoint, "s3_region": cfg.region,
        "s3_access_key_id": cfg.access_key_id,
        "s3_secret_access_key": SecretStr(cfg.secret_access_key or ""),
    })  # fmt: skip
    for p in _served(with_s3, consortium, tmp_path, api_push_roots=[f"s3://{s3_bucket}/in"]):
        yield p, s3_bucket


def test_push_to_s3_then_presigned_links_and_script(s3_place: tuple[Place, str]) -> None:
    p, bucket = s3_place
    c = p.c
    with _client(p.api, _token(c, c.steward)) as http:
        made = http.post(f"{V1}/packages", data=_form(p), files=_files(p))
        assert _wait_for_job(http, made.json()["action_id"])["state"] == "done"
        pkg = made.json()["package"]["id"]
        early = _problem(http.post(f"{V1}/shares/presign", json={"package": pkg}), 422)
        assert "push it first" in json.dumps(early)
        outside = _problem(http.post(f"{V1}/shares", json={
            "package": pkg, "destination": f"s3://{bucket}/elsewhere"}), 422)  # fmt: skip
        assert "STEWARD_API_PUSH_ROOTS" in outside["detail"]
        pushed = http.post(f"{V1}/shares", json={"package": pkg,
                                                  "destination": f"s3://{bucket}/in/"})  # fmt: skip
        assert pushed.status_code == 202, pushed.text
        assert _wait_for_job(http, pushed.json()["action_id"])["state"] == "done"
        bad = _problem(http.post(f"{V1}/shares/presign", json={"package": pkg, "expires": "9d"}),
                       422)  # fmt: skip
        assert bad["errors"][0]["field"] == "expires"
        signed = http.post(f"{V1}/shares/presign", json={"package": pkg, "expires": "1h"})
        assert signed.status_code == 201, signed.text
        assert signed.headers["cache-control"] == "no-store"
        body = signed.json()
        assert body["share"]["method"] == "presign"
        assert body["share"]["state"] == "succeeded"
        assert body["script"].startswith("#!/bin/sh")
        assert body["script_name"] == "download-cup.sh"
        by_path = {link["path"]: link for link in body["links"]}
        some = next(k for k in by_path if k.endswith(".bam"))
        for link in body["links"]:
            assert link["url"] in body["script"]
        fetched = httpx.get(by_path[some]["url"], timeout=60)
        assert fetched.status_code == 200
        assert hashlib.sha256(fetched.content).hexdigest() == by_path[some]["sha256"]
    with _client(p.api, _token(c, c.viewer)) as http:
        _problem(http.post(f"{V1}/shares/presign", json={"package": pkg}), 403)
        _problem(
            http.post(f"{V1}/shares", json={"package": pkg, "destination": f"s3://{bucket}/in/"}),
            403,
        )


def test_the_curl_examples_in_the_docs_run_as_written(
    s3_place: tuple[Place, str], tmp_path: Path
) -> None:
    """Every line of the section's sh block, in order, against a real server: PKG and ACTION
    taken from the answers (and each queued job waited for) as a reader would."""
    import re
    import shutil
    import subprocess

    from steward.services import access

    p, bucket = s3_place
    c = p.c
    access.create_project(c.db, actor=c.admin, project_id="1kd", title="Kin")
    access.add_member(c.db, actor=c.admin, project_id="1kd", user_id=c.steward, role="steward")
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    body = text[text.index("## Packages over the API\n") :]
    body = body[: body.index("\n## ", 3)]
    (block,) = re.findall(r"^```sh\n(.*?)^```$", body, flags=re.M | re.S)
    lines = [ln for ln in block.splitlines() if ln.strip()]
    assert len(lines) >= 7
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(p.data.manifest, work / "lims.csv")
    shutil.copy(p.data.workflow_manifest, work / "workflow.csv")
    token = _token(c, c.steward)
    env = dict(os.environ, TOKEN=token)
    places = {"http://127.0.0.1:8000": p.api, "/data/lims": str(p.data.root),
              "s3://recipients": f"s3://{bucket}/in"}  # fmt: skip
    with _client(p.api, token) as http:
        for line in lines:
            assert line.startswith("curl -fsS "), line
            real = line
            for shown, actual in places.items():
                real = real.replace(shown, actual)
            run = subprocess.run(["bash", "-c", real], env=env, cwd=work, capture_output=True,
                                 text=True, timeout=120, check=False)  # fmt: skip
            assert run.returncode == 0, (line, run.stdout, run.stderr)
            if " -o " in line or " > " in line:
                continue
            answer = json.loads(run.stdout)
            if isinstance(answer.get("package"), dict):
                env["PKG"] = answer["package"]["id"]
            if answer.get("action_id"):
                env["ACTION"] = answer["action_id"]
                assert _wait_for_job(http, env["ACTION"])["state"] == "done"
    bag = packages.bag_dir(p.settings, env["PKG"])
    assert (work / "report.html").read_bytes() == (bag / "report.html").read_bytes()
    script = work / "download-cup-2026.sh"
    assert script.read_text().startswith("#!/bin/sh")
    clean = {k: v for k, v in os.environ.items() if not k.endswith("CA_BUNDLE")}
    got = subprocess.run(["sh", str(script), "--dest", str(work / "got")], env=clean,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert got.returncode == 0, (got.stdout, got.stderr)
    assert (work / "got" / "report.html").read_bytes() == (bag / "report.html").read_bytes()
