"""``steward site …``: the sites (biobanks, nodes) that run analyses, and their analysts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.panel import Panel

from steward.cli import render
from steward.cli.backend import run
from steward.cli.state import STATE
from steward.services import sites
from steward.services.sites import MembershipChange
from steward.tables import Column, Table
from steward.timeutil import format_time

app = typer.Typer(
    help="Sites (biobanks, nodes) that run analyses, and their analysts.", no_args_is_help=True
)

SiteId = Annotated[str, typer.Argument(help="Site id (lower case), e.g. fin-biobank.")]
UserId = Annotated[str, typer.Argument(help="User (an analyst of the site).")]


def register(root: typer.Typer) -> None:
    """Add ``site`` to the root command."""
    root.add_typer(app, name="site")


@app.command("add")
def add(
    site_id: SiteId,
    name: Annotated[str, typer.Option(help="The site's name, e.g. 'Finnish Biobank'.")],
    description: Annotated[str, typer.Option(help="What the site is or holds.")] = "",
) -> None:
    """Add a site (administrators only). Running it again with the same name changes nothing."""
    view = run(sites.add_site, site_id=site_id, name=name, description=description)
    if STATE.json:
        render.emit_json(view)
    else:
        STATE.out.print(f"Site [bold]{view.id}[/bold] ({view.name}) ready", highlight=False)


@app.command("list")
def list_() -> None:
    """Sites you may see: all of them for administrators and stewards, an analyst's own."""
    views = run(sites.list_sites)
    rows = [
        (v.id, v.name, v.member_count, v.description, v.created_at, v.created_by) for v in views
    ]
    render.show_table(
        Table(
            "sites",
            [
                Column("id"),
                Column("name"),
                Column("members", "int"),
                Column("description"),
                Column("created_at", "time"),
                Column("created_by"),
            ],
            list(rows),
        )
    )


@app.command("show")
def show(site_id: SiteId) -> None:
    """A site and its members."""
    detail = run(sites.show_site, site_id=site_id)
    if STATE.json:
        render.emit_json(detail)
        return
    created = f"{format_time(detail.created_at, STATE.tz)} by {detail.created_by}"
    STATE.out.print(
        Panel(
            render.kv_table(
                [
                    ("name", detail.name),
                    ("description", detail.description),
                    ("created", created),
                    ("members", detail.member_count),
                ]
            ),
            title=detail.id,
            title_align="left",
        )
    )
    render.show_table(
        Table(
            f"members of {detail.id}",
            [
                Column("user"),
                Column("display_name"),
                Column("role"),
                Column("added_at", "time"),
                Column("added_by"),
            ],
            [(m.user, m.display_name, m.role, m.added_at, m.added_by) for m in detail.members],
        )
    )


def _changed(change: MembershipChange, did: str, already: str) -> None:
    if STATE.json:
        render.emit_json(change)
    elif change.changed:
        STATE.out.print(f"{change.user} {did} {change.site}", highlight=False)
    else:
        STATE.out.print(f"{change.user} {already} {change.site}: nothing changed", highlight=False)


@app.command("add-member")
def add_member(site_id: SiteId, user_id: UserId) -> None:
    """Make a user an analyst of a site (administrators only); already one: nothing changes."""
    change = run(sites.add_member, site_id=site_id, user_id=user_id)
    _changed(change, "is now an analyst of", "already is an analyst of")


@app.command("remove-member")
def remove_member(site_id: SiteId, user_id: UserId) -> None:
    """Take a user off a site (administrators only); not a member: nothing changes."""
    change = run(sites.remove_member, site_id=site_id, user_id=user_id)
    _changed(change, "is no longer a member of", "is not a member of")
