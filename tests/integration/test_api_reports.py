"""The reports through the API, over real HTTP on SQLite and PostgreSQL: the JSON rows are the
CLI's ``--json`` rows, the CSV body is the CLI's CSV export byte for byte, the XLSX opens with
openpyxl and holds the same rows; content negotiation (``Accept``, ``?format=``), filters,
who sees which rows, and every refusal as a problem document.

The reports run "now" at a fixed moment (the service's clock is set for the test, in the
process that serves and runs the CLI alike), so durations up to now are the same for both.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from steward.api.reports import MODELS, XLSX
from steward.domain.requests import RequestFields
from steward.services import reports, requests
from tests.api_calls import client, ok, problem, token
from tests.api_server import serving
from tests.conftest import CliResult, Consortium

Cli = Callable[..., CliResult]
T = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = T + timedelta(days=20)
NAMES = ["tracking", "changelog", "time-in-state", "sla"]
FIELDS = RequestFields('Study, "quoted"', "Uni", "Prof X", "Research", datasets=("raw/wgs",))


def at(days: float = 0, hours: float = 0) -> datetime:
    return T + timedelta(days=days, hours=hours)


@pytest.fixture
def story(consortium: Consortium, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Requests in every kind of state, at known times; the reports' clock stopped at NOW."""
    c = consortium
    monkeypatch.setattr(reports, "utcnow", lambda: NOW)
    ids: dict[str, str] = {}

    def new(name: str, who: str, when: datetime) -> None:
        ids[name] = requests.create(c.db, actor=who, project=c.project, fields=FIELDS, at=when).id

    def act(name: str, who: str, command: str, when: datetime, **kw: Any) -> None:
        requests.act(c.db, actor=who, request_id=ids[name], command=command, at=when, **kw)

    new("A", c.requester, at(0))
    act("A", c.requester, "submit", at(0, 1))
    act("A", c.reviewer, "return", at(1, 1), reason="which cohort?")
    act("A", c.requester, "resubmit", at(3, 1))
    act("A", c.reviewer, "approve", at(4, 1))
    new("B", c.requester2, at(1))
    act("B", c.requester2, "submit", at(2))
    act("B", c.reviewer2, "reject", at(2, 6), reason="no ethics approval")
    new("C", c.requester, at(2))
    act("C", c.requester, "cancel", at(3))
    new("D", c.requester, at(3))
    act("D", c.requester, "submit", at(5))  # waiting 15 days: over its SLA
    new("E", c.requester2, at(4))
    act("E", c.requester2, "submit", at(18))
    new("F", c.requester, at(5))  # a draft
    return ids


@pytest.fixture
def api(consortium: Consortium, story: dict[str, str]) -> Iterator[str]:
    with serving(consortium.db.settings) as url:
        yield url


def cli_json(cli: Cli, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.code == 0, (args, result.out, result.err)
    return json.loads(result.out)


def cli_file(cli: Cli, tmp_path: Path, name: str, fmt: str, *args: str) -> bytes:
    out = tmp_path / f"cli-{name}-{len(list(tmp_path.iterdir()))}.{fmt}"
    result = cli("report", name, "--format", fmt, "--output", str(out), *args)
    assert result.code == 0, (result.out, result.err)
    return out.read_bytes()


def sheet(content: bytes) -> list[tuple[Any, ...]]:
    book = load_workbook(io.BytesIO(content), read_only=True)
    rows = [tuple(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    return rows


@pytest.mark.parametrize("name", NAMES)
def test_json_rows_are_the_clis(consortium: Consortium, api: str, cli: Cli, name: str) -> None:
    c = consortium
    with client(api, token(c, c.steward, "read")) as http:
        r = http.get(f"/api/v1/reports/{name}")
        body = ok(r)
    assert r.headers["content-type"].startswith("application/json")
    assert "accept" in r.headers["vary"].lower()
    assert body["rows"] == cli_json(cli, "--as", c.steward, "report", name)
    assert body["rows"], name
    assert body["report"] == name
    assert body["timezone"] == "UTC"
    assert [col["name"] for col in body["columns"]] == list(body["rows"][0])
    assert [col["name"] for col in body["columns"]] == [
        col.machine_name for col in reports.COLUMNS[name]
    ]
    MODELS[name].model_validate(body)  # what the description promises


def test_json_values_are_the_stories(
    consortium: Consortium, api: str, story: dict[str, str]
) -> None:
    c = consortium
    with client(api, token(c, c.steward, "read")) as http:
        tracking = {r["request"]: r for r in ok(http.get("/api/v1/reports/tracking"))["rows"]}
        sla = ok(http.get("/api/v1/reports/sla"))["rows"]
    assert tracking[story["A"]]["total_duration_seconds"] == 4 * 86400
    assert tracking[story["B"]]["total_duration_seconds"] == 6 * 3600
    assert tracking[story["D"]]["total_duration_seconds"] == 15 * 86400  # up to NOW
    assert tracking[story["F"]]["total_duration_seconds"] is None
    assert tracking[story["A"]]["datasets"] == ["raw/wgs"]
    assert [(r["request"], r["state"], r["in_state_for_seconds"]) for r in sla] == [
        (story["D"], "submitted", 15 * 86400)
    ]


@pytest.mark.parametrize("name", NAMES)
def test_csv_is_the_clis_export_byte_for_byte(
    consortium: Consortium, api: str, cli: Cli, tmp_path: Path, name: str
) -> None:
    c = consortium
    expected = cli_file(cli, tmp_path, name, "csv", "--as", c.steward)
    with client(api, token(c, c.steward, "read")) as http:
        by_accept = http.get(f"/api/v1/reports/{name}", headers={"Accept": "text/csv"})
        by_format = http.get(f"/api/v1/reports/{name}", params={"format": "csv"})
    for r in (by_accept, by_format):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"] == f'attachment; filename="{name}.csv"'
        assert r.content == expected
        assert int(r.headers["content-length"]) == len(expected)
    header, *rows = list(csv.reader(io.StringIO(expected.decode())))
    assert header == [col.machine_name for col in reports.COLUMNS[name]]
    assert rows


def test_csv_with_filters_and_a_zone_is_the_clis(
    consortium: Consortium, api: str, cli: Cli, tmp_path: Path
) -> None:
    c = consortium
    given = [("state", "Submitted"), ("state", "approved"), ("created_from", "2026-01-05"),
             ("created_to", "2026-01-08"), ("tz", "Europe/Helsinki")]  # fmt: skip
    args = [part for name, value in given for part in (f"--{name.replace('_', '-')}", value)]
    params = [*given, ("format", "csv")]
    for name in ("tracking", "changelog"):
        expected = cli_file(cli, tmp_path, name, "csv", "--as", c.steward, *args)
        with client(api, token(c, c.steward, "read")) as http:
            r = http.get(f"/api/v1/reports/{name}", params=params)
        assert r.status_code == 200, r.text
        assert r.content == expected
        assert "+02:00" in r.text  # times in Helsinki (winter)
    with client(api, token(c, c.steward, "read")) as http:
        as_json = ok(http.get("/api/v1/reports/tracking", params=params[:-1]))
    assert as_json["timezone"] == "Europe/Helsinki"
    assert as_json["rows"] == cli_json(cli, "--as", c.steward, "report", "tracking", *args)
    assert {r["state"] for r in as_json["rows"]} == {"submitted", "approved"}


@pytest.mark.parametrize("name", ["tracking", "time-in-state"])
def test_xlsx_opens_and_holds_the_same_rows(
    consortium: Consortium, api: str, cli: Cli, tmp_path: Path, name: str
) -> None:
    c = consortium
    with client(api, token(c, c.steward, "read")) as http:
        by_accept = http.get(f"/api/v1/reports/{name}", headers={"Accept": XLSX})
        by_format = http.get(f"/api/v1/reports/{name}", params={"format": "xlsx"})
        as_json = ok(http.get(f"/api/v1/reports/{name}"))
    expected = sheet(cli_file(cli, tmp_path, name, "xlsx", "--as", c.steward))
    for r in (by_accept, by_format):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == XLSX
        assert r.headers["content-disposition"] == f'attachment; filename="{name}.xlsx"'
        got = sheet(r.content)
        assert got == expected
        assert list(got[0]) == [col["name"] for col in as_json["columns"]]
        assert len(got) == len(as_json["rows"]) + 1
        assert [row[0] for row in got[1:]] == [row[got[0][0]] for row in as_json["rows"]]


def test_what_accept_asks_for_is_answered(consortium: Consortium, api: str) -> None:
    c = consortium
    url = "/api/v1/reports/time-in-state"
    with client(api, token(c, c.steward, "read")) as http:

        def kind(accept: str, **params: str) -> str:
            r = http.get(url, headers={"Accept": accept}, params=params)
            assert r.status_code == 200, (accept, r.text)
            return r.headers["content-type"].split(";")[0]

        assert kind("*/*") == "application/json"
        assert kind("application/json, text/csv") == "application/json"
        assert kind("text/csv;q=0.5, application/json;q=0.9") == "application/json"
        assert kind(f"text/html, {XLSX};q=0.8, text/csv;q=0.3") == XLSX
        assert kind("text/*") == "text/csv"
        assert kind("text/csv", format="json") == "application/json"  # ?format= wins
        assert kind("application/pdf", format="csv") == "text/csv"
        refused = problem(http.get(url, headers={"Accept": "application/pdf"}), 406)
        assert refused["code"] == "not-acceptable"
        assert refused["errors"][0]["field"] == "Accept"
        for media in ("application/json", "text/csv", XLSX):
            assert media in refused["errors"][0]["accepted"]
        problem(http.get(url, headers={"Accept": "text/csv;q=0"}), 406)
        bad = problem(http.get(url, params={"format": "pdf"}), 422)
        assert bad["errors"][0]["field"] == "format"
        assert "csv" in bad["errors"][0]["message"]
        assert "xlsx" in bad["errors"][0]["message"]


def test_bad_filters_are_refused_naming_the_field(consortium: Consortium, api: str) -> None:
    c = consortium
    url = "/api/v1/reports/tracking"
    with client(api, token(c, c.steward, "read")) as http:

        def refused(params: Any, field: str, status: int = 422) -> dict[str, Any]:
            doc = problem(http.get(url, params=params), status)
            assert doc["errors"][0]["field"] == field, doc
            return doc

        refused({"created_from": "2024-13-01"}, "created_from")
        refused({"decided_to": "last week"}, "decided_to")
        refused({"created_to": "9999-12-31"}, "created_to")
        refused({"created_from": "2026-02-01", "created_to": "2026-01-01"}, "created")
        refused({"tz": "Mars/Olympus_Mons"}, "tz")
        refused({"state": "pending"}, "state")
        refused({"stat": "draft"}, "stat")
        refused({"project": "p1", "limit": "3"}, "limit")
        refused([("project", "p1"), ("project", "p2")], "project")
        refused({"project": "p9"}, "project", 404)
        assert ok(http.get(url, params={"created_from": "2026-01-05T10:00:00+02:00"}))["rows"]
    with client(api, None) as http:
        problem(http.get(url), 401)


def test_each_caller_sees_the_rows_the_cli_shows_them(
    consortium: Consortium, api: str, cli: Cli, story: dict[str, str]
) -> None:
    c = consortium
    with client(api, token(c, c.requester, "read")) as http:
        mine = ok(http.get("/api/v1/reports/tracking"))["rows"]
        changes = ok(http.get("/api/v1/reports/changelog"))["rows"]
    assert mine == cli_json(cli, "--as", c.requester, "report", "tracking")
    assert {r["request"] for r in mine} == {story[k] for k in "ACDF"}  # ada's own
    assert {r["requester"] for r in mine} == {c.requester}
    assert {r["request"] for r in changes} <= {story[k] for k in "ACDF"}
    with client(api, token(c, c.outsider, "read")) as http:
        assert ok(http.get("/api/v1/reports/tracking"))["rows"] == []
        hidden = problem(http.get("/api/v1/reports/sla", params={"project": "p1"}), 404)
        assert hidden["errors"][0]["field"] == "project"
    outsider = cli("--as", c.outsider, "report", "sla", "--project", "p1", "--json")
    assert json.loads(outsider.out)["status"] == 404
