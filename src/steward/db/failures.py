"""What a database error means for the person who ran the command.

Three different situations that drivers report through the same exception classes:

- *busy*: another process held a lock longer than ``lock_timeout`` (SQLite's ``SQLITE_BUSY``,
  PostgreSQL's ``lock_not_available``). Nothing was wrong with the data; running the command
  again works once the other process is done.
- *conflict*: another process changed the same rows at the same moment (PostgreSQL's
  serialization failure or deadlock), or created the same row (a unique key both inserted).
  The caller should reload and decide again.
- *unavailable*: the server cannot be reached or refused the connection.

Every text taken from a driver goes through :func:`steward.redact.redact` first: drivers may
echo the connection string.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from steward.errors import (
    Conflict,
    DatabaseBusy,
    DatabaseUnavailable,
    Detail,
    StewardError,
    ValidationFailed,
)
from steward.redact import redact

_BUSY_SQLSTATES = frozenset({"55P03"})  # lock_not_available (lock_timeout)
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def driver_text(exc: BaseException) -> str:
    """The driver's own first line (SQLAlchemy's wrapper adds SQL and a link), redacted."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return redact(lines[0].strip()) if lines else type(orig).__name__


def is_busy(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None) or exc
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    if getattr(orig, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    return "database is locked" in str(orig)


def is_write_refused(exc: BaseException) -> bool:
    """A write in a read-only transaction (or on a read-only database file)."""
    orig = getattr(exc, "orig", None) or exc
    name = getattr(orig, "sqlite_errorname", None)
    return (isinstance(name, str) and name.startswith("SQLITE_READONLY")) or getattr(
        orig, "sqlstate", None
    ) == "25006"


def is_duplicate(exc: BaseException) -> bool:
    """Two transactions inserted the same key; the later one to commit is refused."""
    orig = getattr(exc, "orig", None) or exc
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        return name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
    return getattr(orig, "sqlstate", None) == "23505"  # unique_violation


def is_conflict(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) in _CONFLICT_SQLSTATES


def busy(exc: BaseException, lock_timeout: float) -> DatabaseBusy:
    return DatabaseBusy(
        f"the database is busy: another process held a lock on it for more than "
        f"{lock_timeout:g} s, so nothing was saved; run the command again (if this keeps "
        "happening, raise STEWARD_LOCK_TIMEOUT)",
        [
            Detail(
                f"gave up waiting for a lock ({driver_text(exc)})",
                field="STEWARD_LOCK_TIMEOUT",
                value=f"{lock_timeout:g}",
                accepted="seconds to wait for another process's lock, e.g. 120",
            )
        ],
    )


def conflict(exc: BaseException) -> Conflict:
    return Conflict(
        "another process changed the same data at the same time; nothing was saved; "
        "run the command again",
        [Detail(driver_text(exc))],
    )


def duplicate(exc: BaseException) -> Conflict:
    return Conflict(
        "another process created the same thing at the same moment; nothing was saved; "
        "run the command again",
        [Detail(driver_text(exc))],
    )


def unavailable(exc: BaseException, shown_url: str) -> DatabaseUnavailable:
    reason = driver_text(exc) if str(exc) else ""
    return DatabaseUnavailable(
        redact(f"cannot reach the database at {shown_url}: {reason}"),
        [Detail("check the server is running and the URL is right", field="STEWARD_DATABASE_URL")],
    )


def translate(exc: DBAPIError, *, lock_timeout: float, shown_url: str) -> StewardError:
    """The error a person should see for a driver's operational error."""
    if is_busy(exc):
        return busy(exc, lock_timeout)
    if is_conflict(exc):
        return conflict(exc)
    return unavailable(exc, shown_url)


def value_refused(exc: BaseException) -> ValidationFailed:
    """A value the database cannot store or compare (PostgreSQL: a NUL character, a text
    longer than its column, a number or time out of range — SQLSTATE class 22). Services check
    what they know of; this is the net under every other path, so such input is the caller's
    mistake (422, exit 2), never a crash."""
    text = driver_text(exc)
    return ValidationFailed(
        f"the database refused a value: {text}",
        [Detail(text, accepted="text without NUL characters, within the field's length")],
    )
