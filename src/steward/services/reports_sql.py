"""SQL for the reports' exact time arithmetic, written once per backend.

Durations must come out exactly as Python's ``(later - earlier).total_seconds()`` would give
them (whole microseconds, one correctly rounded division), whichever backend computes them:
SQLite's julianday() keeps only milliseconds, so there the stored text is read field by field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros_of(when: datetime) -> int:
    """Whole microseconds since 1970 of an aware time (exact)."""
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class micros(FunctionElement[int]):
    """Whole microseconds since 1970 of a UTC timestamp column (exact)."""

    type = BigInteger()
    inherit_cache = True


@compiles(micros, "sqlite")
def _micros_sqlite(element: micros, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy's SQLite text 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): whole seconds of the first
    # 19 characters (strftime('%s') of the full text would round the fraction to a
    # millisecond, which can carry into the next second), plus the fraction's digits.
    col = compiler.process(element.clauses, **kw)
    return (
        f"(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr(substr({col}, 21) || '000000', 1, 6) AS INTEGER))"
    )


@compiles(micros, "postgresql")
def _micros_pg(element: micros, compiler: Any, **kw: Any) -> str:
    col = compiler.process(element.clauses, **kw)
    return f"round(EXTRACT(EPOCH FROM {col}) * 1000000)::bigint"


class seconds(FunctionElement[float]):
    """Whole microseconds as seconds: one correctly rounded division, as timedelta does."""

    type = Float()
    inherit_cache = True


@compiles(seconds, "sqlite")
def _seconds_sqlite(element: seconds, compiler: Any, **kw: Any) -> str:
    return f"(({compiler.process(element.clauses, **kw)}) / 1000000.0)"


@compiles(seconds, "postgresql")
def _seconds_pg(element: seconds, compiler: Any, **kw: Any) -> str:
    return f"(({compiler.process(element.clauses, **kw)})::float8 / 1000000::float8)"


def elapsed(later_micros: int | ColumnElement[Any], column: Any) -> seconds:
    """Seconds from ``column`` to a moment given in microseconds (exact)."""
    return seconds(later_micros - micros(column))


class between(FunctionElement[float]):
    """Seconds from the second timestamp to the first (exact): on PostgreSQL the interval's
    epoch (a numeric since PostgreSQL 14) rounded once, rather than two conversions."""

    type = Float()
    inherit_cache = True


@compiles(between, "sqlite")
def _between_sqlite(element: between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return compiler.process(seconds(micros(later) - micros(earlier)), **kw)  # type: ignore[no-any-return]


@compiles(between, "postgresql")
def _between_pg(element: between, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later}) - ({earlier}))::float8"
