"""``steward request …``: file, move and inspect access requests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel

from steward.cli import options as o
from steward.cli import render
from steward.cli.state import STATE
from steward.domain.requests import RequestFields
from steward.remote import requests as remote
from steward.services import importer
from steward.services import requests as svc
from steward.services.requests import RequestDetail, RequestView
from steward.tables import Column, Table
from steward.timeutil import format_time

app = typer.Typer(
    help="Access requests: researchers ask for controlled data; reviewers decide.",
    no_args_is_help=True,
)

RequestId = Annotated[str, typer.Argument(help="Request id (req_…).")]
Reason = Annotated[str | None, typer.Option("--reason", "-r", help="Why (kept in the log).")]
Key = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key", help="Re-sending a command with the same key does nothing more."
    ),
]
Version = Annotated[
    int | None,
    typer.Option("--if-version", help="Refuse if the request changed since you saw this version."),
]


def _create(**given: Any) -> RequestView:
    """Here or on the server (``--server``): the same arguments, view and errors."""
    client = STATE.remote
    if client is not None:
        return remote.create(client, **given)
    return svc.create(STATE.db, actor=STATE.actor, **given)


def _act(**given: Any) -> RequestView:
    client = STATE.remote
    if client is not None:
        return remote.act(client, **given)
    return svc.act(STATE.db, actor=STATE.actor, **given)


def _get(request_id: str) -> RequestDetail:
    client = STATE.remote
    if client is not None:
        return remote.get(client, request_id=request_id)
    return svc.get(STATE.db, actor=STATE.actor, request_id=request_id)


def _fields(
    title: str,
    institution: str,
    project_lead: str,
    intended_use: str,
    dataset: list[str] | None,
    duo: list[str] | None,
) -> RequestFields:
    return RequestFields(
        title=title,
        institution=institution,
        project_lead=project_lead,
        intended_use=intended_use,
        datasets=tuple(dataset or ()),
        duo_codes=tuple(duo or ()),
    )


Title = Annotated[str, typer.Option(help="Short title of the request.")]
Institution = Annotated[str, typer.Option(help="Requester's institution.")]
Lead = Annotated[str, typer.Option("--project-lead", help="Lead of the requesting project.")]
Use = Annotated[str, typer.Option("--intended-use", help="Intended data use statement.")]
Datasets = Annotated[
    list[str] | None,
    typer.Option(
        "--dataset", "-d", help="Dataset, folder or access requirement requested (repeatable)."
    ),
]
Duo = Annotated[
    list[str] | None,
    typer.Option("--duo", help="Data-use condition, DUO id or shorthand, e.g. HMB (repeatable)."),
]


@app.command()
def create(
    project: Annotated[str, typer.Argument(help="Project the data belongs to.")],
    title: Title,
    institution: Institution = "",
    project_lead: Lead = "",
    intended_use: Use = "",
    dataset: Datasets = None,
    duo: Duo = None,
    on_behalf_of: Annotated[
        str | None, typer.Option(help="Staff only: file the request for this requester.")
    ] = None,
    idempotency_key: Key = None,
    submit: Annotated[
        bool,
        typer.Option(
            help="Submit straight away; if the request is not complete enough to submit, no "
            "draft is kept either."
        ),
    ] = False,
) -> None:
    """Start a draft request (and optionally submit it)."""
    view = _create(
        project=project,
        fields=_fields(title, institution, project_lead, intended_use, dataset, duo),
        requester=on_behalf_of,
        idempotency_key=idempotency_key,
        submit=submit,
    )
    render.done(view, "created")


@app.command()
def edit(
    request_id: RequestId,
    title: Annotated[str, typer.Option(help="New title.")] = "",
    institution: Institution = "",
    project_lead: Lead = "",
    intended_use: Use = "",
    dataset: Datasets = None,
    duo: Duo = None,
    if_version: Version = None,
    idempotency_key: Key = None,
) -> None:
    """Change a draft or returned request (only the fields given)."""
    view = _act(
        request_id=request_id,
        command="edit",
        changes=_fields(title, institution, project_lead, intended_use, dataset, duo),
        expected_version=if_version,
        idempotency_key=idempotency_key,
    )
    render.done(view, "edited")


def _simple(command: str, verb: str, doc: str) -> None:
    def handler(
        request_id: RequestId,
        reason: Reason = None,
        if_version: Version = None,
        idempotency_key: Key = None,
    ) -> None:
        view = _act(
            request_id=request_id,
            command=command,
            reason=reason,
            expected_version=if_version,
            idempotency_key=idempotency_key,
        )
        render.done(view, verb)

    handler.__doc__ = doc
    app.command(command)(handler)


_simple("submit", "submitted", "Send a draft for review.")
_simple(
    "return",
    "returned",
    "Send a submitted request back to the requester for changes (needs --reason).",
)
_simple("resubmit", "resubmitted", "Send a returned request back for review.")
_simple("reject", "rejected", "Refuse access (needs --reason).")
_simple("cancel", "cancelled", "Withdraw a request that has not been decided.")
_simple("revoke", "revoked", "Take approved access back (needs --reason).")
_simple("expire", "expired", "End approved access now (see also `request expire-due`).")


@app.command()
def approve(
    request_id: RequestId,
    reason: Reason = None,
    expires: Annotated[
        str | None,
        typer.Option(help="Access ends after this long (365d) or on this date (2027-06-30)."),
    ] = None,
    if_version: Version = None,
    idempotency_key: Key = None,
) -> None:
    """Grant access, optionally until an expiry date."""
    view = _act(
        request_id=request_id,
        command="approve",
        reason=reason,
        expires_at=o.parse_expiry(expires),
        expected_version=if_version,
        idempotency_key=idempotency_key,
    )
    render.done(view, "approved")


@app.command("assign-reviewer")
def assign_reviewer(
    request_id: RequestId,
    reviewer: Annotated[str, typer.Argument(help="User with the reviewer role.")],
    if_version: Version = None,
    idempotency_key: Key = None,
) -> None:
    """Choose who reviews a request (stewards)."""
    view = _act(
        request_id=request_id,
        command="assign-reviewer",
        reviewer=reviewer,
        expected_version=if_version,
        idempotency_key=idempotency_key,
    )
    render.done(view, f"assigned to {reviewer}")


@app.command()
def comment(
    request_id: RequestId,
    text: Annotated[str, typer.Argument(help="The note.")],
    idempotency_key: Key = None,
) -> None:
    """Add a note to a request's timeline."""
    view = _act(
        request_id=request_id,
        command="comment",
        text=text,
        idempotency_key=idempotency_key,
    )
    render.done(view, "commented")


@app.command("list")
def list_(
    project: o.Project = None,
    state: o.States = None,
    requester: o.Requester = None,
    reviewer: o.Reviewer = None,
    created_from: o.CreatedFrom = None,
    created_to: o.CreatedTo = None,
    decided_from: o.DecidedFrom = None,
    decided_to: o.DecidedTo = None,
    limit: o.Limit = None,
    sort: o.Sort = "created",
) -> None:
    """List the requests you may see; every filter combines with the others."""
    flt = o.request_filter(
        project,
        state,
        requester,
        reviewer,
        created_from,
        created_to,
        decided_from,
        decided_to,
        limit,
    )
    client = STATE.remote
    views = (
        remote.list_requests(client, flt=flt, sort=sort)
        if client is not None
        else svc.list_requests(STATE.db, actor=STATE.actor, flt=flt, sort=sort)
    )
    if STATE.json:
        render.emit_json(views)
        return
    render.show_table(
        Table(
            "access requests",
            [
                Column("id"),
                Column("project"),
                Column("title"),
                Column("state"),
                Column("requester"),
                Column("reviewer"),
                Column("created", "time"),
                Column("decided", "time"),
            ],
            [
                (
                    v.id,
                    v.project_id,
                    v.title,
                    v.state,
                    v.requester,
                    v.reviewer,
                    v.created_at,
                    v.decided_at,
                )
                for v in views
            ],
        ),
        limit_width=("title",),
    )


@app.command()
def show(request_id: RequestId) -> None:
    """A request's fields, its timeline and the time spent in each state."""
    detail = _get(request_id)
    if STATE.json:
        render.emit_json(detail)
        return
    r, tz = detail.request, STATE.tz
    STATE.out.print(
        Panel(
            render.kv_table(
                [
                    ("id", r.id),
                    ("project", r.project_id),
                    ("title", r.title),
                    ("state", render.state_for(r.state, detail.current_state_for)),
                    ("requester", r.requester),
                    ("institution", r.institution),
                    ("project lead", r.project_lead),
                    ("intended use", r.intended_use),
                    ("datasets", ", ".join(r.datasets)),
                    ("data-use (DUO)", ", ".join(r.duo_codes)),
                    ("reviewer", r.reviewer),
                    ("decision", r.decision_reason),
                    ("decided", format_time(r.decided_at, tz) if r.decided_at else None),
                    ("expires", format_time(r.expires_at, tz) if r.expires_at else None),
                    ("external id", r.external_id),
                    ("version", r.version),
                    ("you may now", ", ".join(detail.available_actions) or "nothing"),
                ]
            ),
            title=r.id,
            title_align="left",
        )
    )
    render.show_timeline(detail.timeline)
    render.show_table(
        Table(
            "time in each state",
            [Column("state"), Column("total", "duration")],
            sorted(detail.time_in_state.items(), key=lambda kv: -kv[1]),
        )
    )


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV, TSV or JSON lines; one row per state change (see docs/access-requests.md)."
        ),
    ],
    project: Annotated[str, typer.Option("--project", "-p", help="Project to import into.")],
    assume_tz: Annotated[
        str | None,
        typer.Option(help="Zone of timestamps that carry no offset (default: refuse them)."),
    ] = None,
    create_users: Annotated[
        bool, typer.Option(help="Create users named in the file that do not exist yet.")
    ] = False,
) -> None:
    """Import request histories with their original timestamps (all rows or none)."""
    from steward.timeutil import zone

    result = importer.import_requests(
        STATE.db,
        actor=STATE.actor,
        project=project,
        path=file,
        assume_tz=zone(assume_tz) if assume_tz else None,
        create_users=create_users,
    )
    if STATE.json:
        render.emit_json(result.__dict__)
        return
    STATE.out.print(
        f"Imported {result.requests} request(s) with {result.events} event(s); "
        f"{result.skipped} already present were skipped"
        + (f"; created users {', '.join(result.users_created)}" if result.users_created else "")
        + "."
    )


@app.command("expire-due")
def expire_due() -> None:
    """Expire every approved request whose expiry date has passed (safe to run on a schedule)."""
    done = svc.expire_due(STATE.db, actor=STATE.actor)
    if STATE.json:
        render.emit_json({"expired": done})
    else:
        STATE.out.print(
            f"Expired {len(done)} request(s)" + (": " + ", ".join(done) if done else "")
        )
