"""Bulk import of access-request histories exported from another system (CSV or JSON lines).

Each row is one state change of one request, with its original timestamp. Every row is checked
before anything is written; any problem → all problems listed with line numbers and nothing
imported. Requests already imported (same external id in the project) are skipped, so an
import that was interrupted or repeated never duplicates anything.

Checked rows are written by ``ledger.append_many``, the ledger's bulk path: the same
decisions, read-model projection, stays and change logs as live commands, so nothing the
ledger does (or will do: outbox effects, rules) skips imported history.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from steward.db.models import AccessRequest, Event, Membership, User
from steward.db.session import Database
from steward.domain import requests as domain
from steward.domain.duo import normalise as normalise_duo
from steward.domain.roles import STAFF, Role
from steward.domain.workflow import Context, Transition
from steward.errors import Detail, Forbidden, ValidationFailed
from steward.gcpause import collector_off
from steward.ids import new_id
from steward.services import import_limits as limits
from steward.services import ledger
from steward.services.access import audited, check_name, require_member, require_user
from steward.services.import_rules import COMMAND_OF, assigned_reviewers, check_histories
from steward.services.requests import REQUEST
from steward.timeutil import parse_duration, parse_timestamp, utcnow

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
FORMATS = {
    ".csv": "CSV",
    ".txt": "CSV",
    ".tsv": "TSV (tab-separated)",
    ".jsonl": "JSON lines",
    ".ndjson": "JSON lines",
    ".json": "JSON lines",
}
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(slots=True)
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
    width = len(header)
    lists = [name for name in LIST_FIELDS if name in header]
    try:
        for cells in reader:
            line = reader.line_num
            cells = list(map(str.strip, cells))
            if not any(cells):
                continue
            if len(cells) != width:
                problems.append(
                    Detail(
                        f"expected {width} fields, found {len(cells)}"
                        + (" (is the file truncated?)" if len(cells) < width else ""),
                        row=line,
                    )
                )
                continue
            values: dict[str, Any] = dict(zip(header, cells, strict=True))
            for name in lists:
                raw = values[name]
                values[name] = [v.strip() for v in raw.split(";") if v.strip()] if raw else []
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
                    # json's own messages may end in "at" ("Unterminated string starting at")
                    f"not valid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno} "
                    "(is the file truncated?)",
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
        if "\\u" in raw and _unencodable(obj, line, problems):
            continue
        values: dict[str, Any] = {}
        wrong = False  # a value of the wrong type: reported, and the row goes no further
        for k, v in obj.items():
            if k in LIST_FIELDS:
                if isinstance(v, str):
                    v = [x.strip() for x in v.split(";") if x.strip()]
                elif not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                    problems.append(Detail("must be a list of strings", row=line, field=k))
                    wrong = True
                    continue
                values[k] = v
            elif isinstance(v, dict | list | bool):  # str() would store Python's repr
                problems.append(
                    Detail(
                        f"must be text, not {type(v).__name__}",
                        row=line,
                        field=k,
                        value=json.dumps(v)[:40],
                        accepted="a string (or a number)",
                    )
                )
                wrong = True
            else:
                values[k] = "" if v is None else str(v).strip()
        if not wrong:
            yield line, values


def _unencodable(obj: dict[str, Any], line: int, problems: list[Detail]) -> bool:
    """JSON escapes can spell half of a surrogate pair, which no database can store as text."""
    bad = False
    for k, v in obj.items():
        for text in v if isinstance(v, list) else [v]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    problems.append(
                        Detail(
                            "holds an unpaired surrogate escape (\\ud800-\\udfff), "
                            "which is not a character",
                            row=line,
                            field=k,
                            accepted="valid Unicode text",
                        )
                    )
                    bad = True
    return bad


def read_rows(
    path: Path,
    *,
    assume_tz: ZoneInfo | None = None,
    now: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> tuple[list[Row], list[Detail]]:
    """Parse and check every row on its own; return them with every problem found.

    Each value is checked against what either database would refuse (``import_limits``),
    and each time against ``now`` plus the tolerated ``clock_skew``: history cannot happen
    in the future, and one event that does breaks every duration derived from it. Rows
    repeating another row (same request, state and time) are found by ``plan_requests``,
    which sees each request's rows sorted by time anyway.
    """
    latest = (now or utcnow()) + clock_skew
    earliest = limits.EARLIEST
    check_values = limits.check_values
    limited = tuple(limits.MAX_LENGTH.items())
    problems: list[Detail] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(
            f"cannot read {path}: {exc.strerror}",
            [Detail(exc.strerror or "unreadable", field="file", value=str(path))],
        ) from None
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValidationFailed(
            f"cannot tell the format of {path.name}",
            [
                Detail(
                    "unknown file type",
                    field="file",
                    value=path.suffix or "(no extension)",
                    accepted=", ".join(f"{ext} ({kind})" for ext, kind in FORMATS.items()),
                )
            ],
        )
    text = _decode(raw, str(path))
    has_nul = "\x00" in text or "\\u0000" in text  # raw, or escaped in JSON
    if suffix in (".jsonl", ".ndjson", ".json"):
        source = _jsonl_rows(text, problems)
    else:
        source = _csv_rows(text, problems, "\t" if suffix == ".tsv" else ",")
    rows: list[Row] = []
    states = set(domain.WORKFLOW.state_names)
    duo_cache: dict[tuple[str, ...], tuple[str, ...]] = {}
    for line, values in source:
        get = values.get
        request, state, at_text = get("request"), get("state", ""), get("at")
        bad = False
        if not (request and state and at_text):
            for name in REQUIRED:
                if not get(name):
                    problems.append(Detail("required", row=line, field=name))
                    bad = True
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
        if at_text:
            try:
                at = parse_timestamp(at_text, assume=assume_tz)
            except ValueError as exc:
                problems.append(
                    Detail(
                        str(exc),
                        row=line,
                        field="at",
                        value=at_text,
                        accepted="ISO 8601 with offset, e.g. 2026-03-01T09:30:00+02:00",
                    )
                )
                bad = True
            else:
                if not earliest <= at <= latest:
                    problems += limits.check_time(line, at, at_text, latest, clock_skew)
                    bad = True
        suspect = has_nul  # inlined: nearly every file has no NUL and no overlong value
        if not suspect:
            for name, limit in limited:
                value = get(name)
                if value and len(value) > limit:
                    suspect = True
                    break
        if suspect:
            found = check_values(line, values)
            if found:
                problems += found
                bad = True
        if get("duo_codes"):
            raw_codes = tuple(values["duo_codes"])
            known = duo_cache.get(raw_codes)
            if known is not None:
                values["duo_codes"] = list(known)
            else:
                codes, duo_problems = normalise_duo(values["duo_codes"], row=line)
                problems += duo_problems
                values["duo_codes"] = codes
                if duo_problems:
                    bad = True
                else:
                    duo_cache[raw_codes] = tuple(codes)
        if bad or at is None:
            continue
        rows.append(Row(line, values, at))
    return rows, problems


@dataclass
class Plan:
    """One request's history, checked against the workflow."""

    external_id: str
    rows: list[Row]
    fields: dict[str, Any]
    events: list[tuple[Row, str, str | None, str]]  # row, event type, from, to
    field_lines: dict[str, int] = field(default_factory=dict)  # the line each field came from


_SUBJECT_FIELDS = domain.SUBJECT_FIELDS


_WHEN = attrgetter("at", "line")


def _without_duplicates(ext: str, group: list[Row], problems: list[Detail]) -> list[Row]:
    """Drop (and report) rows repeating an earlier row's state at the same time."""
    kept: list[Row] = []
    previous: datetime | None = None
    for r in group:
        if r.at == previous:  # rare: look back over the rows at this very time
            state = r.values["state"]
            twin = None
            for k in reversed(kept):
                if k.at != r.at:
                    break
                if k.values["state"] == state:
                    twin = k
                    break
            if twin is not None:
                problems.append(
                    Detail(
                        f"duplicate of line {twin.line}",
                        row=r.line,
                        value=f"{ext} {state} {r.values['at']}",
                    )
                )
                continue
        kept.append(r)
        previous = r.at
    return kept


def plan_requests(rows: list[Row]) -> tuple[list[Plan], list[Detail]]:
    """Group rows by request, drop repeated rows, and replay each history through the workflow."""
    problems: list[Detail] = []
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[r.values["request"]].append(r)
    wf = domain.WORKFLOW
    plans = []
    moves: dict[tuple[str, str], Transition | None] = {}
    for ext, group in groups.items():
        group.sort(key=_WHEN)
        group = _without_duplicates(ext, group, problems)
        # Each field comes from the earliest row that has it.
        fields: dict[str, Any] = {}
        field_lines: dict[str, int] = {}
        missing: tuple[str, ...] = _SUBJECT_FIELDS
        for r in group:
            if not missing:
                break
            get = r.values.get
            found = [name for name in missing if get(name)]
            if found:
                for name in found:
                    fields[name] = get(name)
                    field_lines[name] = r.line
                missing = tuple(name for name in missing if name not in fields)
        first = group[0]
        for name in ("title", "requester"):
            if not fields.get(name):
                problems.append(
                    Detail(f"request {ext} has no {name} on any row", row=first.line, field=name)
                )
        events: list[tuple[Row, str, str | None, str]] = [
            (first, wf.create.event, None, wf.initial)
        ]
        current = wf.initial
        for r in group:
            target = r.values["state"]
            if target == current and r is first:
                continue
            step = (current, target)
            if step in moves:
                t = moves[step]
            else:
                t = moves[step] = wf.transition_between(current, target)
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
        plans.append(Plan(ext, group, fields, events, field_lines))
    return plans, problems


_CREATE_FIELDS = tuple(f for f in domain.SUBJECT_FIELDS if f != "reviewer")
_TABLES = Event.metadata.tables


def _histories(
    plans: list[Plan],
    existing: set[str | None],
    project: str,
    roles: Mapping[str, frozenset[str]],
    result: ImportResult,
) -> Iterator[ledger.NewSubject]:
    """Each new request's rows as the changes ``ledger.append_many`` decides and writes.

    Each change carries the context its decision needs, as ``check_histories`` judged it:
    the actor's roles in the project and the request's people at that row (the reviewer from
    the row that names them on). Contexts and data are shared wherever they repeat, so the
    ledger decides and serialises each distinct one once.
    """
    create = domain.WORKFLOW.create.command
    key_prefix = f"import:{project}:"
    empty: dict[str, Any] = {}
    reasons: dict[str, dict[str, Any]] = {}
    contexts: dict[tuple[str, str, str | None], Context] = {}
    no_roles: frozenset[str] = frozenset()
    change = ledger.Change
    for p in plans:
        if p.external_id in existing:
            result.skipped += 1
            continue
        fields = p.fields
        requester = fields["requester"]
        data: dict[str, Any] = {
            k: fields.get(k, [] if k in LIST_FIELDS else "") for k in _CREATE_FIELDS
        }
        if fields.get("reviewer"):
            data["reviewer"] = fields["reviewer"]
        data["external_id"] = p.external_id
        changes = []
        prefix = f"{key_prefix}{p.external_id}:"
        for seq, ((row, etype, _src, _dst), assigned) in enumerate(
            zip(p.events, assigned_reviewers(p), strict=True), start=1
        ):
            values = row.values
            who = values.get("actor") or requester
            ctx = contexts.get((who, requester, assigned))
            if ctx is None:
                if len(contexts) >= 1 << 16:  # only what repeats is worth keeping
                    contexts.clear()
                ctx = contexts[(who, requester, assigned)] = Context(
                    actor=who,
                    roles=roles.get(who, no_roles),
                    subject={"requester": requester, "reviewer": assigned},
                )
            if seq == 1:
                command = create
            else:
                command = COMMAND_OF[etype]
                reason = values.get("reason")
                if reason:
                    data = reasons.get(reason) or reasons.setdefault(reason, {"reason": reason})
                else:
                    data = empty
            changes.append(change(command, ctx, row.at, data, f"{prefix}{seq}"))
        result.requests += 1
        result.events += len(changes)
        yield ledger.NewSubject(new_id(domain.KIND, p.rows[0].at), project, changes)


def _unknown_users(plans: list[Plan], known: set[str]) -> dict[str, int]:
    """Users named in the file who do not exist yet, each with the first line naming them."""
    needed: dict[str, int] = {}

    def note(who: str | None, line: int) -> None:
        if who and who not in known and line < needed.get(who, line + 1):
            needed[who] = line

    for p in plans:
        for name in ("requester", "reviewer"):
            if name in p.field_lines:
                note(p.fields[name], p.field_lines[name])
        for r in p.rows:
            who = r.values.get("actor")
            if who and who not in known:
                note(who, r.line)
    return needed


def import_requests(
    db: Database,
    *,
    actor: str | None,
    project: str,
    path: Path,
    assume_tz: ZoneInfo | None = None,
    create_users: bool = False,
    clock_skew: timedelta | None = None,
) -> ImportResult:
    """Check every row of ``path`` and import all of it into ``project``, or nothing.

    ``clock_skew``: how far in the future a row may be dated (another machine's clock may
    run ahead); default: the ``import_clock_skew`` setting.
    """
    if clock_skew is None:
        clock_skew = parse_duration(db.settings.import_clock_skew)
    # Millions of small objects and no cycles: the collector's passes cost as much as the import.
    with collector_off():
        return _import(db, actor, project, path, assume_tz, create_users, clock_skew)


def _roles(
    s: Session, project: str, admins: set[str], created: set[str], plans: list[Plan]
) -> dict[str, frozenset[str]]:
    """Each user's roles in ``project`` as a live command would see them, plus the one
    documented relaxation: users the import creates become requesters when they file."""
    found: dict[str, set[str]] = defaultdict(set)
    for who, role in s.execute(
        select(Membership.user_id, Membership.role).where(Membership.project_id == project)
    ):
        found[who].add(role)
    for who in admins:
        found[who].add(Role.ADMIN.value)
    for who in _created_requesters(plans, created):
        found[who].add(Role.REQUESTER.value)
    return {who: frozenset(r) for who, r in found.items()}


def _name_problems(who: str, line: int) -> list[Detail]:
    """A user the import would create must have a name ``steward user add`` accepts."""
    try:
        check_name(who, "user")
    except ValidationFailed as exc:
        return [
            replace(d, row=line, message=f"cannot create user {who!r}: {d.message}")
            for d in exc.details
        ]
    return []


def _created_requesters(plans: list[Plan], created: set[str]) -> set[str]:
    return {p.fields["requester"] for p in plans if p.fields.get("requester") in created}


def _import(
    db: Database,
    actor: str | None,
    project: str,
    path: Path,
    assume_tz: ZoneInfo | None,
    create_users: bool,
    clock_skew: timedelta,
) -> ImportResult:
    rows, problems = read_rows(path, assume_tz=assume_tz, clock_skew=clock_skew)
    plans, plan_problems = plan_requests(rows)
    problems += plan_problems
    result = ImportResult()
    with (
        audited(db, actor=actor, action="import", project_id=project, subject_kind=domain.KIND),
        db.transaction() as s,
    ):
        db.serialize(s, f"import:{project}")  # concurrent imports: one checks-and-writes at a time
        user = require_user(s, actor)
        if not require_member(s, user, project) & STAFF:
            raise Forbidden(
                f"{user.id} may not import requests into {project}",
                [Detail("needs steward or admin", field="role")],
            )
        existing = set(
            s.scalars(select(AccessRequest.external_id).where(AccessRequest.project_id == project))
        )
        users = {uid: bool(admin) for uid, admin in s.execute(select(User.id, User.is_admin))}
        needed = _unknown_users(plans, set(users))
        created = set(needed) if create_users else set()
        unknown = set() if create_users else set(needed)
        only_users = not problems
        if unknown:
            problems += [
                Detail(
                    "unknown user",
                    row=line,
                    field="user",
                    value=who,
                    accepted="existing users, or pass --create-users",
                )
                for who, line in sorted(needed.items(), key=lambda kv: kv[1])
            ]
        for who, line in sorted(needed.items(), key=lambda kv: kv[1]) if created else ():
            problems += _name_problems(who, line)  # the rule `steward user add` applies
        new_plans = [p for p in plans if p.external_id not in existing]
        for p in new_plans:
            problems += limits.check_key(project, p.external_id, len(p.events), p.rows[0].line)
        roles = _roles(s, project, {u for u, admin in users.items() if admin}, created, plans)
        problems += check_histories(new_plans, project=project, roles=roles, unknown=unknown)
        if unknown and only_users and len(problems) == len(unknown):
            raise ValidationFailed(
                f"{len(unknown)} user(s) in {path.name} do not exist; nothing was imported",
                problems,
            )
        if problems:
            problems.sort(key=lambda d: d.row or 0)
            raise ValidationFailed(
                f"{path.name}: {len(problems)} problem(s); nothing was imported", problems
            )
        now = utcnow()
        if needed:
            s.execute(
                insert(_TABLES["users"]),
                [
                    {
                        "id": who,
                        "display_name": who,
                        "email": "",
                        "is_admin": False,
                        "created_at": now,
                    }
                    for who in sorted(needed)
                ],
            )
            result.users_created.extend(sorted(needed))
        joining = sorted(_created_requesters(new_plans, created))
        if joining:
            s.execute(
                insert(_TABLES["memberships"]),
                [
                    {"project_id": project, "user_id": who, "role": Role.REQUESTER.value}
                    for who in joining
                ],
            )

        ledger.append_many(s, REQUEST, _histories(plans, existing, project, roles, result))
    return result
