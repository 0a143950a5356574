"""Imports judged like live commands, and refused before either database would refuse them.

Every test runs on SQLite and on PostgreSQL (the ``consortium`` fixture is parametrised over
both): a value one backend accepts and the other refuses must be refused by both, before
anything is written, with its line and field named.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from steward.config import Settings
from steward.db.models import AccessRequest, Event, User
from steward.errors import ConfigurationError, ValidationFailed
from steward.services import import_limits, importer
from tests.conftest import Consortium
from tests.integration.test_import import by_external, counts, csv_file, refused, row


def where(err: ValidationFailed) -> list[tuple[int | None, str | None]]:
    return [(d.row, d.field) for d in err.details]


def rules(err: ValidationFailed) -> list[str]:
    """The rule each refusal names, in order."""
    return [d.message.rsplit("(rule: ", 1)[-1].rstrip(")") for d in err.details]


def jsonl(tmp_path: Path, *objects: dict[str, Any], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return path


def first(request: str = "R1", **values: Any) -> dict[str, Any]:
    out = {
        "request": request,
        "state": "submitted",
        "at": "2025-03-01T09:00:00+00:00",
        "title": "t",
        "requester": "ada",
    }
    out.update(values)
    return out


# ---- item 5: the workflow's rules ------------------------------------------------------------


def test_imported_history_breaking_the_workflows_rules_is_refused_rule_by_rule(
    consortium: Consortium, tmp_path: Path
) -> None:
    """Every refusal is listed at once, each naming its line and rule; nothing is written."""
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "submitted", title="Own approval", requester="ada"),  # 2
        row("R1", "approved", "2025-03-02T09:00:00+00:00", actor="ada"),  # 3: requester role
        row("R2", "submitted", title="Staff's own", requester="sam"),  # 4
        row("R2", "approved", "2025-03-02T09:00:00+00:00", actor="sam"),  # 5: not own
        row("R3", "submitted", title="Viewer decides", requester="ada"),  # 6
        row("R3", "approved", "2025-03-02T09:00:00+00:00", actor="vic"),  # 7: viewer
        row("R4", "submitted", title="Outsider reviews", requester="ada", reviewer="olga"),  # 8
        row("R5", "submitted", title="No reason", requester="bea"),  # 9
        row("R5", "rejected", "2025-03-02T09:00:00+00:00", actor="rita"),  # 10: no reason
        row("R6", "submitted", title="Assigned", requester="ada", reviewer="rita"),  # 11
        row("R6", "approved", "2025-03-02T09:00:00+00:00", actor="rob"),  # 12: not assigned
        row("R7", "draft", title="Not mine", requester="bea", actor="ada"),  # 13: on behalf
        row("R8", "draft", title="For a viewer", requester="vic", actor="sam"),  # 14
        row("R9", "draft", title="Outsider files", requester="olga"),  # 15: not a member
        row("R10", "submitted", title="Cancelled by another", requester="ada"),  # 16
        row("R10", "cancelled", "2025-03-02T09:00:00+00:00", actor="bea"),  # 17: not hers
        row("R11", "submitted", title="Returned", requester="ada"),  # 18
        row("R11", "returned", "2025-03-02T09:00:00+00:00", actor="rita"),  # 19: no reason
        row("R11", "submitted", "2025-03-03T09:00:00+00:00", actor="vic"),  # 20: viewer
    )
    err = refused(c, path)
    assert where(err) == [
        (3, "actor"),
        (5, "actor"),
        (7, "actor"),
        (8, "reviewer"),
        (10, "reason"),
        (12, "actor"),
        (13, "actor"),
        (14, "requester"),
        (15, "actor"),
        (17, "actor"),
        (19, "reason"),
        (20, "actor"),
    ]
    assert rules(err) == [
        "roles",
        "not_own",
        "roles",
        "reviewer role",
        "reason required",
        "assigned_reviewer",
        "staff only",
        "requester role",
        "roles",
        "own_or_staff",
        "reason required",
        "roles",
    ]
    assert "nobody may decide on their own request" in err.details[1].message
    assert err.details[0].value == "ada"
    assert err.details[0].accepted == "admin, reviewer, steward"
    assert "12 problem(s)" in err.message
    assert by_external(c) == {}


def test_the_same_history_within_the_rules_is_imported(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "submitted", title="Fine", requester="ada", reviewer="rita"),
        row("R1", "approved", "2025-03-02T09:00:00+00:00", actor="rita"),
        row("R2", "submitted", title="Staff decides", requester="bea", reviewer="rita"),
        row("R2", "rejected", "2025-03-02T09:00:00+00:00", actor="sam", reason="no consent"),
        row("R3", "draft", title="Filed by staff", requester="bea", actor="sam"),
        row("R3", "submitted", "2025-03-02T09:00:00+00:00", actor="bea"),
        row("R3", "returned", "2025-03-03T09:00:00+00:00", actor="rob", reason="more"),
    )
    result = importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    assert (result.requests, result.events) == (3, 9)
    got = by_external(c)
    assert [(r.state, r.decided_by) for r, _ in (got["R1"], got["R2"], got["R3"])] == [
        ("approved", "rita"),
        ("rejected", "sam"),
        ("returned", None),
    ]


def test_create_users_relaxes_only_that_users_exist(consortium: Consortium, tmp_path: Path) -> None:
    """Created users may file requests (they become requesters, as documented) but hold no
    other role: one who approves is refused like any member without the role."""
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "submitted", title="New requester", requester="zed"),  # 2: fine
        row("R1", "approved", "2025-03-02T09:00:00+00:00", actor="yan"),  # 3: a new approver
    )
    err = refused(c, path)
    assert [(d.row, d.value) for d in err.details] == [(2, "zed"), (3, "yan")]
    before = counts(c)
    with pytest.raises(ValidationFailed) as again:
        importer.import_requests(
            c.db, actor=c.steward, project=c.project, path=path, create_users=True
        )
    assert counts(c) == before
    assert where(again.value) == [(3, "actor")]
    assert rules(again.value) == ["roles"]


def test_existing_non_members_do_not_become_requesters_by_import(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    path = csv_file(tmp_path, row("R1", "draft", title="Mine now?", requester="olga"))
    err = refused(c, path)
    assert where(err) == [(2, "actor")]
    assert "olga may not create" in err.details[0].message


def test_already_imported_requests_are_not_judged_again(
    consortium: Consortium, tmp_path: Path
) -> None:
    """A re-import skips requests already there, even if their reviewer has since left."""
    from sqlalchemy import delete

    from steward.db.models import Membership

    c = consortium
    path = csv_file(tmp_path, row("R1", "submitted", title="t", requester="ada", reviewer="rob"))
    importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    with c.db.transaction() as s:
        s.execute(delete(Membership).where(Membership.user_id == "rob"))
    again = importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    assert (again.requests, again.skipped) == (0, 1)


# ---- item 4: what either database would refuse -----------------------------------------------


def test_limits_are_read_from_the_models() -> None:
    r, e, u = AccessRequest.__table__.c, Event.__table__.c, User.__table__.c
    limits = import_limits.MAX_LENGTH
    assert limits["request"] == r.external_id.type.length
    assert limits["title"] == r.title.type.length
    assert limits["institution"] == r.institution.type.length
    assert limits["actor"] == min(e.actor.type.length, u.id.type.length)
    assert limits["requester"] == u.id.type.length
    assert e.idempotency_key.type.length == import_limits.KEY_LENGTH
    assert "intended_use" not in limits  # TEXT: no limit
    assert "reason" not in limits


def test_values_either_database_would_refuse_are_named_by_line_and_field(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    key_room = import_limits.KEY_LENGTH - len("import:p1::2")
    path = jsonl(
        tmp_path,
        first("R1", title="nul \x00 inside"),  # 1
        first("R2", reason="why\x00"),  # 2
        first("R3", datasets=["raw/wgs", "raw\x00wgs"]),  # 3
        first("X" * 500),  # 4: longer than the external id column
        first("Y" * (key_room + 1)),  # 5: fits the column, not the ledger's keys
        first("R6", title="T" * 201),  # 6
        first("R7", institution="I" * 301),  # 7
        first("R8", requester="u" * 65),  # 8
        first("R9", at="1969-12-31T23:59:59Z"),  # 9: before the ids' epoch
        first("R10", at="0001-01-01T00:00:00+01:00"),  # 10: not representable in UTC
        first("R11", intended_use="\ud800 lone half"),  # 11: not a character
    )
    err = refused(c, path)
    assert where(err) == [
        (1, "title"),
        (2, "reason"),
        (3, "datasets"),
        (4, "request"),
        (5, "request"),
        (6, "title"),
        (7, "institution"),
        (8, "requester"),
        (9, "at"),
        (10, "at"),
        (11, "intended_use"),
    ]
    by_row = {d.row: d for d in err.details}
    assert "NUL" in by_row[1].message
    assert by_row[4].message == "too long: 500 characters"
    assert by_row[4].accepted == "at most 200 characters"
    assert by_row[5].accepted == f"at most {key_room} characters"
    assert by_row[8].accepted == "at most 64 characters"
    assert "1970" in (by_row[9].accepted or "")
    assert "out of the range" in by_row[10].message
    assert "surrogate" in by_row[11].message


def test_values_at_the_limits_are_stored_by_both_databases(
    consortium: Consortium, tmp_path: Path
) -> None:
    """The checks are not stricter than the databases: the longest values that fit, fit."""
    c = consortium
    key_room = import_limits.KEY_LENGTH - len("import:p1::2")
    ext = "E" * key_room
    long_user = "u" * 64
    path = jsonl(
        tmp_path,
        first(
            ext,
            title="T" * 200,
            institution="I" * 300,
            project_lead="L" * 200,
            intended_use="U" * 5000,
            requester=long_user,
            at="1970-01-01T00:00:00Z",
            duo_codes=["GRU"],
        ),
    )
    result = importer.import_requests(
        c.db, actor=c.steward, project=c.project, path=path, create_users=True
    )
    assert (result.requests, result.events, result.users_created) == (1, 2, [long_user])
    stored, events = by_external(c)[ext]
    assert (len(stored.title), len(stored.institution), stored.requester) == (200, 300, long_user)
    assert events[0].at == datetime(1970, 1, 1, tzinfo=UTC)


# ---- item 3: nothing from the future -----------------------------------------------------------


def test_rows_dated_in_the_future_are_refused_with_their_line(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    soon = datetime.now(UTC) + timedelta(hours=1)
    path = csv_file(
        tmp_path,
        row("R1", "submitted", title="t", requester="ada"),
        row("R1", "returned", soon.isoformat(), actor="rita", reason="r"),
    )
    err = refused(c, path)
    assert where(err) == [(3, "at")]
    assert "in the future" in err.details[0].message
    assert "import_clock_skew" in err.details[0].message


def test_the_clock_skew_tolerance_is_a_setting(
    consortium: Consortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 s ahead is within the default tolerance (another machine's clock may run ahead),
    refused once the tolerance is smaller, by argument or by setting."""
    c = consortium
    ahead = (datetime.now(UTC) + timedelta(seconds=40)).isoformat()
    path = csv_file(tmp_path, row("R1", "submitted", ahead, title="t", requester="ada"))
    with pytest.raises(ValidationFailed) as err:
        importer.import_requests(
            c.db, actor=c.steward, project=c.project, path=path, clock_skew=timedelta(seconds=5)
        )
    assert where(err.value) == [(2, "at")]
    monkeypatch.setenv("STEWARD_IMPORT_CLOCK_SKEW", "10s")
    assert Settings().import_clock_skew == "10s"
    c.db.settings = Settings(home=c.db.settings.home, database_url=c.db.settings.database_url)
    with pytest.raises(ValidationFailed):
        importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    monkeypatch.delenv("STEWARD_IMPORT_CLOCK_SKEW")
    c.db.settings = Settings(home=c.db.settings.home, database_url=c.db.settings.database_url)
    result = importer.import_requests(c.db, actor=c.steward, project=c.project, path=path)
    assert result.requests == 1


def test_a_bad_clock_skew_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from steward.config import load_settings

    monkeypatch.setenv("STEWARD_IMPORT_CLOCK_SKEW", "soon")
    with pytest.raises(ConfigurationError) as err:
        load_settings()
    assert err.value.details[0].field == "STEWARD_IMPORT_CLOCK_SKEW"


# ---- item 15: messages -----------------------------------------------------------------------


def test_ambiguous_and_missing_local_times_are_refused_with_assume_tz(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "draft", "2025-03-30T03:30:00", title="gap", requester="ada"),  # skipped hour
        row("R2", "draft", "2025-10-26T03:30:00", title="twice", requester="ada"),  # repeated
        row("R3", "draft", "2025-10-26T05:30:00", title="fine", requester="ada"),
    )
    before = counts(c)
    with pytest.raises(ValidationFailed) as err:
        importer.import_requests(
            c.db,
            actor=c.steward,
            project=c.project,
            path=path,
            assume_tz=ZoneInfo("Europe/Helsinki"),
        )
    assert counts(c) == before
    assert where(err.value) == [(2, "at"), (3, "at")]
    assert "did not exist in Europe/Helsinki" in err.value.details[0].message
    assert "happened twice in Europe/Helsinki" in err.value.details[1].message


def test_unknown_file_types_list_every_accepted_one(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = tmp_path / "history.xlsx"
    path.write_bytes(b"PK")
    err = refused(c, path, listed=False)
    accepted = err.details[0].accepted or ""
    for ext in (".csv", ".tsv", ".txt", ".jsonl", ".ndjson", ".json"):
        assert ext in accepted


def test_broken_json_says_where_once(consortium: Consortium, tmp_path: Path) -> None:
    c = consortium
    path = tmp_path / "in.jsonl"
    path.write_text('{"request": "R1", "state": "dra\n', encoding="utf-8")
    err = refused(c, path)
    assert "at at" not in err.details[0].message
    assert "Unterminated string starting at column" in err.details[0].message


def test_users_the_import_creates_need_names_user_add_accepts(
    consortium: Consortium, tmp_path: Path
) -> None:
    c = consortium
    path = csv_file(
        tmp_path,
        row("R1", "draft", title="t", requester="Zed Smith"),  # 2
        row("R2", "draft", title="t", requester="nina"),  # 3: fine
    )
    before = counts(c)
    with pytest.raises(ValidationFailed) as err:
        importer.import_requests(
            c.db, actor=c.steward, project=c.project, path=path, create_users=True
        )
    assert counts(c) == before
    assert [(d.row, d.field, d.value) for d in err.value.details] == [(2, "user", "Zed Smith")]
    assert "cannot create user 'Zed Smith'" in err.value.details[0].message
    assert "lower-case" in (err.value.details[0].accepted or "")


def test_json_values_that_are_not_text_are_refused(consortium: Consortium, tmp_path: Path) -> None:
    """str() of an object or a list would store Python's repr as the title; numbers are ids."""
    c = consortium
    path = jsonl(
        tmp_path,
        first("R1", title={"en": "t"}),  # 1
        first("R2", reviewer=["rita"]),  # 2
        first("R3", institution=True),  # 3
        first(101),  # 4: a numeric id is fine
    )
    err = refused(c, path)
    assert [(d.row, d.field, d.message) for d in err.details] == [
        (1, "title", "must be text, not dict"),
        (2, "reviewer", "must be text, not list"),
        (3, "institution", "must be text, not bool"),
    ]
