"""The database handle: engine, transactions and migrations, built from Settings on demand.

Two kinds of transaction, because SQLite has one writer at a time:

- ``transaction()`` may write. On SQLite it takes the write lock when it begins
  (``BEGIN IMMEDIATE``), waiting up to ``lock_timeout`` for another writer to finish. A
  deferred ``BEGIN`` that reads first and upgrades to a write lock later cannot wait: in WAL
  mode SQLite refuses the upgrade at once with ``SQLITE_BUSY`` whatever the busy timeout,
  so concurrent writers on different subjects failed for no reason.
- ``read()`` only reads: a deferred ``BEGIN`` (SQLite's readers never wait for the writer in
  WAL mode) and ``READ ONLY`` on PostgreSQL, so reports and listings never hold up writers;
  writing in one is refused by the database.

On PostgreSQL ``lock_timeout`` bounds every wait for a row or table lock the same way.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from steward.config import Settings
from steward.db import failures
from steward.errors import ConfigurationError, DatabaseBusy, Detail, StewardError
from steward.redact import install_log_redaction, redact

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATION_LOCK = 0x5354455741524400  # "STEWARD\0": one schema migration at a time (PostgreSQL)
_READ_ONLY = "steward_read_only"
"""Execution option marking the engine whose transactions only read."""


def _sqlite_connect(lock_timeout: float) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so reads and writes share one transaction.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={round(lock_timeout * 1000)}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return on_connect


def _sqlite_begin(conn: Any) -> None:
    # query_only belongs to the connection, which the pool hands to readers and writers alike;
    # set it before BEGIN (a writer's BEGIN IMMEDIATE is itself refused while it is on).
    if conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("PRAGMA query_only=ON")
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("PRAGMA query_only=OFF")
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_connect(lock_timeout: float) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {round(lock_timeout * 1000)}")
        dbapi_conn.commit()

    return on_connect


def _url_refused(exc: Exception, settings: Settings) -> ConfigurationError:
    return ConfigurationError(
        redact(f"STEWARD_DATABASE_URL is not a usable database URL: {exc}"),
        [
            Detail(
                "cannot use this URL",
                field="STEWARD_DATABASE_URL",
                value=settings.redacted_database_url(),
                accepted="sqlite:///PATH or postgresql+psycopg://user:password@host/db",
            )
        ],
    )


_OPEN_READ: ContextVar[tuple[Database, Session] | None] = ContextVar(
    "steward_open_read", default=None
)

PING_AFTER_IDLE = 5.0
"""Seconds a pooled connection may rest before it is checked on its next use."""


def _idle_from(dbapi_conn: Any, record: Any) -> None:
    record.info["idle_from"] = time.monotonic()


def _ping_after_idle(engine: Engine) -> Any:
    """A connection that rested is pinged before use and replaced if the server dropped it
    (a restart, an idle timeout); one in steady use is not. SQLAlchemy's ``pool_pre_ping``
    pings on every checkout: a round trip per transaction, a third of a busy API's time."""

    def checkout(dbapi_conn: Any, record: Any, proxy: Any) -> None:
        rested = time.monotonic() - record.info.get("idle_from", time.monotonic())
        if rested > PING_AFTER_IDLE:
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:  # any way the driver says the connection is gone
                raise DisconnectionError("the database dropped a pooled connection") from exc

    return checkout


def build_engine(settings: Settings, pool_size: int | None = None) -> Engine:
    url = settings.resolved_database_url
    pool: dict[str, Any] = {}
    if pool_size is not None:
        # A connection for each thread that may hold one, kept open: opening a PostgreSQL
        # connection per request costs more than the request itself.
        # (The overflow is for a thread that nests a unit in another, never a wait.)
        pool = {"pool_size": pool_size, "max_overflow": pool_size, "pool_use_lifo": True}
    try:
        if url.startswith("sqlite"):
            settings.home.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": settings.lock_timeout}, **pool)
            event.listen(engine, "connect", _sqlite_connect(settings.lock_timeout))
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        connect_args: dict[str, Any] = {}
        if url.startswith("postgresql"):
            connect_args["connect_timeout"] = settings.connect_timeout
        engine = create_engine(url, connect_args=connect_args, **pool)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise _url_refused(exc, settings) from None
    event.listen(engine, "checkin", _idle_from)
    event.listen(engine, "checkout", _ping_after_idle(engine))
    if engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgresql_connect(settings.lock_timeout))
    return engine


def _read_only_options(engine: Engine) -> dict[str, Any]:
    if engine.dialect.name == "postgresql":
        # Every statement of a read sees the same snapshot (a subject and its events agree),
        # as SQLite's read transactions already do; read-only ones are never refused for it.
        return {"postgresql_readonly": True, "isolation_level": "REPEATABLE READ"}
    return {_READ_ONLY: True}


_VERSION_FILE = re.compile(r"^(\d{4})_\w+\.py$")


def _migrations() -> Path:
    return Path(str(files("steward.db"))) / "migrations"


def schema_head() -> str:
    """The newest revision, from the names of the migration files (``0009_….py``).

    Every process checks the schema once before its first transaction; asking Alembic means
    importing it and compiling every migration script (a quarter of a second of each CLI
    command's start). Revision ids are the files' four-digit prefixes, in one line —
    ``test_migrations`` holds the files to that, so the largest prefix is Alembic's head.
    """
    names = (_VERSION_FILE.match(p.name) for p in (_migrations() / "versions").iterdir())
    return max(m.group(1) for m in names if m)


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations()))
    cfg.attributes["engine"] = engine
    return cfg


class Database:
    """One per process; services open transactions through it."""

    def __init__(self, settings: Settings, *, pool_size: int | None = None) -> None:
        install_log_redaction()
        self.settings = settings
        self.engine = build_engine(settings, pool_size)
        self._reader = self.engine.execution_options(**_read_only_options(self.engine))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._reader, expire_on_commit=False)
        self._checked = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _translate(self, exc: OperationalError) -> StewardError:
        return failures.translate(
            exc,
            lock_timeout=self.settings.lock_timeout,
            shown_url=self.settings.redacted_database_url(),
        )

    def current_revision(self) -> str | None:
        try:
            return self._current_revision()
        except OperationalError as exc:
            raise self._translate(exc) from None

    def _current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._reader.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(alembic_config(self.engine)).get_current_head()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent).

        Safe when several processes start on a new database at once: on PostgreSQL they take
        turns under an advisory lock; on SQLite (where a migration is one write transaction)
        the ones that lose the race wait for the winner and then find the schema current.
        """
        deadline = time.monotonic() + max(60.0, self.settings.lock_timeout)
        while True:
            try:
                with self._migration_lock():
                    if self._current_revision() != self.head_revision():
                        from alembic import command

                        command.upgrade(alembic_config(self.engine), "head")
                break
            except OperationalError as exc:
                if not failures.is_busy(exc) or time.monotonic() > deadline:
                    raise self._translate(exc) from None
                time.sleep(0.05)
        self._checked = True

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """One process migrates at a time; the others wait, then find the schema current."""
        if self.dialect == "sqlite":
            with self._sqlite_migration_lock():
                yield
            return
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

    @contextmanager
    def _sqlite_migration_lock(self) -> Iterator[None]:
        """A lock file beside the database (SQLite has no advisory locks): a migration is
        several transactions' worth of DDL (Alembic's batch mode copies whole tables), and a
        process that read the revision before another finished would replay it."""
        path = self.engine.url.database
        if not path or path == ":memory:":
            yield
            return
        import fcntl

        deadline = time.monotonic() + max(60.0, self.settings.lock_timeout)
        fd = os.open(f"{path}.migrating", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DatabaseBusy(
                            "another process has been migrating the database for too long",
                            [Detail("migration lock held", field="database", value=path)],
                        ) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def ensure_schema(self) -> None:
        """Migrate lazily the first time a process touches the database."""
        if self._checked:
            return
        if self._recorded_revision() == schema_head():
            self._checked = True  # the common case: one SELECT, no lock, no Alembic
            return
        self.migrate()  # checks the revision itself, waiting out a concurrent first start

    def _recorded_revision(self) -> str | None:
        """The revision in ``alembic_version``, or None when it cannot be read (a new or
        unreachable database: :meth:`migrate` then creates it, or says what is wrong)."""
        try:
            with self._reader.connect() as conn:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except DBAPIError:
            return None
        return str(rows[0][0]) if len(rows) == 1 else None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work that may write: commits on success, rolls back on any error.

        On SQLite it holds the database's write lock from its first statement to its end, so
        keep it short; use :meth:`read` when nothing is written.
        """
        with self._unit(self._sessions, read_only=False) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A unit of work that only reads: never takes or waits for the write lock.

        Writing in one is a bug in Steward, so the database's refusal propagates as it is.
        A read opened inside another of the same database (in the same thread or task) is
        the outer one: an API call authenticates, authorises and answers in one snapshot and
        one round of BEGIN/COMMIT, not one per step.
        """
        outer = _OPEN_READ.get()
        if outer is not None and outer[0] is self:
            yield outer[1]
            return
        with self._unit(self._read_sessions, read_only=True) as session:
            mark = _OPEN_READ.set((self, session))
            try:
                yield session
            finally:
                _OPEN_READ.reset(mark)

    @contextmanager
    def _unit(self, sessions: sessionmaker[Session], *, read_only: bool) -> Iterator[Session]:
        self.ensure_schema()
        session = sessions()
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            if read_only and failures.is_write_refused(exc):
                raise
            raise self._translate(exc) from None
        except IntegrityError as exc:
            if failures.is_duplicate(exc):
                raise failures.duplicate(exc) from None
            raise
        except DataError as exc:
            raise failures.value_refused(exc) from None
        finally:
            session.close()

    def serialize(self, session: Session, key: str) -> None:
        """Let one transaction at a time past this point for ``key``, until it ends.

        For work that checks what exists and then inserts (an import creating users and
        memberships): on PostgreSQL a transaction-scoped advisory lock, after which every
        statement sees what the previous holder committed; on SQLite a writing transaction
        already runs alone.
        """
        if self.dialect != "postgresql":
            return
        digest = hashlib.sha256(key.encode()).digest()[:8]
        session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": int.from_bytes(digest, "big", signed=True)},
        )

    def dispose(self) -> None:
        self.engine.dispose()
