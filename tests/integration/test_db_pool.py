"""The connection pool a server keeps: connections stay open between requests, and one the
database dropped while it rested (a restart, an idle timeout) is replaced, not handed out."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from steward.config import Settings
from steward.db import session as db_session
from steward.db.session import Database
from steward.services import access


def _backend_pids(db: Database) -> set[int]:
    with db.read() as s:
        return {int(s.scalar(text("SELECT pg_backend_pid()")) or 0)}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_connection_dropped_while_resting_is_replaced(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(settings, pool_size=2)
    try:
        first = _backend_pids(db)
        assert _backend_pids(db) == first  # kept open: the same server process answers
        plain = settings.resolved_database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [next(iter(first))])
        monkeypatch.setattr(db_session, "PING_AFTER_IDLE", 0.0)
        replaced = _backend_pids(db)  # would fail with "server closed the connection"
        assert replaced
        assert replaced != first
    finally:
        db.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_connection_in_steady_use_is_not_pinged(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ping per transaction was a third of a busy API's round trips."""
    db = Database(settings, pool_size=1)
    db.migrate()
    pings = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda c: pings.append(c) or ping(c))
    try:
        for _ in range(3):
            with db.read() as s:
                assert s.scalar(text("SELECT 2")) == 2
        assert pings == []
        monkeypatch.setattr(db_session, "PING_AFTER_IDLE", 0.0)
        with db.read() as s:
            s.execute(text("SELECT 2"))
        assert len(pings) == 1  # a rested one is
    finally:
        db.dispose()


def test_a_read_inside_a_read_is_the_same_unit(db: Database) -> None:
    """An API call authenticates and answers in one read: the services' own reads join it."""
    with db.read() as outer:
        with db.read() as inner:
            assert inner is outer
        assert outer.is_active  # the inner one's end did not end it
        with db.transaction() as writing:
            assert writing is not outer  # writes are never joined to a read
    with db.read() as later:
        assert later is not outer
    other = Database(db.settings)
    try:
        with db.read() as mine, other.read() as theirs:
            assert theirs is not mine  # another database's read is its own
    finally:
        other.dispose()


def test_a_read_sees_one_snapshot_throughout(db: Database, consortium: Any) -> None:
    """What commits while a read runs is not half-seen by it (a subject and its events
    agree); the next read sees it."""
    with db.read() as s:
        before = s.scalar(text("SELECT count(*) FROM users"))
        access.add_user(db, actor="admin", user_id="newcomer")
        assert s.scalar(text("SELECT count(*) FROM users")) == before
    with db.read() as s:
        assert s.scalar(text("SELECT count(*) FROM users")) == before + 1
