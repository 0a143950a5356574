"""Reports over a ledger with events at known times, checked against hand-computed figures.

The story (T = 2026-01-05 09:00 UTC; reports are asked for at NOW = T + 20 days):

====  =========  ===================================================================  ========
req   requester  history                                                              total
====  =========  ===================================================================  ========
A     ada        draft T · submit T+1h · return T+1d1h · resubmit T+3d1h ·             4d
                 approve T+4d1h (still approved)
B     bea        draft T+1d · submit T+2d · reject T+2d6h                              6h
C     ada        draft T+2d · cancel T+3d (never submitted)                            none
D     ada        draft T+3d · submit T+5d (still waiting: over its 4d SLA)             15d
E     ada        draft T+4d · submit T+18d (waiting 2d: within SLA)                    2d
F     ada        draft T+5d (still a draft)                                            none
G     bea        draft T+1d · submit T+1d1h · return T+2d1h (returned 18d-1h: over     19d-1h
                 its 14d SLA)
H     ada        draft T · submit T+2h · approve T+1d2h · revoke T+10d                 1d
====  =========  ===================================================================  ========

A also gets a comment and an edit, which are not transitions and must not show up.
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
import json
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import or_, select

from steward.db import change_logs
from steward.db.models import ChangeLog, Event, Membership, User
from steward.domain.requests import REASON_REQUIRED, WORKFLOW, RequestFields
from steward.errors import NotFound, ValidationFailed
from steward.services import access, catalog, importer, reports, requests
from steward.services.requests import RequestFilter
from steward.tables import Column, Table, export, write_csv
from tests.conftest import Consortium

T = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = T + timedelta(days=20)
H = 3600.0
D = 86400.0
FIELDS = RequestFields(
    title="Study",
    institution="Uni",
    project_lead="Prof X",
    intended_use="Research",
    datasets=("raw/wgs",),
)
ALL = RequestFilter(project="p1")


def at(days: float = 0, hours: float = 0) -> datetime:
    return T + timedelta(days=days, hours=hours)


Story = dict[str, str]


@pytest.fixture
def story(consortium: Consortium) -> Story:
    c = consortium
    ids: Story = {}

    def new(name: str, who: str, when: datetime) -> None:
        v = requests.create(c.db, actor=who, project=c.project, fields=FIELDS, at=when)
        ids[name] = v.id

    def act(name: str, who: str, command: str, when: datetime, **kw: Any) -> None:
        requests.act(c.db, actor=who, request_id=ids[name], command=command, at=when, **kw)

    new("A", c.requester, at(0))
    act("A", c.requester, "submit", at(0, 1))
    act("A", c.reviewer, "return", at(1, 1), reason="which cohort?")
    act("A", c.requester, "comment", at(1, 5), text="the 2024 one")
    act(
        "A",
        c.requester,
        "edit",
        at(2),
        changes=RequestFields(title="Study", intended_use="Research on the 2024 cohort"),
    )
    act("A", c.requester, "resubmit", at(3, 1))
    act("A", c.reviewer, "approve", at(4, 1))

    new("B", c.requester2, at(1))
    act("B", c.requester2, "submit", at(2))
    act("B", c.reviewer2, "reject", at(2, 6), reason="no ethics approval")

    new("C", c.requester, at(2))
    act("C", c.requester, "cancel", at(3))

    new("D", c.requester, at(3))
    act("D", c.requester, "submit", at(5))

    new("E", c.requester, at(4))
    act("E", c.requester, "submit", at(18))

    new("F", c.requester, at(5))

    new("G", c.requester2, at(1))
    act("G", c.requester2, "submit", at(1, 1))
    act("G", c.reviewer, "return", at(2, 1), reason="incomplete")

    new("H", c.requester, at(0))
    act("H", c.requester, "submit", at(0, 2))
    act("H", c.reviewer, "approve", at(1, 2))
    act("H", c.steward, "revoke", at(10), reason="left the consortium")
    return ids


def named(story: Story, rid: str) -> str:
    return {v: k for k, v in story.items()}[rid]


def ts(days: float = 0, hours: float = 0) -> Any:
    """An event time as epoch seconds (SQLite's julianday arithmetic is exact to ~1 ms)."""
    return approx(at(days, hours).timestamp())


def col(table: Table, name: str) -> int:
    return [c.name for c in table.columns].index(name)


def approx(value: float | None) -> Any:
    return None if value is None else pytest.approx(value, abs=0.01)


def assert_never_negative(table: Table) -> None:
    for i, c in enumerate(table.columns):
        if c.kind == "duration":
            assert all(r[i] is None or r[i] >= 0 for r in table.rows), c.name


# ---- tracking table --------------------------------------------------------------------------


EXPECTED_TOTAL = {
    "A": 4 * D,
    "B": 6 * H,
    "C": None,
    "D": 15 * D,
    "E": 2 * D,
    "F": None,
    "G": 19 * D - H,
    "H": 1 * D,
}


def test_tracking_table_total_durations(consortium: Consortium, story: Story) -> None:
    t = reports.tracking_table(consortium.db, actor=consortium.steward, flt=ALL, now=NOW)
    i = col(t, "total_duration")
    got = {named(story, r[0]): r[i] for r in t.rows}
    assert got == {k: approx(v) for k, v in EXPECTED_TOTAL.items()}
    # ordered by creation (A and H share T: then by id, which is creation order here)
    assert [named(story, r[0]) for r in t.rows] == ["A", "H", "B", "G", "C", "D", "E", "F"]
    state = {named(story, r[0]): r[col(t, "state")] for r in t.rows}
    assert state == {
        "A": "approved",
        "B": "rejected",
        "C": "cancelled",
        "D": "submitted",
        "E": "submitted",
        "F": "draft",
        "G": "returned",
        "H": "revoked",
    }
    a = next(r for r in t.rows if r[0] == story["A"])
    assert a[col(t, "created")] == at(0)
    assert a[col(t, "last_change")] == at(4, 1)
    assert a[col(t, "requester")] == consortium.requester
    assert a[col(t, "intended_use")] == "Research on the 2024 cohort"
    assert list(a[col(t, "datasets")]) == ["raw/wgs"]
    assert_never_negative(t)


def test_open_requests_count_up_to_now(consortium: Consortium, story: Story) -> None:
    later = NOW + timedelta(days=1)
    t = reports.tracking_table(consortium.db, actor=consortium.steward, flt=ALL, now=later)
    i = col(t, "total_duration")
    got = {named(story, r[0]): r[i] for r in t.rows}
    for name in ("D", "E", "G"):  # still open: one day more
        assert got[name] == approx(EXPECTED_TOTAL[name] + D)  # type: ignore[operator]
    for name in ("A", "B", "H"):  # decided: unchanged
        assert got[name] == approx(EXPECTED_TOTAL[name])
    assert got["C"] is None
    assert got["F"] is None


# ---- change log ------------------------------------------------------------------------------


def test_change_log_rows_and_times_in_states(consortium: Consortium, story: Story) -> None:
    t = reports.change_log(consortium.db, actor=consortium.steward, flt=ALL, now=NOW)
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for r in t.rows:
        when = r[col(t, "at")]
        assert isinstance(when, datetime)
        assert when.utcoffset() == timedelta(0)
        values = [when.timestamp() if v is when else v for v in r[1:]]
        rows.setdefault(named(story, r[0]), []).append(tuple(values))
    assert sorted(rows) == sorted(story)
    assert len(t.rows) == 5 + 3 + 2 + 2 + 2 + 1 + 3 + 4
    # the time of each change is the event's own time, to the microsecond (it is exported)
    with consortium.db.transaction() as s:
        moves = s.execute(
            select(Event.subject_id, Event.at)
            .where(or_(Event.from_state.is_(None), Event.from_state != Event.to_state))
            .order_by(Event.subject_id, Event.seq)
        ).all()
    assert [(r[0], r[col(t, "at")]) for r in t.rows] == [tuple(m) for m in moves]

    rita, ada = consortium.reviewer, consortium.requester
    assert rows["A"] == [
        (1, None, "draft", ts(0), ada, None, None, approx(H), False),
        (2, "draft", "submitted", ts(0, 1), ada, None, approx(H), approx(D), False),
        (
            3,
            "submitted",
            "returned",
            ts(1, 1),
            rita,
            "which cohort?",
            approx(D),
            approx(2 * D),
            False,
        ),
        (4, "returned", "submitted", ts(3, 1), ada, None, approx(2 * D), approx(D), False),
        (5, "submitted", "approved", ts(4, 1), rita, None, approx(D), approx(16 * D - H), True),
    ]
    # a final state has no time in it; the state a request is in now counts up to now
    assert rows["H"][-1][1:] == (
        "approved",
        "revoked",
        ts(10),
        consortium.steward,
        "left the consortium",
        approx(9 * D - 2 * H),
        None,
        True,
    )
    assert rows["C"][-1][1:3] == ("draft", "cancelled")
    assert rows["C"][-1][6:] == (approx(D), None, True)
    assert rows["B"][-1][6:] == (approx(6 * H), None, True)
    assert rows["F"] == [(1, None, "draft", ts(5), ada, None, None, approx(15 * D), True)]
    assert rows["G"][-1][1:3] == ("submitted", "returned")
    assert rows["G"][-1][6:] == (approx(D), approx(18 * D - H), True)
    assert rows["E"][-1][6:] == (approx(14 * D), approx(2 * D), True)
    for seq in rows.values():
        assert [r[0] for r in seq] == list(range(1, len(seq) + 1))
        assert [r[-1] for r in seq] == [False] * (len(seq) - 1) + [True]
        for before, after in itertools.pairwise(seq):
            assert after[1] == before[2]
            assert after[3] >= before[3]
    assert_never_negative(t)


# ---- time in state ---------------------------------------------------------------------------


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


STAYS = {
    # every stay in each non-final state, with those still going on counted up to NOW
    "draft": [H, 1 * D, 1 * D, 2 * D, 14 * D, 15 * D, H, 2 * H],  # A B C D E F G H
    "submitted": [D, D, 6 * H, 15 * D, 2 * D, D, D],  # A A B D E G H
    "returned": [2 * D, 18 * D - H],  # A G
    "approved": [16 * D - H, 9 * D - 2 * H],  # A H
}
ONGOING = {"draft": 1, "submitted": 2, "returned": 1, "approved": 1}
SLA = {"draft": None, "submitted": 4 * D, "returned": 14 * D, "approved": None}


def test_time_in_state_summary(consortium: Consortium, story: Story) -> None:
    t = reports.time_in_state(consortium.db, actor=consortium.steward, flt=ALL, now=NOW)
    got = {r[0]: tuple(r[1:]) for r in t.rows}
    assert sorted(got) == sorted(STAYS)
    for state, stays in STAYS.items():
        sla = SLA[state]
        assert got[state] == (
            len(stays),
            ONGOING[state],
            approx(_q(stays, 0.5)),
            approx(_q(stays, 0.9)),
            approx(max(stays)),
            sla,
            None if sla is None else sum(1 for v in stays if v > sla),
        ), state
    # the hand-computed figures spelled out for the two states with targets
    assert got["submitted"][2:5] == (approx(D), approx(7.2 * D), approx(15 * D))
    assert got["submitted"][6] == 1
    assert got["returned"][2] == approx(10 * D - H / 2)
    assert got["returned"][6] == 1
    assert_never_negative(t)


def test_time_in_state_for_one_state_filter(consortium: Consortium, story: Story) -> None:
    """Filters pick requests by their current state; their whole history is summarised."""
    flt = RequestFilter(project="p1", states=("submitted",))  # D and E
    t = reports.time_in_state(consortium.db, actor=consortium.steward, flt=flt, now=NOW)
    got = {r[0]: tuple(r[1:3]) for r in t.rows}
    assert got == {"draft": (2, 0), "submitted": (2, 2), "returned": (0, 0), "approved": (0, 0)}
    empty = {r[0]: r for r in t.rows}["returned"]
    assert tuple(empty[3:6]) == (None, None, None)


# ---- SLA breaches ------------------------------------------------------------------------------


def test_sla_breaches_are_exactly_the_requests_over_target_now(
    consortium: Consortium, story: Story
) -> None:
    c = consortium
    t = reports.sla_breaches(c.db, actor=c.steward, flt=ALL, now=NOW)
    assert [named(story, r[0]) for r in t.rows] == ["G", "D"]  # longest-waiting first
    g, d = t.rows
    assert tuple(g[2:]) == (
        "returned",
        at(2, 1),
        approx(18 * D - H),
        14 * D,
        approx(4 * D - H),
        c.requester2,
        None,
    )
    assert tuple(d[2:]) == (
        "submitted",
        at(5),
        approx(15 * D),
        4 * D,
        approx(11 * D),
        c.requester,
        None,
    )
    # E passes its target 4 days after its submission; exactly at the target is not over
    at_target = at(22)
    names = [
        named(story, r[0])
        for r in reports.sla_breaches(c.db, actor=c.steward, flt=ALL, now=at_target).rows
    ]
    assert names == ["G", "D"]
    after = at_target + timedelta(seconds=1)
    names = [
        named(story, r[0])
        for r in reports.sla_breaches(c.db, actor=c.steward, flt=ALL, now=after).rows
    ]
    assert names == ["G", "D", "E"]
    # the earlier it is asked, the fewer breaches
    early = at(6)  # D 1 day in (not over), G 4 days in (not over)
    assert reports.sla_breaches(c.db, actor=c.steward, flt=ALL, now=early).rows == []
    assert_never_negative(t)


def test_the_summary_and_the_breach_list_agree(consortium: Consortium, story: Story) -> None:
    c = consortium
    for now in (at(18), at(19), NOW, at(22, 1), at(40)):
        summary = reports.time_in_state(c.db, actor=c.steward, flt=ALL, now=now)
        ongoing_over = reports.sla_breaches(c.db, actor=c.steward, flt=ALL, now=now)
        by_state = {r[2] for r in ongoing_over.rows}
        for r in summary.rows:
            if r[6] is None:
                assert r[0] not in by_state
        # every breach now is a stay over target in the summary
        over = {r[0]: r[7] for r in summary.rows}
        for state in by_state:
            assert over[state] >= sum(1 for r in ongoing_over.rows if r[2] == state)


# ---- visibility --------------------------------------------------------------------------------


def test_reports_show_a_requester_only_their_own(consortium: Consortium, story: Story) -> None:
    c = consortium
    mine = {"A", "C", "D", "E", "F", "H"}
    t = reports.tracking_table(c.db, actor=c.requester, flt=RequestFilter(), now=NOW)
    assert {named(story, r[0]) for r in t.rows} == mine
    log = reports.change_log(c.db, actor=c.requester, flt=RequestFilter(), now=NOW)
    assert {named(story, r[0]) for r in log.rows} == mine
    sla = reports.sla_breaches(c.db, actor=c.requester, flt=RequestFilter(), now=NOW)
    assert [named(story, r[0]) for r in sla.rows] == ["D"]
    tis = {
        r[0]: r[1]
        for r in reports.time_in_state(c.db, actor=c.requester, flt=RequestFilter(), now=NOW).rows
    }
    assert tis == {"draft": 6, "submitted": 5, "returned": 1, "approved": 2}
    theirs = reports.tracking_table(c.db, actor=c.requester2, flt=ALL, now=NOW)
    assert {named(story, r[0]) for r in theirs.rows} == {"B", "G"}
    # asking for someone else's requests gives nothing, not their data
    none = reports.change_log(
        c.db, actor=c.requester2, flt=RequestFilter(requester=c.requester), now=NOW
    )
    assert none.rows == []
    # a non-member asking for the project hears that there is no such project (issue 8 item 9)
    with pytest.raises(NotFound):
        reports.tracking_table(c.db, actor=c.outsider, flt=ALL, now=NOW)
    assert reports.tracking_table(c.db, actor=c.outsider, flt=RequestFilter(), now=NOW).rows == []
    viewer = reports.tracking_table(c.db, actor=c.viewer, flt=ALL, now=NOW)
    assert len(viewer.rows) == 8


def test_reports_respect_filters(consortium: Consortium, story: Story) -> None:
    c = consortium
    flt = RequestFilter(project="p1", requester=c.requester2)
    t = reports.tracking_table(c.db, actor=c.steward, flt=flt, now=NOW)
    assert {named(story, r[0]) for r in t.rows} == {"B", "G"}
    log = reports.change_log(c.db, actor=c.steward, flt=flt, now=NOW)
    assert [named(story, r[0]) for r in log.rows].count("G") == 3
    assert {named(story, r[0]) for r in log.rows} == {"B", "G"}
    decided = RequestFilter(decided_from=at(2), decided_to=at(5))
    t = reports.tracking_table(c.db, actor=c.steward, flt=decided, now=NOW)
    assert {named(story, r[0]) for r in t.rows} == {"A", "B"}


def test_csv_exports_of_narrowed_and_wide_reports_match_their_tables(
    consortium: Consortium, story: Story
) -> None:
    """The UTC change log is written from the kept logs, picked by project or one request at
    a time depending on who asks and how narrowly: each way, the table's CSV exactly."""
    c = consortium
    cases = [
        (c.requester, RequestFilter()),  # their own requests only
        (c.requester2, RequestFilter(requester=c.requester)),  # nothing
        (c.steward, RequestFilter(project="p1", states=("approved", "returned"))),
        (c.steward, RequestFilter(decided_from=at(2), decided_to=at(5))),
        (c.steward, ALL),
        (c.admin, RequestFilter()),  # every project
        (c.outsider, RequestFilter()),  # none (a non-member naming p1 hears "not found")
    ]
    sizes = []
    for actor, flt in cases:
        table = reports.change_log(c.db, actor=actor, flt=flt, now=NOW)
        want = io.StringIO(newline="")
        write_csv(table, want, ZoneInfo("UTC"))
        got = io.StringIO(newline="")
        n = reports.write_report_csv(
            c.db, "changelog", actor=actor, flt=flt, out=got, tz=ZoneInfo("UTC"), now=NOW
        )
        assert got.getvalue() == want.getvalue(), (actor, flt)
        assert n == len(table.rows)
        sizes.append(n)
    assert sizes[1] == sizes[-1] == 0
    assert all(sizes[i] for i in (0, 2, 3, 4, 5))


def test_the_first_rows_of_a_report_are_those_of_the_whole(
    consortium: Consortium, story: Story
) -> None:
    """A screen's worth (``limit``) is read alone, and is the start of the whole report, with
    the same times in states (the last row's comes from the next change, read too)."""
    c = consortium
    for name, fn in reports.REPORTS.items():
        whole = fn(c.db, actor=c.steward, flt=ALL, now=NOW)
        assert whole.total is None
        assert whole.size == len(whole.rows) >= 2, name
        for limit in (1, 2, len(whole.rows) - 1, len(whole.rows), len(whole.rows) + 5):
            first = fn(c.db, actor=c.steward, flt=ALL, now=NOW, limit=limit)
            assert first.rows == whole.rows[:limit], (name, limit)
            assert first.size == len(whole.rows), (name, limit)
    log = reports.change_log(c.db, actor=c.steward, flt=ALL, now=NOW, limit=4)
    assert log.total is not None
    assert len(log.rows) == 4


# ---- exports ---------------------------------------------------------------------------------


HELSINKI = ZoneInfo("Europe/Helsinki")


def test_exports_have_the_right_rows(consortium: Consortium, story: Story, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    c = consortium
    out = tmp_path / "out"
    t = reports.tracking_table(c.db, actor=c.steward, flt=ALL, now=NOW)
    expected_ids = [r[0] for r in t.rows]
    a_created_local = "2026-01-05T11:00:00+02:00"  # 09:00 UTC in Helsinki in January

    with export(t, "csv", out / "t.csv", HELSINKI).open(encoding="utf-8", newline="") as fh:
        records = list(csv.DictReader(fh))
    assert [r["request"] for r in records] == expected_ids
    assert list(records[0]) == [c.machine_name for c in t.columns]
    by_id = {r["request"]: r for r in records}
    a = by_id[story["A"]]
    assert a["created"] == a_created_local
    assert float(a["total_duration_seconds"]) == approx(4 * D)
    assert a["datasets"] == "raw/wgs"
    assert by_id[story["F"]]["total_duration_seconds"] == ""

    data = json.loads(export(t, "json", out / "t.json", HELSINKI).read_text("utf-8"))
    assert [r["request"] for r in data] == expected_ids
    js = {r["request"]: r for r in data}
    assert js[story["A"]]["created"] == a_created_local
    assert js[story["A"]]["total_duration_seconds"] == approx(4 * D)
    assert js[story["A"]]["datasets"] == ["raw/wgs"]
    assert js[story["C"]]["total_duration_seconds"] is None

    wb = load_workbook(export(t, "xlsx", out / "t.xlsx", HELSINKI), read_only=True)
    ws = wb["tracking"]
    values = list(ws.iter_rows(values_only=True))
    wb.close()
    assert list(values[0]) == [c.machine_name for c in t.columns]
    assert [r[0] for r in values[1:]] == expected_ids
    xa = {r[0]: r for r in values[1:]}[story["A"]]
    header = list(values[0])
    assert xa[header.index("created")] == datetime(2026, 1, 5, 11, 0)
    assert xa[header.index("total_duration_seconds")] == approx(4 * D)
    assert xa[header.index("datasets")] == "raw/wgs"
    assert sorted(p.name for p in out.iterdir()) == ["t.csv", "t.json", "t.xlsx"]


def _poisoned(kind: str) -> Table:
    """A table whose third row cannot be written: the writer fails midway through the file."""
    good = ("r", datetime(2026, 1, 1, tzinfo=UTC), 1.5, ["x"])
    bad: dict[str, tuple[Any, ...]] = {
        "csv": ("r", datetime(2026, 1, 1, tzinfo=UTC), "not a number", ["x"]),
        "json": ("r", datetime(2026, 1, 1, tzinfo=UTC), 1.5, ["x"], object()),
        "xlsx": ("r", "not a time", 1.5, ["x"]),
    }
    columns = [
        Column("name"),
        Column("at", "time"),
        Column("took", "duration"),
        Column("l", "list"),
    ]
    rows: list[Any] = [good, good, bad[kind], good]
    if kind == "json":
        columns.append(Column("extra"))
        rows = [(*good, "fine"), (*good, "fine"), bad[kind], (*good, "fine")]
    return Table(title="poisoned", columns=columns, rows=rows * 500)


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_a_failing_export_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Writers may spool through temporary files (openpyxl does): those count as partial
    # copies of the report too, so they are kept in a folder of their own and checked.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "out"
    out.mkdir()
    table = _poisoned(fmt)
    utc = ZoneInfo("UTC")
    fresh = out / f"new.{fmt}"
    with pytest.raises((ValueError, TypeError, AttributeError)):
        export(table, fmt, fresh, utc)
    assert not fresh.exists()
    kept = out / f"old.{fmt}"
    kept.write_bytes(b"the previous report")
    with pytest.raises((ValueError, TypeError, AttributeError)):
        export(table, fmt, kept, utc)
    assert kept.read_bytes() == b"the previous report"
    assert sorted(p.name for p in out.iterdir()) == [f"old.{fmt}"]  # no temporary left
    gc.collect()  # anything the failed writer left open is finalised now, inside this test
    assert sorted(p.name for p in scratch.iterdir()) == []
    # and the same table without its bad row is written in full
    good = Table(table.title, table.columns, [r for i, r in enumerate(table.rows) if i % 4 != 2])
    export(good, fmt, kept, utc)
    assert kept.read_bytes() != b"the previous report"


def test_export_refuses_unknown_formats(tmp_path: Path) -> None:
    table = Table(title="x", columns=[Column("a")], rows=[("1",)])
    with pytest.raises(ValidationFailed) as err:
        export(table, "pdf", tmp_path / "x.pdf", ZoneInfo("UTC"))
    assert err.value.details[0].accepted == "csv, json, xlsx"
    assert list(tmp_path.iterdir()) == []


# ---- stays recorded with each event, checked against the events themselves ------------------
#
# Reports no longer pair transitions: each event carries the time its subject spent in the
# state it left (``stay_seconds``), the read model keeps when the current state began, and
# the change log's CSV is streamed. Here every report is recomputed from scratch over the
# events (the way the reports used to do it) and must agree exactly, for random histories
# written through the service and through the importer.


def reference(
    db: Any, project: str, now: datetime
) -> tuple[dict[str, tuple[Any, ...]], list[tuple[Any, ...]], dict[str, float | None]]:
    """(time in state, change log rows, tracking totals) computed from the events alone."""
    with db.transaction() as s:
        events = list(
            s.scalars(select(Event).where(Event.project_id == project).order_by(Event.id))
        )
    by_subject: dict[str, list[Event]] = {}
    for e in sorted(events, key=lambda e: (e.subject_id, e.seq)):
        by_subject.setdefault(e.subject_id, []).append(e)
    wf = WORKFLOW
    terminal = wf.terminal_states
    stays: dict[str, list[float]] = {x.name: [] for x in wf.states if not x.terminal}
    ongoing = dict.fromkeys(stays, 0)
    log: list[tuple[Any, ...]] = []
    totals: dict[str, float | None] = {}
    for sid, evs in sorted(by_subject.items()):
        moves = [e for e in evs if e.from_state is None or e.from_state != e.to_state]
        start = next((e.at for e in moves if e.to_state == wf.clock_start), None)
        stop = next((e.at for e in moves if e.to_state in wf.clock_stop), None)
        totals[sid] = None if start is None else ((stop or now) - start).total_seconds()
        for i, e in enumerate(moves):
            left = None if i == 0 else (e.at - moves[i - 1].at).total_seconds()
            last = i == len(moves) - 1
            if not last:
                stayed: float | None = (moves[i + 1].at - e.at).total_seconds()
            else:
                stayed = None if e.to_state in terminal else (now - e.at).total_seconds()
            if e.to_state in stays:
                stays[e.to_state].append(max(stayed if stayed is not None else 0.0, 0.0))
                ongoing[e.to_state] += last
            reason = e.data.get("reason") if isinstance(e.data, dict) else None
            log.append(
                (sid, i + 1, e.from_state, e.to_state, e.at, e.actor, reason, left, stayed, last)
            )
    summary: dict[str, tuple[Any, ...]] = {}
    for state in wf.states:
        if state.terminal:
            continue
        values = sorted(stays[state.name])
        sla = state.sla.total_seconds() if state.sla else None
        if not values:
            summary[state.name] = (0, 0, None, None, None, sla, None if sla is None else 0)
            continue
        over = None if sla is None else sum(1 for v in values if v > sla)
        summary[state.name] = (
            len(values),
            ongoing[state.name],
            statistics.median(values),
            _q(values, 0.9),
            values[-1],
            sla,
            over,
        )
    return summary, log, totals


def recorded_stays_are_right(db: Any, project: str) -> None:
    """Each event's stay_seconds is the time since the previous state change, exactly."""
    with db.transaction() as s:
        events = list(
            s.scalars(
                select(Event)
                .where(Event.project_id == project)
                .order_by(Event.subject_id, Event.seq)
            )
        )
    entered: dict[str, datetime] = {}
    for e in events:
        want = None
        if e.from_state != e.to_state:
            if e.from_state is not None:
                want = (e.at - entered[e.subject_id]).total_seconds()
            entered[e.subject_id] = e.at
        assert e.stay_seconds == want, (e.subject_id, e.seq, e.type)


def kept_logs(db: Any) -> list[tuple[Any, ...]]:
    with db.transaction() as s:
        return [
            tuple(r)
            for r in s.execute(
                select(
                    ChangeLog.subject_kind,
                    ChangeLog.subject_id,
                    ChangeLog.project_id,
                    ChangeLog.lines,
                    ChangeLog.moves,
                    ChangeLog.state,
                    ChangeLog.since,
                ).order_by(ChangeLog.subject_kind, ChangeLog.subject_id)
            )
        ]


def logs_kept_are_the_logs_of_the_events(db: Any) -> None:
    """What the ledger and the importer kept, change by change, is what the events give."""
    kept = kept_logs(db)
    with db.engine.begin() as conn:
        assert change_logs.rebuild(conn) == len(kept)
    assert kept_logs(db) == kept


def reports_agree_with_the_events(
    c: Consortium,
    project: str,
    now: datetime,
    zones: tuple[str, ...] = ("UTC", "Europe/Helsinki", "Asia/Kolkata", "America/St_Johns"),
) -> None:
    recorded_stays_are_right(c.db, project)
    logs_kept_are_the_logs_of_the_events(c.db)
    flt = RequestFilter(project=project)
    summary, log, totals = reference(c.db, project, now)

    tis = reports.time_in_state(c.db, actor=c.steward, flt=flt, now=now)
    assert {r[0]: tuple(r[1:]) for r in tis.rows} == summary
    # the same through the path for narrowed reports (stays fetched and sorted in Python)
    every_state = RequestFilter(project=project, states=tuple(WORKFLOW.state_names))
    narrowed = reports.time_in_state(c.db, actor=c.steward, flt=every_state, now=now)
    assert narrowed.rows == tis.rows

    changes = reports.change_log(c.db, actor=c.steward, flt=flt, now=now)
    assert [tuple(r) for r in changes.rows] == log

    tracking = reports.tracking_table(c.db, actor=c.steward, flt=flt, now=now)
    assert {r[0]: r[col(tracking, "total_duration")] for r in tracking.rows} == totals

    # the streamed CSV export is the table's CSV, byte for byte, in any zone
    for zone in zones:
        tz = ZoneInfo(zone)
        for name in ("changelog", "tracking", "time-in-state"):
            table = reports.REPORTS[name](c.db, actor=c.steward, flt=flt, now=now)
            want = io.StringIO(newline="")
            write_csv(table, want, tz)
            got = io.StringIO(newline="")
            n = reports.write_report_csv(
                c.db, name, actor=c.steward, flt=flt, out=got, tz=tz, now=now
            )
            assert got.getvalue() == want.getvalue(), (name, zone)
            assert n == len(table.rows)


Step = tuple[str, int]  # command, microseconds after the previous event
_projects = itertools.count(1)


def new_project(c: Consortium) -> str:
    """A fresh project with the consortium's people, so each example starts empty."""
    project = f"rand{next(_projects)}"
    access.create_project(c.db, actor=c.admin, project_id=project, title=project)
    for uid, role in (
        (c.steward, "steward"),
        (c.reviewer, "reviewer"),
        (c.requester, "requester"),
    ):
        access.add_member(c.db, actor=c.admin, project_id=project, user_id=uid, role=role)
    catalog.add_requirement(
        c.db,
        actor=c.steward,
        project=project,
        name="Controlled genomes",
        kind="controlled",
        folders=["raw/wgs"],
    )
    return project


_GAPS = st.one_of(
    st.integers(0, 3),  # the same instant, or nearly
    st.integers(0, 86_400_000_000),  # within a day, to the microsecond
    st.integers(0, 2_000).map(lambda ms: ms * 1000 + 500),  # halfway between milliseconds
    st.integers(0, 40).map(lambda d: d * 86_400_000_000),  # whole days
)


@st.composite
def histories(draw: st.DrawFn) -> list[list[Step]]:
    """Valid paths through the workflow, with comments and edits along the way."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        state, steps = "draft", []
        for _ in range(draw(st.integers(0, 7))):
            options = [
                t.command
                for t in WORKFLOW.transitions
                if t.by_people
                and t.applies_to(state)
                and t.command not in ("assign-reviewer", "edit")
            ]
            if not options:
                break
            command = draw(st.sampled_from(sorted(options)))
            gap = draw(_GAPS)
            steps.append((command, gap))
            state = WORKFLOW.decide(command, state, _everyone()).to_state
        out.append(steps)
    return out


def _everyone() -> Any:
    from steward.domain.workflow import Context

    return Context(actor="sam", roles=frozenset({"steward", "admin"}), subject={})


def _who(c: Consortium, command: str) -> str:
    if command in ("return", "approve", "reject"):
        return c.reviewer
    if command in ("revoke", "expire"):
        return c.steward
    return c.requester


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(paths=histories(), later=st.integers(-5, 30))
def test_reports_match_the_events_for_random_histories(
    consortium: Consortium, paths: list[list[Step]], later: int
) -> None:
    c = consortium
    project = new_project(c)
    last = T
    for steps in paths:
        when = T + timedelta(microseconds=len(steps))
        v = requests.create(c.db, actor=c.requester, project=project, fields=FIELDS, at=when)
        for command, gap in steps:
            when += timedelta(microseconds=gap)
            reason = 'because, "so"' if command in REASON_REQUIRED else None
            kw: dict[str, Any] = {"text": "a note"} if command == "comment" else {}
            requests.act(
                c.db,
                actor=_who(c, command),
                request_id=v.id,
                command=command,
                at=when,
                reason=reason,
                **kw,
            )
        last = max(last, when)
    # "now" may even come before the latest events (histories dated in the future): the
    # summary then counts such stays as zero; the change log and the tracking table leave out
    # the durations that would be negative, and name exactly those requests
    now = last + timedelta(days=later)
    summary, log, totals = reference(c.db, project, now)
    if any(row[-1] and row[-2] is not None and row[-2] < -0.001 for row in log):
        flt = RequestFilter(project=project)
        changes = reports.change_log(c.db, actor=c.steward, flt=flt, now=now)
        assert [tuple(r) for r in changes.rows] == [
            (*r[:8], None if r[8] is not None and r[8] < -0.001 else r[8], r[9]) for r in log
        ]
        tracking = reports.tracking_table(c.db, actor=c.steward, flt=flt, now=now)
        i, p = col(tracking, "total_duration"), col(tracking, "problem")
        assert {r[0]: r[i] for r in tracking.rows} == {
            k: None if v is not None and v < 0 else v for k, v in totals.items()
        }
        with c.db.transaction() as s:
            late = set(
                s.scalars(
                    select(Event.subject_id).where(Event.project_id == project, Event.at > now)
                )
            )
        assert {r[0] for r in tracking.rows if r[p]} == late
        assert all(rid in changes.caption for rid in late)
        tis = reports.time_in_state(c.db, actor=c.steward, flt=flt, now=now)
        assert {r[0]: tuple(r[1:]) for r in tis.rows} == summary
        for name in reports.REPORTS:  # and every export of every report still works
            reports.write_report_csv(
                c.db, name, actor=c.steward, flt=flt, out=io.StringIO(), tz=ZoneInfo("UTC"), now=now
            )
        return
    reports_agree_with_the_events(c, project, now, zones=("UTC", "Asia/Kolkata"))


IMPORTED = [
    ["request", "state", "at", "title", "requester", "actor", "reason"],
    ["X-1", "draft", "2024-01-05T09:00:00.000001+00:00", 'Cohort, with "quotes"', "ada", "", ""],
    ["X-1", "submitted", "2024-01-05T09:00:01.000501+00:00", "", "", "o'neil, jr", ""],
    ["X-1", "returned", "2024-01-06T10:00:00+00:00", "", "", 'rev "x"', 'one\ntwo, "more"'],
    ["X-1", "submitted", "2024-01-07T10:00:00.0625+00:00", "", "", "ada", ""],
    ["X-1", "approved", "2024-01-08T10:00:00.5+00:00", "", "", "rita", "tab\there; ünïcödé ✓"],
    ["X-2", "submitted", "2024-01-05T23:59:59.999999+00:00", "Two", "bea", "bea", ""],
    ["X-2", "returned", "2024-01-06T00:00:00.000499+00:00", "", "", "rob", "carriage\rreturn"],
    ["X-2", "cancelled", "2024-01-09T00:00:00+00:00", "", "", "bea", "% and \\ and \x06 mark"],
    ["X-3", "draft", "2024-02-01T00:00:00+00:00", "Three", "ada", "", ""],
]


def test_exports_of_imported_awkward_histories(consortium: Consortium, tmp_path: Path) -> None:
    """Commas, quotes, newlines, control characters and times halfway between milliseconds,
    through the importer: the streamed CSV is still the table's CSV, byte for byte."""
    c = consortium
    path = tmp_path / "awkward.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(IMPORTED)
    project = new_project(c)
    # the actors hold the roles their changes need (imports are judged like live commands):
    # a steward submits on ada's behalf, reviewers return. The awkward names are users from
    # before names were checked, written directly: `user add` and --create-users refuse them.
    legacy = (("o'neil, jr", "steward"), ('rev "x"', "reviewer"))
    with c.db.transaction() as s:
        s.add_all(
            User(id=who, display_name=who, email="", is_admin=False, created_at=T)
            for who, _ in legacy
        )
        s.flush()
        s.add_all(Membership(project_id=project, user_id=who, role=role) for who, role in legacy)
    for who, role in ((c.reviewer2, "reviewer"), (c.requester2, "requester")):
        access.add_member(c.db, actor=c.admin, project_id=project, user_id=who, role=role)
    importer.import_requests(c.db, actor=c.steward, project=project, path=path)
    now = datetime(2024, 3, 1, 12, 0, 0, 500, tzinfo=UTC)
    reports_agree_with_the_events(c, project, now)
    table = reports.change_log(c.db, actor=c.steward, flt=RequestFilter(project=project), now=now)
    out = io.StringIO(newline="")
    write_csv(table, out, ZoneInfo("UTC"))
    text = out.getvalue()
    assert '"one\ntwo, ""more"""' in text
    assert '"o\'neil, jr"' in text
