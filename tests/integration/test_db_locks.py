"""Waiting for another process's lock: writers wait (up to ``lock_timeout``), readers never do,
and a lock held too long is reported as *busy*, not as a conflict on the same data.

Another process's lock is held for real: a second connection that has begun SQLite's write
transaction (``BEGIN IMMEDIATE``), or that holds an ``EXCLUSIVE`` lock on PostgreSQL's events
table, the table every command appends to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from steward.config import Settings
from steward.db.models import Event, User
from steward.db.session import Database
from steward.errors import Conflict, DatabaseBusy
from steward.services import access, catalog, packages, reports, requests, shares
from steward.services.packages import PackageFilter
from steward.services.requests import RequestFilter
from steward.services.shares import ShareFilter
from steward.timeutil import utcnow
from tests.conftest import Consortium
from tests.integration.test_concurrency import FIELDS


@contextmanager
def lock_held(settings: Settings) -> Iterator[None]:
    """Another connection holds the lock that every writing command needs, until the end."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        pg.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            pg.rollback()


@pytest.fixture
def impatient(consortium: Consortium) -> Iterator[Database]:
    """A second handle on the same database that waits half a second for a lock."""
    base = consortium.db.settings
    db = Database(Settings(home=base.home, database_url=base.database_url, lock_timeout=0.5))
    yield db
    db.dispose()


def submitted(c: Consortium) -> str:
    v = requests.create(c.db, actor=c.requester, project=c.project, fields=FIELDS)
    requests.act(c.db, actor=c.requester, request_id=v.id, command="submit")
    return v.id


def events_of(db: Database, rid: str) -> list[str]:
    with db.read() as s:
        return list(
            s.scalars(select(Event.type).where(Event.subject_id == rid).order_by(Event.seq))
        )


def test_a_lock_held_too_long_is_busy_not_a_conflict(
    consortium: Consortium, impatient: Database
) -> None:
    c = consortium
    rid = submitted(c)
    with lock_held(c.db.settings), pytest.raises(DatabaseBusy) as caught:
        requests.act(impatient, actor=c.reviewer, request_id=rid, command="comment", text="hi")
    err = caught.value
    assert not isinstance(err, Conflict)
    assert err.message.startswith("the database is busy: another process held a lock")
    assert "same data" not in err.message
    assert "nothing was saved" in err.message
    assert "STEWARD_LOCK_TIMEOUT" in err.message
    assert (err.code, err.http_status, err.exit_code) == ("database-busy", 503, 1)
    detail = err.details[0]
    assert (detail.field, detail.value) == ("STEWARD_LOCK_TIMEOUT", "0.5")
    assert events_of(c.db, rid) == ["created", "submitted"]  # nothing half-written
    # Once the other process is done, the same command simply works.
    requests.act(impatient, actor=c.reviewer, request_id=rid, command="comment", text="hi")
    assert events_of(c.db, rid) == ["created", "submitted", "commented"]


def test_reads_never_wait_for_a_writer(consortium: Consortium, impatient: Database) -> None:
    """Listings, details and reports run while another process holds the write lock; had
    any of them taken the lock itself it would fail here with database-busy."""
    c = consortium
    rid = submitted(c)
    everyone = RequestFilter(project=c.project)
    with lock_held(c.db.settings):
        db = impatient
        assert [v.id for v in requests.list_requests(db, actor=c.steward, flt=everyone)] == [rid]
        assert requests.get(db, actor=c.steward, request_id=rid).request.state == "submitted"
        for report in (
            reports.tracking_table,
            reports.change_log,
            reports.time_in_state,
            reports.sla_breaches,
        ):
            report(db, actor=c.steward, flt=everyone)
        assert c.steward in [u.id for u in access.list_users(db, actor=c.steward)]
        assert (c.project, "Project one") in access.list_projects(db, actor=c.steward)
        assert access.list_members(db, actor=c.steward, project_id=c.project)
        assert len(catalog.list_requirements(db, actor=c.steward, project=c.project)) == 2
        catalog.tree(db, actor=c.steward, project=c.project)
        assert packages.list_packages(db, actor=c.steward, flt=PackageFilter()) == []
        assert shares.list_shares(db, actor=c.steward, flt=ShareFilter()) == []


def _write_while_reading(db: Database) -> None:
    with db.read() as s:
        s.add(User(id="sneaky", display_name="", email="", is_admin=False, created_at=utcnow()))
        s.flush()


def test_a_read_transaction_refuses_to_write(db: Database) -> None:
    with pytest.raises(DBAPIError):
        _write_while_reading(db)
    with db.read() as s:
        assert s.get(User, "sneaky") is None
    # The connection goes back to the pool writable: the next writer is not refused.
    access.add_user(db, actor="admin", user_id="fine")


# ---- the same, as people meet it: real `steward` processes ----------------------------------
def steward(settings: Settings, *args: str, **env: str) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    clean |= {
        "STEWARD_HOME": str(settings.home),
        "STEWARD_DATABASE_URL": settings.resolved_database_url,
        "NO_COLOR": "1",
        "COLUMNS": "200",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "steward", *args],
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


WRITERS = 16  # the level docs/concepts.md promises on SQLite


def test_sixteen_steward_commands_at_once_on_different_requests(consortium: Consortium) -> None:
    """Issue 8 item 6 as reported: `steward request comment` in many processes at once, each
    on its own request. Every one succeeds and every comment is in the ledger."""
    c = consortium
    rids = [submitted(c) for _ in range(WRITERS)]
    people = [c.reviewer, c.reviewer2, c.steward, c.requester]
    procs = [
        steward(c.db.settings, "request", "comment", rid, f"note {i}", "--as", people[i % 4])
        for i, rid in enumerate(rids)
    ]
    done = [finish(p) for p in procs]
    assert [(code, err) for code, _, err in done] == [(0, "")] * WRITERS
    for rid in rids:
        assert events_of(c.db, rid) == ["created", "submitted", "commented"]


def test_busy_and_reads_at_the_command_line(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    quick = {"STEWARD_LOCK_TIMEOUT": "0.5"}
    with lock_held(c.db.settings):
        listing = steward(c.db.settings, "request", "list", "--as", c.steward, **quick)
        code, out, err = finish(listing)
        assert (code, err) == (0, "")
        assert rid in out
        code, out, err = finish(
            steward(c.db.settings, "request", "comment", rid, "hi", "--as", c.steward, **quick)
        )
        assert (code, out) == (1, "")
        assert err.startswith("error: the database is busy: another process held a lock")
        assert "same data" not in err
        assert "Traceback" not in err
        code, out, err = finish(
            steward(
                c.db.settings, "request", "comment", rid, "hi", "--as", c.steward, "--json", **quick
            )
        )
        assert (code, err) == (1, "")
        problem: dict[str, Any] = json.loads(out)
        assert (problem["code"], problem["status"]) == ("database-busy", 503)
        assert problem["errors"][0]["field"] == "STEWARD_LOCK_TIMEOUT"
    assert events_of(c.db, rid) == ["created", "submitted"]


def test_lock_timeout_is_a_checked_setting(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "steward", "request", "list", "--as", "x"],
        env={**os.environ, "STEWARD_HOME": str(tmp_path), "STEWARD_LOCK_TIMEOUT": "-1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "STEWARD_LOCK_TIMEOUT" in proc.stderr
