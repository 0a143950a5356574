"""Bulk rows straight to the driver, inside the session's transaction: each dialect's fast path.

Per-row ORM and type-processing overhead dominates a million-row import, so rows arrive here
as tuples already in the form the column types would have produced (``Columns.convert``):
SQLite gets ``executemany``; PostgreSQL gets ``COPY`` on the same connection (psycopg's
``copy``), streamed while the rows are still being produced; any other backend falls back to
a Core ``executemany``. The ledger's ``append_many`` and the crawl's new places and files
write through here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, Table
from sqlalchemy.orm import Session

from steward.db.types import UTCDateTime

BATCH = 20_000
BULK_CACHE_KIB = 256 * 1024
"""SQLite page cache while bulk rows go in: room for the indexes being built."""
ANALYZE_AFTER = 10_000
"""Refresh the planner's statistics after this many rows, so reports plan well at once."""

Row = tuple[Any, ...]
T = TypeVar("T")

IN_LIMIT = 500
"""Values per ``IN (…)``: well under SQLite's limit of bound parameters."""


def in_chunks(items: Sequence[T], size: int = IN_LIMIT) -> Iterator[Sequence[T]]:
    """``items`` in slices of ``size``, one ``IN (…)`` each."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DateTime storage format (naive UTC, always 6 fractional digits)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _same(value: Any) -> Any:
    return value


def _remembering(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` that reuses its last answer for the same object: a batch's rows mostly
    carry one shared time (the crawl's or import's ``now``), converted once, not per row."""
    last: list[Any] = [object(), None]

    def converted(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, convert(value)
        return last[1]

    return converted


def _default(column: Any) -> Any:
    default = column.default
    if default is None:
        return None
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy's wrapper of list/dict takes an (unused) context
    return default.arg


class Writer:
    """The fast path for one session's connection (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self.conn = session.connection()
        self.dialect = self.conn.dialect.name
        self.saved_cache = -2000
        self.time: Callable[[datetime | None], Any] = (
            sqlite_time if self.dialect == "sqlite" else _same
        )
        self.json: Callable[[Any], Any] = (
            json.dumps if self.dialect in ("sqlite", "postgresql") else _same
        )

    def __enter__(self) -> Writer:
        if self.dialect == "sqlite":
            # Room for the indexes being built: with SQLite's default 2 MB page cache, every
            # insert into a randomly ordered index (the idempotency keys) spills to the WAL.
            found = self.conn.exec_driver_sql("PRAGMA cache_size").scalar()
            self.saved_cache = -2000 if found is None else int(found)
            self.conn.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.dialect == "sqlite":
            self.conn.exec_driver_sql(f"PRAGMA cache_size = {self.saved_cache}")

    def converters(self, table: Table, columns: Sequence[str]) -> list[Callable[[Any], Any]]:
        """For each column, what its type would do to a Python value on this dialect."""
        out: list[Callable[[Any], Any]] = []
        for name in columns:
            kind = table.c[name].type
            if isinstance(kind, UTCDateTime):
                out.append(_remembering(self.time))
            elif isinstance(kind, JSON):
                out.append(self.json)
            else:
                out.append(_same)
        return out

    @staticmethod
    def defaults(table: Table, columns: Sequence[str]) -> dict[str, Any]:
        """Each column's Python-side default (``None`` where it has none)."""
        return {name: _default(table.c[name]) for name in columns}

    def write(self, table: Table, columns: Sequence[str], rows: list[Row]) -> None:
        if not rows:
            return
        names = ", ".join(columns)
        if self.dialect == "sqlite":
            marks = ", ".join("?" for _ in columns)
            self.conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)
        elif self.dialect == "postgresql":
            raw = self.conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
        else:
            self.conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in rows])

    @contextmanager
    def stream(self, table: Table, columns: Sequence[str]) -> Iterator[Callable[[Row], None]]:
        """A function taking rows one by one: written in batches, or as one ``COPY`` stream
        that PostgreSQL ingests while the rows are still being produced."""
        if self.dialect == "postgresql":
            raw = self.conn.connection.driver_connection
            assert raw is not None
            names = ", ".join(columns)
            with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as cp:
                yield cp.write_row
            return
        batch: list[Row] = []

        def put(row: Row) -> None:
            batch.append(row)
            if len(batch) >= BATCH:
                self.write(table, columns, batch)
                batch.clear()

        yield put
        self.write(table, columns, batch)

    def analyze(self, *tables: Table) -> None:
        if self.dialect in ("sqlite", "postgresql"):
            for table in tables:
                self.conn.exec_driver_sql(f"ANALYZE {table.name}")
