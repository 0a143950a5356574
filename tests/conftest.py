"""Fixtures: a real SQLite file and a real PostgreSQL server; no mocked database anywhere."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from steward.config import Settings
from steward.db.session import Database
from steward.services import access
from tests import pg

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    with pg.cluster() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new, empty database — or, for a test that uses ``db``, one made from the migrated
    template (every migration once per worker, not once per test)."""
    migrated = "db" in request.fixturenames
    if backend == "sqlite":
        path = tmp_path / "steward.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return f"sqlite:///{path}"
    base = request.getfixturevalue("pg_base_url")
    template = request.getfixturevalue("migrated_pg") if migrated else None
    return pg.create_database(base, f"t{os.getpid()}_{next(_counter)}", template=template)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file with every migration applied, copied for each test that wants a
    migrated database (``db``): one migration run per worker instead of one per test."""
    where = tmp_path_factory.mktemp("template")
    database = Database(Settings(home=where, database_url=f"sqlite:///{where / 'tmpl.db'}"))
    database.migrate()
    database.dispose()
    return where / "tmpl.db"


@pytest.fixture(scope="session")
def migrated_pg(pg_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same for PostgreSQL: a template database (copied by CREATE DATABASE … TEMPLATE)."""
    name = f"tmpl_{os.getpid()}"
    url = pg.create_database(pg_base_url, name)
    database = Database(Settings(home=tmp_path_factory.mktemp("pg-template"), database_url=url))
    database.migrate()
    database.dispose()  # a template must have no connections
    return name


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    database.migrate()  # checks the revision: already the newest
    access.bootstrap_admin(database, user_id="admin")
    yield database
    database.dispose()


@dataclass
class Consortium:
    """A small project with one person in each role, for service and CLI tests."""

    db: Database
    project: str = "p1"
    admin: str = "admin"
    steward: str = "sam"
    reviewer: str = "rita"
    reviewer2: str = "rob"
    requester: str = "ada"
    requester2: str = "bea"
    viewer: str = "vic"
    outsider: str = "olga"


@pytest.fixture
def consortium(db: Database) -> Consortium:
    return make_consortium(db)


def make_consortium(db: Database) -> Consortium:
    """Project p1 with one person in each role and two access requirements."""
    from steward.services import catalog

    c = Consortium(db)
    for uid in ("sam", "rita", "rob", "ada", "bea", "vic", "olga"):
        access.add_user(db, actor="admin", user_id=uid)
    access.create_project(db, actor="admin", project_id=c.project, title="Project one")
    for uid, role in (
        ("sam", "steward"),
        ("rita", "reviewer"),
        ("rob", "reviewer"),
        ("ada", "requester"),
        ("bea", "requester"),
        ("vic", "viewer"),
    ):
        access.add_member(db, actor="admin", project_id=c.project, user_id=uid, role=role)
    catalog.add_requirement(
        db,
        actor="sam",
        project=c.project,
        name="Controlled genomes",
        kind="controlled",
        folders=["raw/wgs"],
    )
    catalog.add_requirement(
        db,
        actor="sam",
        project=c.project,
        name="Phenotype terms",
        kind="click-wrap",
        folders=["phenotypes"],
    )
    return c


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> object:
    """Run ``steward …`` in-process against the test database."""
    from steward.cli.app import main

    monkeypatch.setenv("STEWARD_HOME", str(settings.home))
    if settings.database_url:
        monkeypatch.setenv("STEWARD_DATABASE_URL", settings.database_url)
    monkeypatch.delenv("STEWARD_USER", raising=False)
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


# -- S3 (SeaweedFS) ------------------------------------------------------------------------
from tests import s3  # noqa: E402


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[s3.SeaweedFS]:
    """One real S3 server (SeaweedFS) for the whole session; buckets keep tests apart."""
    with s3.SeaweedFS() as server:
        yield server


@pytest.fixture
def s3_bucket(seaweedfs: s3.SeaweedFS) -> str:
    """A fresh, empty bucket for this test."""
    return seaweedfs.make_bucket(f"t{os.getpid()}-{next(_counter)}")
