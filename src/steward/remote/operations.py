"""The queue, the audit log and the reports through a server's API, as their services answer
them locally."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

from steward.jobs import service as jobs
from steward.jobs.service import ActionView
from steward.remote.calls import remote_of
from steward.remote.client import Client
from steward.remote.subjects import filter_params
from steward.services import audit
from steward.services import reports as svc
from steward.services.audit import AuditPage, AuditView
from steward.services.kinds import Filter
from steward.tables import Table

V1 = "/api/v1"


# ---- jobs -----------------------------------------------------------------------------------
@remote_of(jobs.list_actions)
def list_actions(
    client: Client, *, states: Sequence[str] = (), subject: str | None = None,
    limit: int | None = None,
) -> list[ActionView]:  # fmt: skip
    params = [("state", s) for s in states] + ([("subject", subject)] if subject else [])
    params.append(("limit", str(min(limit or 500, 500))))
    return [ActionView.model_validate(a) for a in client.call("GET", f"{V1}/jobs", params=params)]


def _job(client: Client, action_id: str, command: str = "") -> ActionView:
    path = f"{V1}/jobs/{quote(action_id, safe='')}" + (f":{command}" if command else "")
    return ActionView.model_validate(client.call("POST" if command else "GET", path))


@remote_of(jobs.get)
def get_action(client: Client, *, action_id: str) -> ActionView:
    return _job(client, action_id)


@remote_of(jobs.retry)
def retry_action(client: Client, *, action_id: str) -> ActionView:
    return _job(client, action_id, "retry")


@remote_of(jobs.cancel)
def cancel_action(client: Client, *, action_id: str) -> ActionView:
    return _job(client, action_id, "cancel")


# ---- the audit log --------------------------------------------------------------------------
@remote_of(audit.query)
def audit_query(
    client: Client,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    after: str | None = None,
    **equal: str | None,
) -> AuditPage:
    params = [(k, v) for k, v in equal.items() if v is not None]
    params += [(k, t.isoformat()) for k, t in (("since", since), ("until", until)) if t]
    params += [("limit", str(limit))] + ([("after", after)] if after else [])
    page = client.call("GET", f"{V1}/audit", params=params)
    nxt = page.get("next")
    cursor = parse_qs(urlsplit(nxt).query).get("after", [None])[0] if nxt else None
    return AuditPage(items=[AuditView.model_validate(e) for e in page["items"]], next=cursor)


# ---- reports --------------------------------------------------------------------------------
def _params(flt: Filter, tz: ZoneInfo, fmt: str) -> list[tuple[str, str]]:
    return [*filter_params(flt), ("tz", tz.key), ("format", fmt)]


def report_table(client: Client, name: str, *, flt: Filter, tz: ZoneInfo) -> Table:
    """The report as the service's table: the same columns, the server's rows."""
    found = client.call("GET", f"{V1}/reports/{name}", params=_params(flt, tz, "json"))
    columns = svc.COLUMNS[name]

    def cell(value: Any, kind: str) -> Any:
        if value is not None and kind == "time":
            return datetime.fromisoformat(value)
        return value

    rows = [
        tuple(cell(record[c.machine_name], c.kind) for c in columns) for record in found["rows"]
    ]
    return Table(found["title"], list(columns), list(rows), caption=found["caption"],
                 brief=svc.BRIEF.get(name, ()))  # fmt: skip


def write_report(
    client: Client, name: str, *, flt: Filter, fmt: str, out: IO[Any], tz: ZoneInfo
) -> int:
    """The report's file as the server writes it (CSV the very text the CLI writes) into
    ``out`` (binary for XLSX); the number of rows it holds."""
    answer = client.fetch("GET", f"{V1}/reports/{name}", params=_params(flt, tz, fmt))
    if fmt == "xlsx":
        out.write(answer.content)
    else:
        out.write(answer.content.decode("utf-8"))
    return int(answer.headers.get("X-Total-Count", "0"))
