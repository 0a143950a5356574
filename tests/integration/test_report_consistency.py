"""Reports over histories already out of order in the database: named, never a crash.

Two ways such histories exist: rows an older import let in from the future (re-created here
with a generous clock-skew tolerance), and events whose times were written out of order
(written here directly with SQL, bypassing the ledger). Every report — tracking, change log,
time in state, SLA, in every format — and ``request show`` must still work, leave out the
durations the disorder would make negative, and name the request.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from steward.db import change_logs
from steward.db.models import Event
from steward.services import importer, reports, requests
from steward.services.requests import RequestFilter
from steward.tables import Table
from tests.conftest import CliResult, Consortium
from tests.integration.test_import import csv_file, row
from tests.integration.test_reports import FIELDS

T = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
D = timedelta(days=1)
ALL = RequestFilter(project="p1")


def col(table: Table, name: str) -> int:
    return [c.name for c in table.columns].index(name)


def durations(table: Table) -> list[float]:
    return [
        r[i]
        for r in table.rows
        for i, c in enumerate(table.columns)
        if c.kind == "duration" and r[i] is not None
    ]


def every_report_names(c: Consortium, bad: str, good: str, now: datetime, tmp: Path) -> None:
    """Each report runs, names ``bad`` (and not ``good``), and shows no negative duration."""
    for name, report in reports.REPORTS.items():
        table = report(c.db, actor=c.steward, flt=ALL, now=now)
        assert bad in table.caption, name
        assert good not in table.caption, name
        assert "INCONSISTENT HISTORY" in table.caption, name
        assert all(v >= 0 for v in durations(table)), name
    tracking = reports.tracking_table(c.db, actor=c.steward, flt=ALL, now=now)
    problem = {r[0]: r[col(tracking, "problem")] for r in tracking.rows}
    assert problem[good] is None
    assert problem[bad]
    for name in reports.REPORTS:
        for tz in ("UTC", "Europe/Helsinki"):
            out = io.StringIO(newline="")
            reports.write_report_csv(
                c.db, name, actor=c.steward, flt=ALL, out=out, tz=ZoneInfo(tz), now=now
            )
            for record in csv.DictReader(io.StringIO(out.getvalue())):
                for key, value in record.items():
                    if key.endswith("_seconds") and value:
                        assert float(value) >= 0, (name, tz, key)
        for fmt in ("csv", "json", "xlsx"):
            path = tmp / f"{name}.{fmt}"
            reports.export_report(
                c.db,
                name,
                actor=c.steward,
                flt=ALL,
                fmt=fmt,
                path=path,
                tz=ZoneInfo("UTC"),
                now=now,
            )
            assert path.stat().st_size > 0


def test_a_history_imported_from_the_future_breaks_no_report(
    consortium: Consortium, tmp_path: Path
) -> None:
    """What an import without the future check left behind (here: a tolerance of a day)."""
    c = consortium
    now = datetime.now(UTC).replace(microsecond=0)
    ahead = now + timedelta(hours=1)
    path = csv_file(
        tmp_path,
        row("F1", "draft", (now - D).isoformat(), title="From the future", requester="ada"),
        row("F1", "submitted", ahead.isoformat()),
        row("OK", "submitted", (now - 2 * D).isoformat(), title="Fine", requester="bea"),
    )
    importer.import_requests(
        c.db, actor=c.steward, project=c.project, path=path, clock_skew=timedelta(days=1)
    )
    ids = {r.external_id: r.id for r in requests.list_requests(c.db, actor=c.steward, flt=ALL)}
    bad, good = ids["F1"], ids["OK"]
    every_report_names(c, bad, good, now, tmp_path)

    changes = reports.change_log(c.db, actor=c.steward, flt=ALL, now=now)
    current = [r for r in changes.rows if r[0] == bad][-1]
    assert current[col(changes, "to_state")] == "submitted"
    assert current[col(changes, "time_in_to_state")] is None  # unknown, not 0 and not a crash
    tracking = reports.tracking_table(c.db, actor=c.steward, flt=ALL, now=now)
    total = {r[0]: r[col(tracking, "total_duration")] for r in tracking.rows}
    assert total[bad] is None
    assert total[good] == pytest.approx(2 * D.total_seconds())
    assert "after now" in {r[0]: r[-1] for r in tracking.rows}[bad]

    detail = requests.get(c.db, actor=c.steward, request_id=bad, now=now)
    assert detail.current_state_for is None  # was 0: "submitted for 0s"
    assert "submitted" not in detail.time_in_state


def _out_of_order(c: Consortium) -> tuple[str, str]:
    """Two requests; in the first, the return is rewritten (SQL) to before the submission."""
    made = {}
    for name, who in (("bad", c.requester), ("good", c.requester2)):
        v = requests.create(c.db, actor=who, project=c.project, fields=FIELDS, at=T)
        requests.act(c.db, actor=who, request_id=v.id, command="submit", at=T + D)
        requests.act(
            c.db, actor=c.reviewer, request_id=v.id, command="return", reason="r", at=T + 2 * D
        )
        requests.act(c.db, actor=who, request_id=v.id, command="resubmit", at=T + 3 * D)
        made[name] = v.id
    bad = made["bad"]
    twelve = timedelta(hours=12)
    with c.db.transaction() as s:
        # the return now comes 12 h before the submission it follows, and the stays are what
        # the times give (as a migration deriving them from the events would have written)
        s.execute(
            update(Event)
            .where(Event.subject_id == bad, Event.seq == 3)
            .values(at=T + twelve, stay_seconds=(twelve - D).total_seconds())
        )
        s.execute(
            update(Event)
            .where(Event.subject_id == bad, Event.seq == 4)
            .values(stay_seconds=(3 * D - twelve).total_seconds())
        )
    return bad, made["good"]


def test_events_out_of_order_break_no_report(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    bad, good = _out_of_order(c)
    with c.db.engine.begin() as conn:  # the kept change logs, derived again from the events
        change_logs.rebuild(conn)
    now = T + 5 * D
    every_report_names(c, bad, good, now, tmp_path)

    changes = reports.change_log(c.db, actor=c.steward, flt=ALL, now=now)
    rows = [r for r in changes.rows if r[0] == bad]
    # the submission's stay and the return's time in the state it left are unknown
    assert rows[1][col(changes, "time_in_to_state")] is None
    assert rows[2][col(changes, "time_in_from_state")] is None
    assert rows[3][col(changes, "time_in_from_state")] == pytest.approx(
        (3 * D).total_seconds() - 43200
    )
    tracking = reports.tracking_table(c.db, actor=c.steward, flt=ALL, now=now)
    assert "event 3 is dated" in {r[0]: r[-1] for r in tracking.rows}[bad]

    detail = requests.get(c.db, actor=c.steward, request_id=bad, now=now)
    flags = [(e.seq, e.out_of_order, e.time_in_previous_state) for e in detail.timeline]
    assert flags[2] == (3, True, None)
    assert [f[1] for f in flags] == [False, False, True, False]
    assert all(v >= 0 for v in detail.time_in_state.values())
    fine = requests.get(c.db, actor=c.steward, request_id=good, now=now)
    assert not any(e.out_of_order for e in fine.timeline)


def test_the_cli_shows_such_requests_instead_of_a_traceback(
    consortium: Consortium, cli: object
) -> None:
    c = consortium
    bad, _ = _out_of_order(c)
    run = cli  # type: ignore[assignment]
    for name in ("tracking", "changelog", "time-in-state", "sla"):
        result: CliResult = run("report", name, "--as", "sam")  # type: ignore[operator]
        assert result.code == 0, result.err
        assert bad in result.out.replace("\n", ""), name
        assert "INCONSISTENT" in result.out, name
        for fmt in ("csv", "json"):
            assert run("report", name, "-f", fmt, "--as", "sam").code == 0  # type: ignore[operator]
    shown: CliResult = run("request", "show", bad, "--as", "sam")  # type: ignore[operator]
    assert shown.code == 0, shown.err
    assert "OUT OF ORDER" in shown.out
