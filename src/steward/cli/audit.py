"""``steward audit``: read the audit log (refusals and security-relevant changes)."""

from __future__ import annotations

from typing import Annotated

import typer

from steward.cli import options as o
from steward.cli import render
from steward.cli.backend import run
from steward.cli.state import STATE
from steward.services import audit as audit_service
from steward.services.audit import AuditView
from steward.tables import Column, Table


def register(root: typer.Typer) -> None:
    """Add ``audit`` to the root command."""
    root.command("audit")(audit)


def audit(
    who: Annotated[str | None, typer.Option(help="Only what this user did (or tried).")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, e.g. token-create, site-show.")
    ] = None,
    outcome: Annotated[
        str | None, typer.Option(help="Only done (changes) or denied (refusals).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Only entries about this subject id (a token, a site…).")
    ] = None,
    subject_kind: Annotated[
        str | None, typer.Option(help="Only entries about this kind of subject, e.g. site.")
    ] = None,
    project: o.Project = None,
    since: Annotated[
        str | None, typer.Option(help="On or after this date/time (YYYY-MM-DD, in --tz).")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="On or before this date (whole day included) or before this time."),
    ] = None,
    limit: o.Limit = None,
) -> None:
    """The audit log, newest first: refusals and security-relevant changes (tokens, sites).

    Administrators read every entry; a project's stewards read the entries of their projects.
    """
    start = o.parse_bound(since, "since", end=False)
    end = o.parse_bound(until, "until", end=True)
    wanted = limit or None
    entries: list[AuditView] = []
    after: str | None = None
    while True:
        size = (
            audit_service.MAX_PAGE
            if wanted is None
            else min(audit_service.MAX_PAGE, wanted - len(entries))
        )
        page = run(
            audit_service.query,
            who=who,
            action=action,
            outcome=outcome,
            subject_kind=subject_kind,
            subject_id=subject,
            project=project,
            since=start,
            until=end,
            limit=size,
            after=after,
        )
        entries += page.items
        after = page.next
        if after is None or (wanted is not None and len(entries) >= wanted):
            break
    if STATE.json:
        render.emit_json(entries)
        return
    render.show_table(
        Table(
            "audit log",
            [
                Column("at", "time"),
                Column("actor"),
                Column("action"),
                Column("outcome"),
                Column("project"),
                Column("subject"),
                Column("reason"),
            ],
            [_row(e) for e in entries],
        )
    )


def _row(e: AuditView) -> tuple[object, ...]:
    subject = f"{e.subject_kind or '-'} {e.subject_id}" if e.subject_id else e.subject_kind
    return (e.at, e.actor, e.action, e.outcome, e.project, subject, e.reason)
