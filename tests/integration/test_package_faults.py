"""kill -9 in the middle of a build and of a push, then run the same command again.

Each must finish with every object present once and intact: no missing file, no duplicate
registry row, no corrupt byte, no temporary file left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from steward.config import Settings
from steward.db.models import Package, Share, ShareObject
from steward.db.session import Database
from steward.services import access
from tests.packaging_data import make_dataset, tree_digests

RUN = [sys.executable, "-c", "from steward.cli.app import run; run()"]


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["STEWARD_HOME"] = str(settings.home)
    env["STEWARD_DATABASE_URL"] = settings.resolved_database_url
    env["STEWARD_USER"] = "admin"
    env["STEWARD_WORKERS"] = "2"
    return env


def _steward(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RUN, *args], env=_env(settings), capture_output=True, text=True, check=False, timeout=300
    )


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if ready():
                break
        except Exception:
            pass
        time.sleep(0.02)
    assert proc.poll() is None, f"the {what} finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _setup(settings: Settings, tmp_path: Path) -> tuple[Database, Path, Path]:
    db = Database(settings)
    db.migrate()
    access.bootstrap_admin(db, user_id="admin")
    access.create_project(db, actor="admin", project_id="p1")
    data = make_dataset(tmp_path / "ds", samples=40, fastq_size=600_000)
    return db, data.manifest, data.workflow_manifest


def _no_temp_files(root: Path) -> None:
    leftovers = [
        p for p in root.rglob("*") if p.name.endswith((".part", ".tmp")) or ".tmp" in p.name
    ]
    assert leftovers == []


def test_build_survives_kill_9(settings: Settings, tmp_path: Path) -> None:
    db, manifest, workflow = _setup(settings, tmp_path)
    args = ["package", "create", "big", "-p", "p1", "-m", str(manifest)]
    args += ["--workflow-manifest", str(workflow)]
    proc = subprocess.Popen([*RUN, *args], env=_env(settings), stdout=subprocess.DEVNULL)

    def some_files_done() -> bool:
        bags = list((settings.home / "packages").glob("pkg_*"))
        return bool(bags) and sum(1 for _ in (bags[0] / "data").rglob("*.fastq.gz")) >= 10

    try:
        _kill_when(proc, some_files_done, "build")
    finally:
        if proc.poll() is None:
            proc.kill()
    with db.transaction() as s:
        (pkg_id, state) = s.execute(select(Package.id, Package.state)).one()
    assert state == "building"

    done = _steward(settings, *args)  # the same command again continues the same package
    assert done.returncode == 0, done.stdout + done.stderr
    with db.transaction() as s:
        assert s.execute(select(Package.id, Package.state)).all() == [(pkg_id, "built")]
    check = _steward(settings, "package", "validate", pkg_id, "--full")
    assert check.returncode == 0, check.stdout + check.stderr
    bag = settings.home / "packages" / pkg_id
    _no_temp_files(bag)
    sources = {Path(p).name: d for p, d in tree_digests(manifest.parent).items()}
    for rel, digest in tree_digests(bag / "data").items():
        name = Path(rel).name
        if name in sources:
            assert sources[name] == digest, rel
    db.dispose()


@pytest.mark.parametrize("target", ["folder", "s3"])
def test_push_survives_kill_9(
    settings: Settings,
    tmp_path: Path,
    target: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if target == "s3":
        server = request.getfixturevalue("seaweedfs")
        bucket = request.getfixturevalue("s3_bucket")
        cfg = server.config()
        monkeypatch.setenv("STEWARD_S3_ENDPOINT", cfg.endpoint)
        monkeypatch.setenv("STEWARD_S3_REGION", cfg.region)
        monkeypatch.setenv("STEWARD_S3_ACCESS_KEY_ID", cfg.access_key_id)
        monkeypatch.setenv("STEWARD_S3_SECRET_ACCESS_KEY", cfg.secret_access_key)
        destination = f"s3://{bucket}/out/"
    else:
        destination = str(tmp_path / "recipient")
    db, manifest, _ = _setup(settings, tmp_path)
    made = _steward(settings, "package", "create", "big", "-p", "p1", "-m", str(manifest))
    assert made.returncode == 0, made.stderr
    with db.transaction() as s:
        pkg_id = s.scalar(select(Package.id))
    assert pkg_id
    args = ["share", "push", pkg_id, "--to", destination, "--concurrency", "2"]
    proc = subprocess.Popen([*RUN, *args], env=_env(settings), stdout=subprocess.DEVNULL)

    def some_objects_done() -> bool:
        with db.transaction() as s:
            return (s.scalar(select(func.count()).select_from(ShareObject)) or 0) >= 5

    try:
        _kill_when(proc, some_objects_done, "push")
    finally:
        if proc.poll() is None:
            proc.kill()
    done = _steward(settings, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    bag = settings.home / "packages" / pkg_id
    expected = tree_digests(bag)
    with db.transaction() as s:
        shares = s.execute(select(Share.id, Share.state)).all()
        keys = list(s.scalars(select(ShareObject.key)))
    assert len(shares) == 1
    assert shares[0][1] == "succeeded"
    assert sorted(keys) == sorted(expected)  # each object once: the primary key forbids twice
    if target == "folder":
        assert tree_digests(tmp_path / "recipient" / "big") == expected
        _no_temp_files(tmp_path / "recipient")
    else:
        from steward.adapters.storage import open_store

        store = open_store(f"s3://{bucket}/out/big", server.config())
        listed = {o.key: o.size for o in store.list()}
        assert listed == {k: (bag / k).stat().st_size for k in expected}
        for key in list(expected)[:5]:
            assert store.read(key) == (bag / key).read_bytes()
    db.dispose()
