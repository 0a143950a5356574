"""The tracking table's CSV export, streamed: one line per request, straight from the cursor.

The same text as ``tables.write_csv`` of ``reports.tracking_table`` (a test compares them
byte for byte), without building the table first: times are written from the database's UTC
text rather than through a ``datetime`` and back, repeated values (projects, people,
institutions, dataset lists) are quoted once, and each line is one f-string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Text, func
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from steward.db.models import AccessRequest
from steward.domain.change_log import csv_field, duration_text, nonneg
from steward.services.reports_format import LocalTimes
from steward.services.reports_scope import Scope

CRLF = "\r\n"
BATCH = 20_000


def _cached(cache: dict[Any, str], convert: Callable[[Any], str]) -> Callable[[Any], str]:
    def get(value: Any) -> str:
        found = cache.get(value)
        if found is None:
            found = cache[value] = convert(value)
        return found

    return get


def _utccsv_field(column: Any, dialect: str) -> Any:
    """A timestamp column as UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLite stores it so)."""
    if dialect == "sqlite":
        return column
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS.US")


def query(sc: Scope, dialect: str, total: Any) -> Select[Any]:
    r = AccessRequest
    q = sc.visible.with_only_columns(
        r.id,
        r.project_id,
        r.title,
        r.state,
        r.requester,
        r.institution,
        r.project_lead,
        r.intended_use,
        r.reviewer,
        sql_cast(r.datasets, Text),
        _utccsv_field(r.created_at, dialect),
        _utccsv_field(r.updated_at, dialect),
        total,
    )
    return cast(Select[Any], q.order_by(r.created_at, r.id))


def write_csv(
    s: Session,
    sc: Scope,
    total: Any,
    tz: ZoneInfo,
    out: IO[str],
    header: str,
    problems: Mapping[str, str],
) -> int:
    """Stream the tracking table as CSV; ``total`` is its duration column (in seconds);
    ``problems``: what is inconsistent in the history of some requests (``problem`` column)."""
    conn = s.connection()
    utc = tz.key == "UTC"
    local = LocalTimes(tz).iso_of_utc_text

    def at(text: str) -> str:
        if not utc:
            return local(text)
        if text.endswith(".000000"):
            return f"{text[:10]}T{text[11:19]}+00:00"
        return f"{text[:10]}T{text[11:]}+00:00"

    def datasets(text: str) -> str:
        value = json.loads(text)
        return csv_field("; ".join(list(value)))

    same: dict[Any, str] = {}
    people = _cached(same, csv_field)
    lists = _cached({}, datasets)
    out.write(header)
    n = 0
    result = conn.execute(query(sc, conn.dialect.name, total))
    try:
        cursor = cast(Any, result.cursor)
        while batch := cursor.fetchmany(BATCH):
            lines: list[str] = []
            put = lines.append
            rows = cast(Iterable[Any], batch)
            for rid, project, title, state, requester, inst, lead, use, rev, ds, c, u, t in rows:
                took = "" if t is None else duration_text(t if t >= 0 else nonneg(t, rid))
                problem = csv_field(problems.get(rid)) if problems else ""
                put(
                    f"{rid},{people(project)},{csv_field(title)},{state},{people(requester)},"
                    f"{people(inst)},{people(lead)},{people(use)},{people(rev)},{lists(ds)},"
                    f"{at(c)},{at(u)},{took},{problem}{CRLF}"
                )
            n += len(lines)
            out.write("".join(lines))
    finally:
        result.close()
    return n
