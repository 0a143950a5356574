"""Importing request histories (CSV, TSV, JSON lines) into real databases.

Good files keep every original timestamp and state as events. Every kind of bad input gets its
own test and must leave nothing behind: no requests, no events, no users, no memberships.
"""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from steward.db.models import AccessRequest, AuditEntry, Event, Membership, User
from steward.errors import Detail, Forbidden, NotFound, ValidationFailed
from steward.services import importer, reports, requests
from steward.services.importer import COLUMNS
from steward.services.requests import RequestFilter
from tests.conftest import Consortium

DATA = Path(__file__).resolve().parent.parent / "data" / "import"
HEADER = ",".join(COLUMNS)
KIND = "access_request"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def counts(c: Consortium) -> tuple[int, int, int, int]:
    """(requests, events, users, memberships): what an import may add."""
    with c.db.transaction() as s:
        return (
            int(s.scalar(select(func.count()).select_from(AccessRequest)) or 0),
            int(s.scalar(select(func.count()).select_from(Event)) or 0),
            int(s.scalar(select(func.count()).select_from(User)) or 0),
            int(s.scalar(select(func.count()).select_from(Membership)) or 0),
        )


def by_external(c: Consortium) -> dict[str, tuple[AccessRequest, list[Event]]]:
    with c.db.transaction() as s:
        out = {}
        for row in s.scalars(select(AccessRequest).where(AccessRequest.project_id == c.project)):
            evs = list(
                s.scalars(
                    select(Event)
                    .where(Event.subject_kind == KIND, Event.subject_id == row.id)
                    .order_by(Event.seq)
                )
            )
            assert row.external_id is not None
            out[row.external_id] = (row, evs)
        return out


def csv_file(tmp_path: Path, *lines: str, name: str = "in.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def row(
    request: str = "R1",
    state: str = "draft",
    at: str = "2025-03-01T09:00:00+00:00",
    title: str = "",
    requester: str = "",
    actor: str = "",
    reason: str = "",
    duo: str = "",
    reviewer: str = "",
) -> str:
    values = dict.fromkeys(COLUMNS, "")
    values.update(
        request=request,
        state=state,
        at=at,
        title=title,
        requester=requester,
        actor=actor,
        reason=reason,
        duo_codes=duo,
        reviewer=reviewer,
    )
    return ",".join(values[c] for c in COLUMNS)


def refused(c: Consortium, path: Path, *, listed: bool = True) -> ValidationFailed:
    """Import ``path`` expecting a refusal; check that nothing at all was written.

    ``listed``: the error is a list of problems, and its message says so.
    """
    before = counts(c)
    with pytest.raises(ValidationFailed) as err:
        importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    assert counts(c) == before
    if listed:
        assert "nothing was imported" in err.value.message
    return err.value


def located(details: list[Detail]) -> list[tuple[int | None, str | None]]:
    return [(d.row, d.field) for d in details]


# ---- good files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["history.csv", "history.tsv", "history.jsonl"])
def test_import_keeps_original_times_and_states(
    consortium: Consortium, tmp_path: Path, name: str
) -> None:
    c = consortium
    path = tmp_path / name
    shutil.copy(DATA / name, path)
    before = counts(c)
    result = importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    assert (result.requests, result.events, result.skipped, result.users_created) == (3, 10, 0, [])
    assert counts(c)[:2] == (before[0] + 3, before[1] + 10)

    got = by_external(c)
    assert sorted(got) == ["EXT-1", "EXT-2", "EXT-3"]

    row1, ev1 = got["EXT-1"]
    assert [(e.seq, e.type, e.from_state, e.to_state, e.at, e.actor) for e in ev1] == [
        (1, "created", None, "draft", utc(2025, 3, 1, 9), "ada"),
        (2, "submitted", "draft", "submitted", utc(2025, 3, 2, 8), "ada"),
        (3, "returned", "submitted", "returned", utc(2025, 3, 3, 9), "rita"),
        (4, "resubmitted", "returned", "submitted", utc(2025, 3, 5, 9), "ada"),
        (5, "approved", "submitted", "approved", utc(2025, 3, 6, 12, 30), "rita"),
    ]
    assert ev1[2].data == {"reason": "need ethics"}
    assert ev1[0].data["title"] == "Genomes of cohort X, 2024"
    assert row1.id.startswith("req_")
    assert (row1.state, row1.version, row1.title, row1.requester, row1.reviewer) == (
        "approved",
        5,
        "Genomes of cohort X, 2024",
        "ada",
        "rita",
    )
    assert (row1.institution, row1.project_lead, row1.intended_use) == (
        "Uni A",
        "Prof A",
        "Study X",
    )
    assert row1.datasets == ["raw/wgs"]
    assert row1.duo_codes == ["DUO:0000042", "DUO:0000006"]
    assert (row1.created_at, row1.submitted_at, row1.decided_at, row1.state_since) == (
        utc(2025, 3, 1, 9),
        utc(2025, 3, 2, 8),
        utc(2025, 3, 6, 12, 30),
        utc(2025, 3, 6, 12, 30),
    )
    assert (row1.updated_at, row1.decided_by, row1.decision_reason) == (
        utc(2025, 3, 6, 12, 30),
        "rita",
        "ok",
    )

    row2, ev2 = got["EXT-2"]
    assert [(e.type, e.at, e.actor) for e in ev2] == [
        ("created", utc(2025, 3, 4, 8), "bea"),
        ("submitted", utc(2025, 3, 4, 8), "bea"),
        ("rejected", utc(2025, 3, 8, 8), "rob"),
    ]
    assert (row2.state, row2.version, row2.decided_by, row2.decision_reason) == (
        "rejected",
        3,
        "rob",
        "no consent",
    )
    assert (row2.submitted_at, row2.decided_at) == (utc(2025, 3, 4, 8), utc(2025, 3, 8, 8))

    row3, ev3 = got["EXT-3"]
    assert [(e.type, e.to_state) for e in ev3] == [("created", "draft"), ("cancelled", "cancelled")]
    assert (row3.state, row3.submitted_at, row3.decided_at, row3.state_since) == (
        "cancelled",
        None,
        None,
        utc(2025, 3, 11, 8),
    )

    # each state change records how long the request stayed in the state it left
    h = 3600.0
    assert [e.stay_seconds for e in ev1] == [None, 23 * h, 25 * h, 48 * h, 27.5 * h]
    assert [e.stay_seconds for e in ev2] == [None, 0.0, 96 * h]  # submitted on creation
    assert [e.stay_seconds for e in ev3] == [None, (ev3[1].at - ev3[0].at).total_seconds()]

    # imported histories carry on like any other: the next event follows the last one
    v = requests.act(
        c.db, actor=c.steward, request_id=row1.id, command="revoke", reason="r", at=utc(2026, 1, 1)
    )
    assert (v.state, v.version) == ("revoked", 6)
    after = by_external(c)["EXT-1"][1]
    assert [e.seq for e in after] == [1, 2, 3, 4, 5, 6]
    assert after[-1].stay_seconds == (utc(2026, 1, 1) - utc(2025, 3, 6, 12, 30)).total_seconds()

    # the reports see the original times
    table = reports.tracking_table(
        c.db, actor=c.steward, flt=RequestFilter(project=c.project), now=utc(2026, 1, 1)
    )
    i = [c.name for c in table.columns].index("total_duration")
    total = {r[0]: r[i] for r in table.rows}
    assert total[row1.id] == pytest.approx((4 * 24 + 4.5) * 3600, abs=0.01)
    assert total[row2.id] == pytest.approx(4 * 24 * 3600, abs=0.01)
    assert total[row3.id] is None


def test_reimporting_skips_existing_requests(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = tmp_path / "history.csv"
    shutil.copy(DATA / "history.csv", path)
    importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    after_first = counts(c)
    again = importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    assert (again.requests, again.events, again.skipped) == (0, 0, 3)
    assert counts(c) == after_first
    # the same histories in another format plus one new request: only the new one lands
    extra = tmp_path / "more.jsonl"
    extra.write_text(
        (DATA / "history.jsonl").read_text(encoding="utf-8")
        + json.dumps(
            {
                "request": "EXT-4",
                "state": "submitted",
                "at": "2025-04-01T10:00:00+00:00",
                "title": "New",
                "requester": "bea",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    more = importer.import_requests(c.db, actor=c.steward, project=c.project, path=extra)
    assert (more.requests, more.events, more.skipped) == (1, 2, 3)
    assert sorted(by_external(c)) == ["EXT-1", "EXT-2", "EXT-3", "EXT-4"]


def test_naive_timestamps_need_a_zone(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "draft", "2025-07-01T09:00:00", title="Naive", requester="ada"),
        row("R1", "submitted", "2025-07-01T12:00:00"),
        row("R2", "draft", "2025-07-02T09:00:00+00:00", title="Aware", requester="ada"),
    )
    err = refused(c, path)
    assert located(err.details) == [(2, "at"), (3, "at")]
    assert all("offset" in d.message for d in err.details)
    result = importer.import_requests(
        c.db,
        actor=c.steward,
        project=c.project,
        path=path,
        assume_tz=ZoneInfo("Europe/Helsinki"),
    )
    assert result.requests == 2
    got = by_external(c)
    # Helsinki is UTC+3 in July; timestamps with their own offset are left alone
    assert [e.at for e in got["R1"][1]] == [utc(2025, 7, 1, 6), utc(2025, 7, 1, 9)]
    assert [e.at for e in got["R2"][1]] == [utc(2025, 7, 2, 9)]


def test_unknown_users_are_refused_unless_asked_to_create_them(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "submitted", title="New people", requester="zed"),
        row("R1", "approved", "2025-03-02T09:00:00+00:00", actor="rita"),
        row("R2", "draft", title="Known", requester="ada"),
    )
    err = refused(c, path)
    assert [(d.value, d.field) for d in err.details] == [("zed", "user")]
    assert err.details[0].row == 2
    result = importer.import_requests(
        c.db, actor=c.steward, project=c.project, path=path, create_users=True
    )
    assert (result.requests, result.users_created) == (2, ["zed"])
    with c.db.transaction() as s:
        assert s.get(User, "zed") is not None
        assert s.get(Membership, (c.project, "zed", "requester")) is not None
    assert by_external(c)["R1"][0].state == "approved"


def test_awkward_text_survives_exactly(consortium: Consortium, tmp_path: Path) -> None:
    """Quotes, separators, line breaks, tabs, backslashes and non-Latin text, on both backends."""
    c = consortium
    title = 'Genomes, "deep" \\ wide — Ærø ☃ 測試'
    use = "Line one\nLine two, with a comma\tand a tab"
    reason = "needs \\N and \\t, literally; also ‘quotes’"
    path = tmp_path / "awkward.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        first = dict.fromkeys(COLUMNS, "")
        first.update(
            request="Ä-1",
            state="submitted",
            at="2025-05-01T10:00:00+00:00",
            title=title,
            requester="ada",
            intended_use=use,
        )
        w.writerow([first[k] for k in COLUMNS])  # spans two physical lines (2 and 3)
        second = dict.fromkeys(COLUMNS, "")
        second.update(
            request="Ä-1",
            state="returned",
            at="2025-05-02T10:00:00+00:00",
            actor="rita",
            reason=reason,
        )
        w.writerow([second[k] for k in COLUMNS])  # line 4
        third = dict(second, state="limbo", at="2025-05-03T10:00:00+00:00")
        w.writerow([third[k] for k in COLUMNS])  # line 5: a problem, named on its own line
    err = refused(c, path)
    assert [(d.row, d.field) for d in err.details] == [(5, "state")]
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.rindex("Ä-1")], encoding="utf-8")
    importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    row, evs = by_external(c)["Ä-1"]
    assert (row.title, row.intended_use, row.decision_reason) == (title, use, reason)
    assert evs[0].data["title"] == title
    assert evs[-1].data == {"reason": reason}


# ---- bad files: one test per kind of problem -----------------------------------------------


def test_non_utf8_bytes_name_the_line(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = tmp_path / "latin1.csv"
    text = "\n".join(
        [
            HEADER,
            row("R1", title="ok", requester="ada"),
            row("R2", title="Caf\xe9", requester="ada"),
        ]
    )
    path.write_bytes(text.encode("latin-1") + b"\n")
    err = refused(c, path, listed=False)
    assert "not UTF-8" in err.message
    assert [d.row for d in err.details] == [3]
    assert "0xe9" in err.details[0].message


def test_truncated_csv_last_row_short(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    full = (DATA / "history.csv").read_text(encoding="utf-8")
    path = tmp_path / "cut.csv"
    path.write_text(full.rstrip("\n")[:-12], encoding="utf-8")  # the last row is cut short
    err = refused(c, path)
    assert [d.row for d in err.details] == [10]
    assert "truncated" in err.details[0].message


def test_truncated_csv_unterminated_quote(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = tmp_path / "quote.csv"
    good = row("R1", title="fine", requester="ada")
    path.write_text(
        f'{HEADER}\n{good}\nR2,draft,2025-03-01T09:00:00Z,"Never clos', encoding="utf-8"
    )
    err = refused(c, path)
    assert [d.row for d in err.details] == [3]
    assert "truncated" in err.details[0].message


def test_truncated_jsonl_last_line(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    text = (DATA / "history.jsonl").read_text(encoding="utf-8")
    path = tmp_path / "cut.jsonl"
    path.write_text(text[: len(text) - 25], encoding="utf-8")
    err = refused(c, path)
    # the cut line is reported, and so is what losing it does to EXT-1's history (line 1)
    assert [d.row for d in err.details] == [1, 9]
    assert err.details[0].message == "request EXT-1 cannot go from returned to approved"
    assert "not valid JSON" in err.details[1].message
    assert "truncated" in err.details[1].message


def test_duplicate_rows(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    first = row("R1", title="t", requester="ada")
    again = row("R1", "submitted", "2025-03-01T10:00:00+00:00")
    same_instant = row("R1", "submitted", "2025-03-01T12:00:00+02:00")  # 10:00 UTC again
    path = csv_file(tmp_path, first, again, same_instant, first)
    err = refused(c, path)
    assert [(d.row, d.message) for d in err.details] == [
        (4, "duplicate of line 3"),
        (5, "duplicate of line 2"),
    ]


def test_unknown_columns(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = csv_file(
        tmp_path, row("R1", title="t", requester="ada") + ",red", header=HEADER + ",colour"
    )
    err = refused(c, path)
    assert located(err.details) == [(1, "header")]
    assert "colour" in err.details[0].message
    assert err.details[0].accepted == ", ".join(COLUMNS)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(
        json.dumps({"request": "R1", "state": "draft", "at": "2025-03-01T09:00:00Z", "x": 1})
        + "\n",
        encoding="utf-8",
    )
    err = refused(c, jsonl)
    assert [d.row for d in err.details] == [1]
    assert "unknown fields: x" in err.details[0].message


def test_missing_required_columns(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = csv_file(tmp_path, "R1,draft,t,ada", header="request,state,title,requester")
    err = refused(c, path)
    assert located(err.details) == [(1, "header")]
    assert "missing columns: at" in err.details[0].message
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(
        json.dumps({"request": "R1", "title": "t", "requester": "ada"}) + "\n", encoding="utf-8"
    )
    err = refused(c, jsonl)
    assert located(err.details) == [(1, "state"), (1, "at")]


def test_unknown_states(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", title="t", requester="ada"),
        row("R1", "pending", "2025-03-02T09:00:00+00:00"),
    )
    err = refused(c, path)
    assert [(d.row, d.field, d.value) for d in err.details] == [(3, "state", "pending")]
    assert "submitted" in (err.details[0].accepted or "")


def test_illegal_transitions(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", title="Straight to yes", requester="ada"),
        row("R1", "approved", "2025-03-02T09:00:00+00:00", actor="rita"),
        row("R2", "approved", title="Never drafted", requester="ada"),
        row("R3", "submitted", title="Twice", requester="ada"),
        row("R3", "submitted", "2025-03-02T09:00:00+00:00"),
        row("R4", "rejected", title="Reopened", requester="ada"),
    )
    err = refused(c, path)
    assert [(d.row, d.message) for d in err.details] == [
        (3, "request R1 cannot go from draft to approved"),
        (4, "request R2 cannot go from draft to approved"),
        (6, "request R3 cannot go from submitted to submitted"),
        (7, "request R4 cannot go from draft to rejected"),
    ]
    assert "submitted" in (err.details[0].accepted or "")


def test_malformed_duo_codes(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", title="t", requester="ada", duo="GRU;NOT-A-CODE"),
        row("R2", title="t", requester="ada", duo="DUO:0000999"),
    )
    err = refused(c, path)
    assert [(d.row, d.field, d.value, d.message) for d in err.details] == [
        (2, "duo_codes", "NOT-A-CODE", "malformed DUO code"),
        (3, "duo_codes", "DUO:0000999", "unknown DUO code"),
    ]


def test_every_problem_is_listed_in_one_error(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "limbo", title="t", requester="ada"),  # 2: unknown state
        row("R2", at="2025-03-01 09:00", title="t", requester="ada"),  # 3: naive time
        row("R3", title="t", requester="ada", duo="BAD"),  # 4: malformed DUO
        "R4,draft",  # 5: short row
        row("R5", title="t", requester="ada"),  # 6: fine
        row("R5", "approved", "2025-03-02T09:00:00+00:00"),  # 7: draft → approved
        row("R6", title="t", requester="ada"),  # 8
        row("R6", title="t", requester="ada"),  # 9: duplicate of 8
        row("R7", at="yesterday", title="t", requester="ada"),  # 10: not a time
        row("R8", "draft", ""),  # 11: no time at all
    )
    err = refused(c, path)
    assert [d.row for d in err.details] == [2, 3, 4, 5, 7, 9, 10, 11]
    assert located(err.details) == [
        (2, "state"),
        (3, "at"),
        (4, "duo_codes"),
        (5, None),
        (7, "state"),
        (9, None),
        (10, "at"),
        (11, "at"),
    ]
    assert "8 problem(s)" in err.message


def test_unknown_users_are_listed_with_the_other_problems(
    consortium: Consortium, tmp_path: Path
) -> None:
    """One error lists every problem: unknown users too, not only after the rest is fixed."""
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "limbo", title="t", requester="ada"),  # 2: unknown state
        row("R2", title="t", requester="zed"),  # 3: unknown requester
    )
    err = refused(c, path)
    assert [(d.row, d.field) for d in err.details] == [(2, "state"), (3, "user")]


def test_unknown_users_are_reported_on_their_own_line(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", title="t", requester="ada"),  # 2
        row("R1", "submitted", "2025-03-02T09:00:00+00:00"),  # 3
        row("R1", "approved", "2025-03-03T09:00:00+00:00", actor="yan"),  # 4: unknown actor
    )
    err = refused(c, path)
    assert [(d.row, d.value) for d in err.details] == [(4, "yan")]


def test_non_staff_cannot_import(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = tmp_path / "history.csv"
    shutil.copy(DATA / "history.csv", path)
    before = counts(c)
    for who in (c.requester, c.reviewer, c.viewer, c.outsider):
        # members may not; to an outsider the project does not exist
        with pytest.raises(Forbidden if who != c.outsider else NotFound):
            importer.import_requests(c.db, actor=who, project=c.project, path=path)
    assert counts(c) == before
    with c.db.transaction() as s:
        denied = [
            (a.actor, a.outcome) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert denied == [(who, "denied") for who in (c.requester, c.reviewer, c.viewer, c.outsider)]
