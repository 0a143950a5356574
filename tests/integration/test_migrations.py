"""Schema migrations on databases that already hold data (SQLite and PostgreSQL).

0002 adds ``events.stay_seconds`` and must fill it in for every event already in the ledger,
exactly as the ledger now writes it for new events: the time since the subject's previous
state change, to the microsecond; nothing for the creation and for events that change no
state. 0004 adds ``change_logs`` and must derive each subject's kept change log from the
events already there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select, text, update

from steward.config import Settings
from steward.db.models import ChangeLog, Event
from steward.db.session import Database, alembic_config

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

# (subject, seq, at, from, to): two requests whose events interleave in time and in id order,
# with comments that change no state, fractions of a second (one of them halfway between
# two milliseconds) and two changes at the very same time.
HISTORY: list[tuple[str, int, datetime, str | None, str]] = [
    ("req_a", 1, T0, None, "draft"),
    ("req_b", 1, T0 + timedelta(seconds=1), None, "draft"),
    ("req_a", 2, T0 + timedelta(hours=1, microseconds=500), "draft", "submitted"),
    ("req_a", 3, T0 + timedelta(hours=2, microseconds=999_999), "submitted", "submitted"),
    ("req_b", 2, T0 + timedelta(days=1, microseconds=123_456), "draft", "submitted"),
    ("req_b", 3, T0 + timedelta(days=1, microseconds=123_456), "submitted", "returned"),
    ("req_a", 4, T0 + timedelta(days=3, seconds=7, microseconds=1), "submitted", "returned"),
    ("req_b", 4, T0 + timedelta(days=9), "returned", "returned"),
    ("req_a", 5, T0 + timedelta(days=30), "returned", "cancelled"),
    ("req_b", 5, T0 + timedelta(days=40, microseconds=2), "returned", "submitted"),
]


def expected_stays() -> dict[tuple[str, int], float | None]:
    entered: dict[str, datetime] = {}
    out: dict[tuple[str, int], float | None] = {}
    for sid, seq, at, src, dst in HISTORY:
        stay = None
        if src != dst:
            if src is not None:
                stay = (at - entered[sid]).total_seconds()
            entered[sid] = at
        out[(sid, seq)] = stay
    return out


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    db = Database(settings)
    yield db.engine
    db.dispose()


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("events")}


def indexes(engine: Engine) -> set[str]:
    return {str(i["name"]) for i in inspect(engine).get_indexes("events")}


def write_history(engine: Engine) -> None:
    """Events as revision 0001 stored them (no stay_seconds column yet)."""
    rows: list[dict[str, Any]] = [
        {
            "subject_kind": "access_request",
            "subject_id": sid,
            "project_id": "p1",
            "seq": seq,
            "at": at,
            "actor": "ada",
            "type": "x",
            "from_state": src,
            "to_state": dst,
            "data": {},
            "idempotency_key": None,
        }
        for sid, seq, at, src, dst in HISTORY
    ]
    with engine.begin() as conn:
        conn.execute(insert(Event), rows)


def test_0002_fills_in_the_stays_of_existing_events(engine: Engine) -> None:
    cfg = alembic_config(engine)
    command.upgrade(cfg, "0001")
    assert "stay_seconds" not in columns(engine)
    write_history(engine)

    command.upgrade(cfg, "0002")
    assert revision(engine) == "0002"
    assert "stay_seconds" in columns(engine)
    assert "ix_events_stays" in indexes(engine)
    with engine.connect() as conn:
        got = {
            (sid, seq): stay
            for sid, seq, stay in conn.execute(
                select(Event.subject_id, Event.seq, Event.stay_seconds)
            )
        }
    want = expected_stays()
    assert got == want  # exactly: whole microseconds, one rounding, as timedelta does
    assert got[("req_a", 2)] == 3600.0005
    assert got[("req_b", 3)] == 0.0  # two changes at the same time
    assert got[("req_a", 3)] is None  # no state change
    assert got[("req_b", 4)] is None
    assert got[("req_b", 5)] == (timedelta(days=39, microseconds=-123_454)).total_seconds()

    # and the next revisions still apply on top
    command.upgrade(cfg, "head")
    assert revision(engine) != "0002"


def test_0002_downgrades_cleanly(engine: Engine) -> None:
    cfg = alembic_config(engine)
    command.upgrade(cfg, "0001")
    write_history(engine)
    command.upgrade(cfg, "0002")
    command.downgrade(cfg, "0001")
    assert "stay_seconds" not in columns(engine)
    assert "ix_events_stays" not in indexes(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == len(HISTORY)
    command.upgrade(cfg, "0002")  # and back again, the same values
    with engine.connect() as conn:
        stays = {
            (sid, seq): stay
            for sid, seq, stay in conn.execute(
                select(Event.subject_id, Event.seq, Event.stay_seconds)
            )
        }
    assert stays == expected_stays()


def test_0004_derives_the_change_logs_of_existing_events(engine: Engine) -> None:
    """Each subject's kept change log, written out by hand: state changes only, times in UTC
    to the microsecond, durations to the millisecond, a quoted reason, the latest line open."""
    cfg = alembic_config(engine)
    command.upgrade(cfg, "0001")
    write_history(engine)  # then 0002 fills in the stays, as the ledger would have written them
    with engine.begin() as conn:
        conn.execute(
            update(Event)
            .where(Event.subject_id == "req_b", Event.seq == 3)
            .values(data={"reason": 'needs, "work"'})
        )
    command.upgrade(cfg, "0004")
    with engine.connect() as conn:
        logs = {
            sid: (lines, moves, state, since)
            for sid, lines, moves, state, since in conn.execute(
                select(
                    ChangeLog.subject_id,
                    ChangeLog.lines,
                    ChangeLog.moves,
                    ChangeLog.state,
                    ChangeLog.since,
                )
            )
        }
    assert set(logs) == {"req_a", "req_b"}
    assert logs["req_b"] == (
        "req_b,1,,draft,2025-03-01T09:00:01+00:00,ada,,,86399.123,False\r\n"
        "req_b,2,draft,submitted,2025-03-02T09:00:00.123456+00:00,ada,,86399.123,0.0,False\r\n"
        'req_b,3,submitted,returned,2025-03-02T09:00:00.123456+00:00,ada,"needs, ""work""",'
        "0.0,3369599.877,False\r\n"
        "req_b,4,returned,submitted,2025-04-10T09:00:00.000002+00:00,ada,,3369599.877,",
        4,
        "submitted",
        T0 + timedelta(days=40, microseconds=2),
    )
    lines, moves, state, _ = logs["req_a"]
    assert (moves, state) == (4, "cancelled")
    assert lines.endswith("req_a,4,returned,cancelled,2025-03-31T09:00:00+00:00,ada,,2332793.0,")
    command.downgrade(cfg, "0003")
    assert "change_logs" not in inspect(engine).get_table_names()


# ---- the schema check every process makes before its first transaction ------------------------
def test_the_head_named_by_the_migration_files_is_alembics_head(settings: Settings) -> None:
    """``schema_head`` reads the files' prefixes instead of asking Alembic; that holds only
    while every revision id is its file's prefix and the revisions form one line."""
    from alembic.script import ScriptDirectory

    from steward.db.session import schema_head

    db = Database(settings)
    try:
        scripts = ScriptDirectory.from_config(alembic_config(db.engine))
        chain = list(scripts.walk_revisions())
        assert len(scripts.get_heads()) == 1
        for script in chain:
            assert script.module.__file__ is not None
            assert script.module.__file__.rsplit("/", 1)[-1].startswith(f"{script.revision}_")
        assert schema_head() == scripts.get_current_head() == chain[0].revision
    finally:
        db.dispose()


def test_a_database_one_revision_behind_is_migrated_on_first_use(settings: Settings) -> None:
    """The quick check (one SELECT) must not take an old schema for a current one."""
    from steward.db.session import schema_head

    db = Database(settings)
    try:
        db.migrate()
        command.downgrade(alembic_config(db.engine), "-1")
        assert revision(db.engine) != schema_head()
        fresh = Database(settings)
        with fresh.read() as s:
            s.execute(text("SELECT 1"))
        assert revision(fresh.engine) == schema_head()
        fresh.dispose()
    finally:
        db.dispose()
