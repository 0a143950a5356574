"""Bulk import of access-request histories exported from another system (CSV or JSON lines).

Each row is one state change of one request, with its original timestamp. Every row is checked
before anything is written; any problem → all problems listed with line numbers and nothing
imported. Requests already imported (same external id in the project) are skipped, so an
import that was interrupted or repeated never duplicates anything.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from steward.db.models import AccessRequest, Event, Membership, User
from steward.db.session import Database
from steward.domain import requests as domain
from steward.domain.duo import normalise as normalise_duo
from steward.domain.roles import STAFF, Role
from steward.errors import Detail, Forbidden, ValidationFailed
from steward.ids import new_id
from steward.services.access import require_member, require_user
from steward.timeutil import parse_timestamp, utcnow

COLUMNS = (
    "request",
    "state",
    "at",
    "title",
    "requester",
    "actor",
    "reason",
    "institution",
    "project_lead",
    "intended_use",
    "datasets",
    "duo_codes",
    "reviewer",
)
REQUIRED = ("request", "state", "at")
LIST_FIELDS = ("datasets", "duo_codes")
BATCH = 20_000


@dataclass
class Row:
    line: int
    values: dict[str, Any]
    at: datetime


@dataclass
class ImportResult:
    requests: int = 0
    events: int = 0
    skipped: int = 0
    users_created: list[str] = field(default_factory=list)


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValidationFailed(
            f"{source} is not UTF-8 text",
            [
                Detail(
                    f"byte 0x{raw[exc.start]:02x} at offset {exc.start} is not UTF-8",
                    row=line,
                    accepted="UTF-8 (save the export as UTF-8 CSV or JSON lines)",
                )
            ],
        ) from None


def _csv_rows(
    text: str, problems: list[Detail], delimiter: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        problems.append(Detail("the file is empty", row=1))
        return
    except csv.Error as exc:
        problems.append(Detail(f"unreadable header: {exc}", row=1))
        return
    header = [h.strip().lower() for h in header]
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown:
        problems.append(
            Detail(
                f"unknown columns: {', '.join(unknown)}",
                row=1,
                field="header",
                accepted=", ".join(COLUMNS),
            )
        )
    if missing:
        problems.append(
            Detail(
                f"missing columns: {', '.join(missing)}",
                row=1,
                field="header",
                accepted=", ".join(COLUMNS),
            )
        )
    if unknown or missing:
        return
    try:
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    Detail(
                        f"expected {len(header)} fields, found {len(cells)}"
                        + (" (is the file truncated?)" if len(cells) < len(header) else ""),
                        row=line,
                    )
                )
                continue
            values: dict[str, Any] = {h: c.strip() for h, c in zip(header, cells, strict=True)}
            for name in LIST_FIELDS:
                if name in values:
                    values[name] = [v.strip() for v in values[name].split(";") if v.strip()]
            yield line, values
    except csv.Error as exc:
        problems.append(Detail(f"broken CSV: {exc} (is the file truncated?)", row=reader.line_num))


def _jsonl_rows(text: str, problems: list[Detail]) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(
                Detail(
                    f"not valid JSON: {exc.msg} at column {exc.colno} (is the file truncated?)",
                    row=line,
                )
            )
            continue
        if not isinstance(obj, dict):
            problems.append(Detail("each line must be a JSON object", row=line))
            continue
        unknown = [k for k in obj if k not in COLUMNS]
        if unknown:
            problems.append(
                Detail(
                    f"unknown fields: {', '.join(unknown)}", row=line, accepted=", ".join(COLUMNS)
                )
            )
            continue
        values: dict[str, Any] = {}
        for k, v in obj.items():
            if k in LIST_FIELDS:
                if isinstance(v, str):
                    v = [x.strip() for x in v.split(";") if x.strip()]
                elif not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                    problems.append(Detail("must be a list of strings", row=line, field=k))
                    continue
                values[k] = v
            else:
                values[k] = "" if v is None else str(v).strip()
        yield line, values


def read_rows(path: Path, *, assume_tz: ZoneInfo | None = None) -> tuple[list[Row], list[Detail]]:
    """Parse and check every row; return them with every problem found."""
    problems: list[Detail] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(
            f"cannot read {path}: {exc.strerror}",
            [Detail(exc.strerror or "unreadable", field="file", value=str(path))],
        ) from None
    text = _decode(raw, str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        source = _jsonl_rows(text, problems)
    elif suffix in (".csv", ".tsv", ".txt"):
        source = _csv_rows(text, problems, "\t" if suffix == ".tsv" else ",")
    else:
        raise ValidationFailed(
            f"cannot tell the format of {path.name}",
            [
                Detail(
                    "unknown file type",
                    field="file",
                    value=path.suffix,
                    accepted=".csv, .tsv, .jsonl, .ndjson",
                )
            ],
        )
    rows: list[Row] = []
    seen: dict[tuple[str, str, str], int] = {}
    states = set(domain.WORKFLOW.state_names)
    for line, values in source:
        bad = False
        for name in REQUIRED:
            if not values.get(name):
                problems.append(Detail("required", row=line, field=name))
                bad = True
        state = values.get("state", "")
        if state and state not in states:
            problems.append(
                Detail(
                    "unknown state",
                    row=line,
                    field="state",
                    value=state,
                    accepted=", ".join(domain.WORKFLOW.state_names),
                )
            )
            bad = True
        at = None
        if values.get("at"):
            try:
                at = parse_timestamp(values["at"], assume=assume_tz)
            except ValueError as exc:
                problems.append(
                    Detail(
                        str(exc),
                        row=line,
                        field="at",
                        value=values["at"],
                        accepted="ISO 8601 with offset, e.g. 2026-03-01T09:30:00+02:00",
                    )
                )
                bad = True
        if values.get("duo_codes"):
            codes, duo_problems = normalise_duo(values["duo_codes"], row=line)
            problems += duo_problems
            values["duo_codes"] = codes
            bad = bad or bool(duo_problems)
        if bad or at is None:
            continue
        key = (values["request"], state, at.isoformat())
        if key in seen:
            problems.append(
                Detail(
                    f"duplicate of line {seen[key]}",
                    row=line,
                    value=f"{values['request']} {state} {values['at']}",
                )
            )
            continue
        seen[key] = line
        rows.append(Row(line, values, at))
    return rows, problems


@dataclass
class Plan:
    """One request's history, checked against the workflow."""

    external_id: str
    rows: list[Row]
    fields: dict[str, Any]
    events: list[tuple[Row, str, str | None, str]]  # row, event type, from, to


def plan_requests(rows: list[Row]) -> tuple[list[Plan], list[Detail]]:
    problems: list[Detail] = []
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r.values["request"]].append(r)
    wf = domain.WORKFLOW
    plans = []
    for ext, group in groups.items():
        group.sort(key=lambda r: (r.at, r.line))
        fields: dict[str, Any] = {}
        for r in group:
            for name in (
                "title",
                "requester",
                "institution",
                "project_lead",
                "intended_use",
                "datasets",
                "duo_codes",
                "reviewer",
            ):
                value = r.values.get(name)
                if value and not fields.get(name):
                    fields[name] = value
        first = group[0]
        for name in ("title", "requester"):
            if not fields.get(name):
                problems.append(
                    Detail(f"request {ext} has no {name} on any row", row=first.line, field=name)
                )
        if len(fields.get("title", "")) > domain.MAX_TITLE:
            problems.append(
                Detail(f"longer than {domain.MAX_TITLE} characters", row=first.line, field="title")
            )
        events: list[tuple[Row, str, str | None, str]] = [
            (first, wf.create.event, None, wf.initial)
        ]
        current = wf.initial
        for r in group:
            target = r.values["state"]
            if target == current and r is first:
                continue
            t = wf.transition_between(current, target)
            if t is None:
                problems.append(
                    Detail(
                        f"request {ext} cannot go from {current} to {target}",
                        row=r.line,
                        field="state",
                        value=target,
                        accepted=", ".join(
                            x.target or ""
                            for x in wf.transitions
                            if x.moves() and x.applies_to(current)
                        )
                        or "nothing",
                    )
                )
                break
            events.append((r, t.event, current, target))
            current = target
        plans.append(Plan(ext, group, fields, events))
    return plans, problems


def import_requests(
    db: Database,
    *,
    actor: str | None,
    project: str,
    path: Path,
    assume_tz: ZoneInfo | None = None,
    create_users: bool = False,
) -> ImportResult:
    rows, problems = read_rows(path, assume_tz=assume_tz)
    plans, plan_problems = plan_requests(rows)
    problems += plan_problems
    if problems:
        problems.sort(key=lambda d: d.row or 0)
        raise ValidationFailed(
            f"{path.name}: {len(problems)} problem(s); nothing was imported", problems
        )
    result = ImportResult()
    with db.transaction() as s:
        user = require_user(s, actor)
        if not require_member(s, user, project) & STAFF:
            raise Forbidden(
                f"{user.id} may not import requests into {project}",
                [Detail("needs steward or admin", field="role")],
            )
        existing = set(
            s.scalars(select(AccessRequest.external_id).where(AccessRequest.project_id == project))
        )
        known_users = set(s.scalars(select(User.id)))
        needed: dict[str, int] = {}
        for p in plans:
            for who in (
                p.fields.get("requester"),
                p.fields.get("reviewer"),
                *(r.values.get("actor") for r, *_ in p.events),
            ):
                if who and who not in known_users:
                    needed.setdefault(who, p.rows[0].line)
        if needed and not create_users:
            raise ValidationFailed(
                f"{len(needed)} user(s) in {path.name} do not exist; nothing was imported",
                [
                    Detail(
                        "unknown user",
                        row=line,
                        field="user",
                        value=who,
                        accepted="existing users, or pass --create-users",
                    )
                    for who, line in sorted(needed.items(), key=lambda kv: kv[1])
                ],
            )
        now = utcnow()
        for who in sorted(needed):
            s.add(User(id=who, display_name=who, email="", is_admin=False, created_at=now))
            result.users_created.append(who)
        members = set(
            s.scalars(
                select(Membership.user_id).where(
                    Membership.project_id == project, Membership.role == Role.REQUESTER.value
                )
            )
        )
        for who in sorted({p.fields["requester"] for p in plans} - members):
            s.add(Membership(project_id=project, user_id=who, role=Role.REQUESTER.value))
        s.flush()

        req_rows: list[dict[str, Any]] = []
        ev_rows: list[dict[str, Any]] = []

        def flush() -> None:
            if req_rows:
                s.execute(insert(AccessRequest), req_rows)
                req_rows.clear()
            if ev_rows:
                s.execute(insert(Event), ev_rows)
                ev_rows.clear()

        for p in plans:
            if p.external_id in existing:
                result.skipped += 1
                continue
            rid = new_id(domain.KIND, p.rows[0].at)
            subject: dict[str, Any] = {}
            create_data = {
                k: p.fields.get(k, [] if k in LIST_FIELDS else "")
                for k in (
                    "title",
                    "requester",
                    "institution",
                    "project_lead",
                    "intended_use",
                    "datasets",
                    "duo_codes",
                )
            }
            create_data["external_id"] = p.external_id
            state_since = p.rows[0].at
            for seq, (row, etype, src, dst) in enumerate(p.events, start=1):
                data = (
                    create_data
                    if seq == 1
                    else {k: row.values[k] for k in ("reason",) if row.values.get(k)}
                )
                if etype == "approved" and p.fields.get("reviewer"):
                    subject.setdefault("reviewer", p.fields["reviewer"])
                who = row.values.get("actor") or p.fields["requester"]
                subject.update(domain.project(etype, row.at, who, data, subject))
                if src != dst:
                    state_since = row.at
                ev_rows.append(
                    {
                        "subject_kind": domain.KIND,
                        "subject_id": rid,
                        "project_id": project,
                        "seq": seq,
                        "at": row.at,
                        "actor": who,
                        "type": etype,
                        "from_state": src,
                        "to_state": dst,
                        "data": data,
                        "idempotency_key": f"import:{project}:{p.external_id}:{seq}",
                    }
                )
            last_row = p.events[-1][0]
            req_rows.append(
                {
                    "id": rid,
                    "project_id": project,
                    "external_id": p.external_id,
                    "title": subject["title"],
                    "requester": subject["requester"],
                    "institution": subject.get("institution", ""),
                    "project_lead": subject.get("project_lead", ""),
                    "intended_use": subject.get("intended_use", ""),
                    "datasets": subject.get("datasets", []),
                    "duo_codes": subject.get("duo_codes", []),
                    "reviewer": p.fields.get("reviewer") or None,
                    "decided_by": subject.get("decided_by"),
                    "decision_reason": subject.get("decision_reason"),
                    "ticket_key": None,
                    "state": p.events[-1][3],
                    "version": len(p.events),
                    "created_at": p.rows[0].at,
                    "updated_at": last_row.at,
                    "state_since": state_since,
                    "submitted_at": subject.get("submitted_at"),
                    "decided_at": subject.get("decided_at"),
                    "expires_at": subject.get("expires_at"),
                }
            )
            result.requests += 1
            result.events += len(p.events)
            if len(ev_rows) >= BATCH:
                flush()
        flush()
    return result
