"""Each subject's change log, kept as the CSV lines its export writes (times in UTC).

Why keep report text in the database: the change log is the one report as long as the
ledger itself — a row per state change, a million rows for a million events — and built from
the events at export time every row costs Python work: reading a million rows into Python
alone took 2–4 s on the benchmark machine, more than an export may take. But a row's text is
fixed as soon as its subject changes state again. So the ledger (``record``, and
``append_many`` for imports) renders a change's line (``domain/change_log.py``'s
``Builder``) when it writes its event, in the same transaction, and an export concatenates
one text per subject and adds the latest line's ending: the time spent in the current
state, which runs up to the moment of the export.

Tests check the kept text against the report built from the events, and ``rebuild`` derives
it from the events again (the migration that added the table does that).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.orm import Session

from steward.db.models import ChangeLog, Event
from steward.domain.change_log import Builder, reason_of

MOVES = (Event.from_state.is_(None)) | (Event.from_state != Event.to_state)
"""Events that change state: the creation and every transition (not comments, edits…)."""
BATCH = 5_000


def record(session: Session, event: Event) -> None:
    """Add a state-changing event to its subject's change log (the ledger, per event).

    The line is rendered by the same ``Builder.add`` that ``ledger.append_many`` uses for
    bulk history, continued from the kept log's count of changes."""
    key = (event.subject_kind, event.subject_id)
    with session.no_autoflush:  # the ledger's flush, after this, reports conflicts
        log = session.get(ChangeLog, key)
    if log is None:
        log = ChangeLog(
            subject_kind=event.subject_kind,
            subject_id=event.subject_id,
            project_id=event.project_id,
            lines="",
            moves=0,
        )
        session.add(log)
    built = Builder(event.subject_id)
    built.moves = log.moves
    built.add(
        event.from_state,
        event.to_state,
        event.at,
        event.actor,
        reason_of(event.data),
        event.stay_seconds,
    )
    log.lines += built.text
    log.moves = built.moves
    log.state, log.since = built.state, event.at


def _rows(conn: Connection) -> Iterator[dict[str, Any]]:
    e = Event
    q = (
        select(
            e.subject_kind,
            e.subject_id,
            e.project_id,
            e.from_state,
            e.to_state,
            e.at,
            e.actor,
            e.data,
            e.stay_seconds,
        )
        .where(MOVES)
        .order_by(e.subject_kind, e.subject_id, e.seq)
    )
    built: Builder | None = None
    kind = project = ""
    for row in conn.execute(q):
        if built is None or (row.subject_kind, row.subject_id) != (kind, built.subject_id):
            if built is not None:
                yield _values(kind, project, built)
            built, kind, project = Builder(row.subject_id), row.subject_kind, row.project_id
        built.add(
            row.from_state, row.to_state, row.at, row.actor, reason_of(row.data), row.stay_seconds
        )
    if built is not None:
        yield _values(kind, project, built)


def _values(kind: str, project: str, built: Builder) -> dict[str, Any]:
    return {
        "subject_kind": kind,
        "subject_id": built.subject_id,
        "project_id": project,
        "lines": built.text,
        "moves": built.moves,
        "state": built.state,
        "since": built.since,
    }


def rebuild(conn: Connection) -> int:
    """Write every subject's change log again from the events; return how many subjects.

    For the migration that introduced the logs, and for checking the kept logs against the
    events. The logs are collected before any is written (one text per subject, far smaller
    than the events), so the events are read by one query from start to end.
    """
    conn.execute(delete(ChangeLog))
    rows = list(_rows(conn))
    for start in range(0, len(rows), BATCH):
        conn.execute(insert(ChangeLog), rows[start : start + BATCH])
    return len(rows)
