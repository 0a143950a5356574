"""Reading the audit log: the service, the command line and the API over real HTTP, on SQLite
and PostgreSQL. Administrators read every entry, stewards their projects' entries, anyone
else is refused (and that refusal is an entry); filters combine; pages follow a keyset cursor;
bad filters are refused with what is accepted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from steward.db.models import AuditEntry
from steward.db.session import Database
from steward.errors import Forbidden, NotFound, ValidationFailed
from steward.services import access, audit, catalog, sites, tokens
from tests.api_server import serving
from tests.conftest import CliResult, Consortium
from tests.integration.test_sites import curl_lines, run_curl

PROBLEM = "application/problem+json"
Cli = Callable[..., CliResult]
JAN, FEB, MAR = (datetime(2026, m, 1, 12, tzinfo=UTC) for m in (1, 2, 3))


@pytest.fixture
def log(consortium: Consortium) -> Consortium:
    """Refusals in p1 (ada) and p2 (rob), a token made (no project); pia stewards p2."""
    c = consortium
    db = c.db
    access.add_user(db, actor="admin", user_id="pia")
    access.create_project(db, actor="admin", project_id="p2")
    access.add_member(db, actor="admin", project_id="p2", user_id="pia", role="steward")
    with pytest.raises(Forbidden):
        catalog.add_requirement(db, actor="ada", project="p1", name="Mine", kind="controlled")
    with pytest.raises(NotFound):  # rob is not in p2: to him it does not exist
        catalog.add_requirement(db, actor="rob", project="p2", name="Mine", kind="controlled")
    tokens.create(db, actor="sam", scope="read", expires_in=timedelta(hours=1), name="ci")
    return c


def _add(
    db: Database,
    at: datetime,
    actor: str = "x",
    project: str | None = "p1",
    action: str = "probe",
    outcome: str = "denied",
) -> int:
    with db.transaction() as s:
        row = AuditEntry(
            at=at,
            actor=actor,
            project_id=project,
            subject_kind="request",
            subject_id="req_1",
            action=action,
            outcome=outcome,
            reason="test",
        )
        s.add(row)
        s.flush()
        return row.id


def _all(db: Database, actor: str, **filters: Any) -> list[audit.AuditView]:
    return audit.query(db, actor=actor, limit=500, **filters).items


# ---- the service -----------------------------------------------------------------------------
def test_administrators_read_every_entry_newest_first_and_filters_combine(log: Consortium) -> None:
    db = log.db
    entries = _all(db, "admin")
    assert [(e.actor, e.action, e.outcome, e.project) for e in entries] == [
        ("sam", "token-create", "done", None),
        ("rob", "add-requirement", "denied", "p2"),
        ("ada", "add-requirement", "denied", "p1"),
    ]
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    assert "ada may not change access requirements of p1" in entries[2].reason
    assert [e.actor for e in _all(db, "admin", who="ada")] == ["ada"]
    assert [e.actor for e in _all(db, "admin", outcome="denied")] == ["rob", "ada"]
    assert [e.actor for e in _all(db, "admin", outcome="done")] == ["sam"]
    assert [e.actor for e in _all(db, "admin", project="p2")] == ["rob"]
    assert [e.actor for e in _all(db, "admin", action="token-create")] == ["sam"]
    token_id = entries[0].subject_id
    assert token_id is not None
    by_subject = _all(db, "admin", subject_kind="api_token", subject_id=token_id)
    assert [e.action for e in by_subject] == ["token-create"]
    assert _all(db, "admin", who="ada", outcome="done") == []
    assert _all(db, "admin", who="ada", project="p2") == []


def test_stewards_read_their_projects_and_everyone_else_is_refused(log: Consortium) -> None:
    db = log.db
    assert [e.actor for e in _all(db, "sam")] == ["ada"]  # p1 only: no token, no p2
    assert [e.actor for e in _all(db, "pia")] == ["rob"]
    assert [e.actor for e in _all(db, "sam", project="p1")] == ["ada"]
    with pytest.raises(NotFound) as other:
        audit.query(db, actor="sam", project="p2")  # not his: as if it did not exist
    assert other.value.message == "no project 'p2'"
    with pytest.raises(Forbidden) as reviewer:
        audit.query(db, actor="rita")
    assert "only administrators and the stewards of a project" in reviewer.value.message
    with pytest.raises(Forbidden):
        audit.query(db, actor="rita", project="p1")  # a member, but no steward
    with pytest.raises(Forbidden):
        audit.query(db, actor="olga")
    with pytest.raises(NotFound):
        audit.query(db, actor="admin", project="nope")
    with access.without_admin():  # an administrator's narrow token: a steward (of p1, p2)
        assert [(e.actor, e.project) for e in _all(db, "admin")] == [
            ("rita", "p1"),
            ("rob", "p2"),
            ("ada", "p1"),
        ]
    reads = _all(db, "admin", action="audit-read")
    assert [(e.actor, e.outcome, e.project) for e in reads] == [
        ("olga", "denied", None),
        ("rita", "denied", "p1"),
        ("rita", "denied", None),
    ]


def test_pages_follow_a_keyset_cursor_and_new_entries_do_not_shift_them(log: Consortium) -> None:
    db = log.db
    ids = [_add(db, FEB, action="page") for _ in range(7)]
    first = audit.query(db, actor="admin", action="page", limit=3)
    assert [e.id for e in first.items] == ids[::-1][:3]
    assert first.next is not None
    _add(db, FEB, action="page")  # written while someone pages: on no later page
    seen = [e.id for e in first.items]
    cursor: str | None = first.next
    while cursor is not None:
        page = audit.query(db, actor="admin", action="page", limit=3, after=cursor)
        seen += [e.id for e in page.items]
        cursor = page.next
    assert seen == ids[::-1]
    for bad in ("zzz", "a-1", "a", "a1.5", "1", "a" + "9" * 30):
        with pytest.raises(ValidationFailed) as caught:
            audit.query(db, actor="admin", after=bad)
        assert caught.value.details[0].field == "after"


def test_time_ranges_and_bad_filters(log: Consortium) -> None:
    db = log.db
    jan, feb, mar = (_add(db, at, action="dated") for at in (JAN, FEB, MAR))
    dated = {"action": "dated"}
    assert [e.id for e in _all(db, "admin", since=FEB, **dated)] == [mar, feb]
    assert [e.id for e in _all(db, "admin", until=MAR, **dated)] == [feb, jan]  # exclusive
    assert [e.id for e in _all(db, "admin", since=FEB, until=MAR, **dated)] == [feb]
    helsinki = FEB.astimezone(ZoneInfo("Europe/Helsinki"))  # the same instant, another zone
    assert [e.id for e in _all(db, "admin", since=helsinki, **dated)] == [mar, feb]
    with pytest.raises(ValidationFailed) as backwards:
        audit.query(db, actor="admin", since=MAR, until=FEB)
    assert [(d.field, d.message) for d in backwards.value.details] == [("until", "not after since")]
    with pytest.raises(ValidationFailed):
        audit.query(db, actor="admin", since=FEB, until=FEB)
    with pytest.raises(ValidationFailed) as naive:
        audit.query(db, actor="admin", since=datetime(2026, 2, 1))
    assert naive.value.details[0].field == "since"
    before_year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    with pytest.raises(ValidationFailed) as overflow:
        audit.query(db, actor="admin", since=before_year_one)
    assert [(d.field, d.message) for d in overflow.value.details] == [("since", "out of range")]
    with pytest.raises(ValidationFailed) as many:
        audit.query(db, actor="admin", outcome="maybe", limit=0)
    assert [d.field for d in many.value.details] == ["outcome", "limit"]  # every problem
    assert many.value.details[0].accepted == "done, denied"
    with pytest.raises(ValidationFailed):
        audit.query(db, actor="admin", limit=501)


def test_site_changes_are_in_the_log_for_administrators(log: Consortium) -> None:
    db = log.db
    sites.add_site(db, actor="admin", site_id="fin", name="Finnish Biobank")
    sites.add_member(db, actor="admin", site_id="fin", user_id="rita")
    about = _all(db, "admin", subject_kind="site", subject_id="fin")
    assert [e.action for e in about] == ["site-member-add", "site-add"]
    assert [e.actor for e in _all(db, "sam")] == ["ada"]  # no project: not a steward's


# ---- the command line ---------------------------------------------------------------------
def test_the_audit_command(log: Consortium, cli: Cli) -> None:
    db = log.db
    _add(db, JAN, actor="zed", action="dated")
    _add(db, FEB, actor="zed", action="dated")
    _add(db, MAR, actor="zed", action="dated")
    everything = json.loads(cli("--as", "admin", "--json", "audit").out)
    assert len(everything) == 6
    assert [e["actor"] for e in everything] == ["zed", "zed", "zed", "sam", "rob", "ada"]
    assert everything[0]["at"].startswith("2026-03-01T12:00")  # newest (written last) first
    assert set(everything[0]) == {
        "id",
        "at",
        "actor",
        "action",
        "outcome",
        "project",
        "subject_kind",
        "subject_id",
        "reason",
    }
    denied = json.loads(
        cli("--as", "admin", "--json", "audit", "--outcome", "denied", "--who", "ada").out
    )
    assert [(e["actor"], e["project"]) for e in denied] == [("ada", "p1")]
    two = json.loads(cli("--as", "admin", "--json", "audit", "--limit", "2").out)
    assert [e["id"] for e in two] == [e["id"] for e in everything[:2]]
    february = cli(
        "--as",
        "admin",
        "--tz",
        "UTC",
        "--json",
        "audit",
        "--who",
        "zed",
        "--since",
        "2026-02-01",
        "--until",
        "2026-02-01",
    )
    assert [e["at"][:10] for e in json.loads(february.out)] == ["2026-02-01"]  # whole day
    later = cli("--as", "admin", "--json", "audit", "--who", "zed", "--since", "2026-02-01T13:00Z")
    assert [e["at"][:7] for e in json.loads(later.out)] == ["2026-03"]
    p2 = json.loads(cli("--as", "pia", "--json", "audit", "--project", "p2").out)
    assert [e["actor"] for e in p2] == ["rob"]
    subject = json.loads(
        cli(
            "--as",
            "admin",
            "--json",
            "audit",
            "--subject",
            "req_1",
            "--subject-kind",
            "request",
            "--action",
            "dated",
        ).out
    )
    assert len(subject) == 3
    table = cli("--as", "admin", "audit", "--who", "ada")
    assert table.code == 0, table.err
    assert "audit log" in table.out
    assert "add-requirement" in table.out
    assert "ada may not change access requirements of p1" in table.out


def test_audit_command_refusals(log: Consortium, cli: Cli) -> None:
    forbidden = cli("--as", "rita", "audit")
    assert forbidden.code == 1
    assert "only administrators and the stewards of a project" in forbidden.err
    as_json = cli("--as", "rita", "--json", "audit")
    assert json.loads(as_json.out)["code"] == "forbidden"  # only JSON on stdout
    backwards = cli("--as", "admin", "audit", "--since", "2026-03-01", "--until", "2026-02-01")
    assert backwards.code == 2
    assert "not after since" in backwards.err
    not_a_date = cli("--as", "admin", "--json", "audit", "--since", "yesterday")
    assert not_a_date.code == 2
    assert json.loads(not_a_date.out)["errors"][0]["field"] == "since"
    outcome = cli("--as", "admin", "audit", "--outcome", "maybe")
    assert outcome.code == 2
    assert "done, denied" in outcome.err
    assert cli("--as", "admin", "audit", "--limit", "-1").code == 2
    early = cli("--as", "admin", "--tz", "Asia/Tokyo", "audit", "--since", "0001-01-01")
    assert early.code == 2
    assert "out of range" in early.err
    other = cli("--as", "sam", "audit", "--project", "p2")
    assert other.code == 1
    assert "no project 'p2'" in other.err
    for result in (forbidden, backwards, outcome, other):
        assert "Traceback" not in result.err + result.out


# ---- the API ------------------------------------------------------------------------------
@pytest.fixture
def api(log: Consortium) -> Iterator[str]:
    with serving(log.db.settings) as url:
        yield url


def _client(db: Database, api: str, user: str, scope: str) -> httpx.Client:
    secret = tokens.create(db, actor=user, scope=scope, expires_in=timedelta(hours=1)).secret
    return httpx.Client(base_url=api, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    return body


def test_the_audit_log_over_http(log: Consortium, api: str) -> None:
    db = log.db
    for _ in range(5):
        _add(db, FEB, action="page")
    admin = _client(db, api, "admin", "admin")
    sam = _client(db, api, "sam", "read")
    with admin, sam:
        everything = admin.get("/api/v1/audit", params={"limit": 500}).json()
        assert everything["next"] is None
        # the fixture's three, five pages' worth, and the tokens made for this test
        assert len(everything["items"]) == 3 + 5 + 2
        seen: list[int] = []
        url: str | None = "/api/v1/audit?limit=3"
        while url is not None:
            answer = admin.get(url)
            assert answer.status_code == 200, answer.text
            seen += [e["id"] for e in answer.json()["items"]]
            url = answer.json()["next"]
            if url is not None:
                assert parse_qs(urlsplit(url).query)["limit"] == ["3"]
        assert seen == [e["id"] for e in everything["items"]]
        mine = sam.get("/api/v1/audit").json()["items"]
        assert {e["project"] for e in mine} == {"p1"}
        assert "ada" in {e["actor"] for e in mine}
        narrowed = admin.get("/api/v1/audit", params={"outcome": "denied", "who": "rob"})
        assert [(e["actor"], e["project"]) for e in narrowed.json()["items"]] == [("rob", "p2")]
        dated = admin.get(
            "/api/v1/audit",
            params={
                "action": "page",
                "since": "2026-01-15T00:00:00Z",
                "until": "2026-02-15T00:00:00+02:00",
            },
        )
        assert len(dated.json()["items"]) == 5


def test_audit_refusals_over_http(log: Consortium, api: str) -> None:
    db = log.db
    admin = _client(db, api, "admin", "admin")
    sam = _client(db, api, "sam", "read")
    rita = _client(db, api, "rita", "write")
    with admin, sam, rita:
        assert _problem(rita.get("/api/v1/audit"), 403)["code"] == "forbidden"
        assert _problem(sam.get("/api/v1/audit", params={"project": "p2"}), 404)["detail"] == (
            "no project 'p2'"
        )
        typo = _problem(admin.get("/api/v1/audit", params={"outcom": "denied"}), 422)
        assert typo["errors"][0]["field"] == "outcom"
        twice = _problem(admin.get("/api/v1/audit?who=a&who=b"), 422)
        assert twice["errors"][0]["field"] == "who"
        _problem(admin.get("/api/v1/audit", params={"outcome": "maybe"}), 422)
        backwards = _problem(
            admin.get(
                "/api/v1/audit",
                params={"since": "2026-03-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"},
            ),
            422,
        )
        assert backwards["errors"][0]["field"] == "until"
        naive = _problem(admin.get("/api/v1/audit", params={"since": "2026-03-01T00:00"}), 422)
        assert naive["errors"][0]["field"] == "since"
        early = admin.get("/api/v1/audit", params={"since": "0001-01-01T00:00:00+05:00"})
        assert _problem(early, 422)["errors"][0]["field"] == "since"
        _problem(admin.get("/api/v1/audit", params={"after": "nonsense"}), 422)
        _problem(admin.get("/api/v1/audit", params={"limit": "0"}), 422)
        _problem(admin.get("/api/v1/audit", params={"limit": "501"}), 422)
    denied = _all(db, "admin", action="audit-read")
    assert [e.actor for e in denied] == ["rita"]


def test_the_audit_curl_lines_in_the_docs_run_as_written(log: Consortium, api: str) -> None:
    db = log.db
    access.create_project(db, actor="admin", project_id="1kd")
    access.add_member(db, actor="admin", project_id="1kd", user_id="sam", role="steward")
    with pytest.raises(NotFound):  # ada is not in 1kd: to her it does not exist
        catalog.add_requirement(db, actor="ada", project="1kd", name="X", kind="controlled")
    sites.add_site(db, actor="admin", site_id="fin-biobank", name="Finnish Biobank")
    env = {
        "ADMIN_TOKEN": tokens.create(
            db, actor="admin", scope="admin", expires_in=timedelta(hours=1)
        ).secret,
        "TOKEN": tokens.create(db, actor="sam", scope="read", expires_in=timedelta(hours=1)).secret,
    }
    lines = curl_lines("## The audit log")
    assert len(lines) == 3
    denied, about_site, project = run_curl(lines, api, env)
    assert {e["outcome"] for e in denied["items"]} == {"denied"}
    assert len(denied["items"]) == 3
    assert [e["action"] for e in about_site["items"]] == ["site-add"]
    assert [(e["actor"], e["project"]) for e in project["items"]] == [("ada", "1kd")]
