"""The database handle: engine, transactions and migrations, built from Settings on demand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from steward.config import Settings
from steward.errors import Conflict, DatabaseUnavailable, Detail

_MIGRATION_LOCK = 0x5354455741524400  # "STEWARD\0": one schema migration at a time (PostgreSQL)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself so reads and writes share one transaction.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def build_engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args["connect_timeout"] = settings.connect_timeout
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(str(files("steward.db"))) / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


class Database:
    """One per process; services open transactions through it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = build_engine(settings)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._checked = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _unavailable(self, exc: Exception) -> DatabaseUnavailable:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else ""
        return DatabaseUnavailable(
            f"cannot reach the database at {self.settings.redacted_database_url()}: {reason}",
            [
                Detail(
                    "check the server is running and the URL is right", field="STEWARD_DATABASE_URL"
                )
            ],
        )

    def current_revision(self) -> str | None:
        try:
            return self._current_revision()
        except OperationalError as exc:
            raise self._unavailable(exc) from None

    def _current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(alembic_config(self.engine)).get_current_head()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent).

        Safe when several processes start on a new database at once: on PostgreSQL they take
        turns under an advisory lock; on SQLite (where a migration is one transaction) the
        ones that lose the race wait for the winner and then find the schema current.
        """
        deadline = time.monotonic() + 60
        while True:
            try:
                with self._migration_lock():
                    if self._current_revision() != self.head_revision():
                        command.upgrade(alembic_config(self.engine), "head")
                break
            except OperationalError as exc:
                busy = "database is locked" in str(exc.orig)
                if not busy or time.monotonic() > deadline:
                    raise self._unavailable(exc) from None
                time.sleep(0.05)
        self._checked = True

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.dialect != "postgresql":
            yield
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
                conn.commit()

    def ensure_schema(self) -> None:
        """Migrate lazily the first time a process touches the database."""
        if self._checked:
            return
        self.migrate()  # checks the revision itself, waiting out a concurrent first start

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any error."""
        self.ensure_schema()
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            text = str(exc.orig) if exc.orig is not None else str(exc)
            if "database is locked" in text or "could not serialize" in text:
                raise Conflict(
                    "another process changed the same data at the same time; nothing was "
                    "saved; run the command again",
                    [Detail(text)],
                ) from None
            raise self._unavailable(exc) from None
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
