"""``steward share …``: push built packages to object storage or hand out presigned links.

Against a server (``--server``) the same commands go through its API
(:mod:`steward.remote.shares`): pushes run on the server's worker while the command shows
their progress, and download scripts are written on this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from steward.cli import backend, render
from steward.cli import options as o
from steward.cli.progress import bar
from steward.cli.state import STATE
from steward.outfiles import PRIVATE_SCRIPT, check_target, write_output
from steward.remote import shares as remote
from steward.remote.client import Client
from steward.services import package_build, places, shares
from steward.services.shares import ShareView
from steward.tables import Column, Table
from steward.timeutil import format_time

app = typer.Typer(
    help="Shares: send a built package somewhere, or give a recipient a download script.",
    no_args_is_help=True,
)

ShareId = Annotated[str, typer.Argument(help="Share id (shr_…).")]
PackageId = Annotated[str, typer.Argument(help="Package id (pkg_…).")]


def _push(package_id: str, destination: str, concurrency: int | None) -> ShareView:
    client = STATE.remote
    if client is not None:
        return _push_there(client, package_id, destination, concurrency)
    with bar("pushing") as (start, advance):
        return shares.push(
            STATE.db,
            STATE.settings,
            actor=STATE.actor,
            package_id=package_id,
            destination=destination,
            concurrency=concurrency,
            progress=shares.PushProgress(start=start, advance=advance),
        )


def _push_there(
    client: Client, package_id: str, destination: str, concurrency: int | None
) -> ShareView:
    """Queue the push on the server and follow it until it ends."""
    share, action_id = remote.request_push(
        client, package_id=package_id, destination=destination, concurrency=concurrency
    )
    if action_id is None:  # sent already (or being sent by someone): as a local push says
        return share
    try:
        with bar("pushing") as (start, advance):
            progress = package_build.BuildProgress(start=start, advance=advance)
            return remote.follow_push(client, share.id, action_id, progress=progress)
    except KeyboardInterrupt:
        STATE.err.print(
            f"stopped waiting (Ctrl-C); the server goes on sending {share.id}: "
            f"`steward jobs show {action_id}` follows it",
            markup=False, highlight=False,
        )  # fmt: skip
        raise typer.Exit(130) from None


@app.command()
def push(
    package_id: PackageId,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="s3://bucket/prefix/ (endpoint and keys from settings) or a folder "
            "(file:///dir or an absolute path). The package lands in a sub-folder named after "
            "it, which may not lie in STEWARD_HOME or the package's source folders. With "
            "--server: a place the server reaches, inside its api_push_roots.",
        ),
    ],
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Objects sent at once (default: 4+).")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            help="--wait (the default): send in this process, showing progress. --no-wait: "
            "queue the push and print the share id at once; `steward worker` sends it."
        ),
    ] = True,
) -> None:
    """Send a built package and verify every object; re-running resumes, skipping what arrived.

    The destination is checked (bucket exists, keys accepted) before any data moves. Each
    object is verified after upload (size and checksum) and written to the share registry.
    """
    if not wait:
        client = STATE.remote
        queued, action_id = (
            remote.request_push(
                client, package_id=package_id, destination=to, concurrency=concurrency
            )
            if client is not None
            else shares.request_push(
                STATE.db, STATE.settings, actor=STATE.actor, package_id=package_id,
                destination=to, concurrency=concurrency,
            )
        )  # fmt: skip
        if STATE.json:
            render.emit_json({"share": queued, "action_id": action_id})
        elif action_id:
            STATE.out.print(
                f"{queued.id} queued ({action_id}): `steward worker` sends it; "
                f"`steward jobs show {action_id}` follows it"
            )
        else:
            render.done(queued, "not queued")
        return
    view = _push(package_id, to, concurrency)
    render.done(view, "pushed")


@app.command()
def presign(
    package_id: PackageId,
    expires: Annotated[
        str, typer.Option(help="How long the links work: e.g. 12h, 3d, 7d (S3 allows at most 7d).")
    ] = "7d",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write the script, in an existing folder (default: "
            "STEWARD_HOME/shares/SHARE/download-PACKAGE.sh).",
        ),
    ] = None,
    from_share: Annotated[
        str | None,
        typer.Option(help="Use the objects of this push share (default: the latest to S3)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --output file if it exists.")
    ] = False,
) -> None:
    """Write a POSIX sh download script with presigned links to a pushed package.

    The script downloads with curl (--fail, retries, resume), checks every sha256, skips
    files already complete and says plainly when its links have expired. Its links work like
    passwords, so it is written readable by you alone (0700) and hands them to curl on
    standard input, never on a command line other users can see. With --server the server
    signs the links and the script is written on this machine (--output, or STEWARD_HOME here).
    """
    lifetime = o.parse_lifetime(expires)
    client = STATE.remote
    if client is not None:
        view = _presign_there(client, package_id, expires, output, from_share, force)
    else:
        view = shares.presign(
            STATE.db,
            STATE.settings,
            actor=STATE.actor,
            package_id=package_id,
            expires=lifetime,
            output=output,
            from_share=from_share,
            force=force,
        )
    if STATE.json:
        render.emit_json(view)
        return
    assert view.links_expire_at is not None
    STATE.out.print(
        f"{view.id}: download script for {view.object_count} file(s), "
        f"{render.size(view.bytes_total)}, links valid until "
        f"{format_time(view.links_expire_at, STATE.tz)}\n{view.script_path}\n"
        "Send the script to the recipient; they run: sh SCRIPT --dest DIR"
    )


def _presign_there(
    client: Client,
    package_id: str,
    expires: str,
    output: Path | None,
    from_share: str | None,
    force: bool,
) -> ShareView:
    """The server signs the links; the script they come in is written here, 0700, where
    ``output`` says (checked before anything is asked for) or in STEWARD_HOME/shares."""
    if output is not None:
        places.refuse_script_target(STATE.settings, output, (), field="output")
        check_target(output, overwrite=force, field="output")
    made = remote.presign(client, package_id=package_id, expires=expires, from_share=from_share)
    target = output or (
        STATE.settings.home / places.SHARES_FOLDER / made.share.id / made.script_name
    )
    # The default place is this new share's own folder: only the server itself may have
    # written there (the CLI on the server's machine), and then the very same script.
    written = write_output(
        target, made.script, mode=PRIVATE_SCRIPT, overwrite=force or output is None,
        parents=output is None, field="output",
    )  # fmt: skip
    return made.share.model_copy(update={"script_path": str(written.resolve())})


@app.command("list")
def list_(
    project: o.Project = None,
    package: Annotated[str | None, typer.Option(help="Only shares of this package.")] = None,
    state: o.States = None,
    method: Annotated[str | None, typer.Option(help="push or presign.")] = None,
    destination: Annotated[
        str | None, typer.Option(help="Only destinations containing this text.")
    ] = None,
    created_from: o.CreatedFrom = None,
    created_to: o.CreatedTo = None,
    completed_from: o.CompletedFrom = None,
    completed_to: o.CompletedTo = None,
    limit: o.Limit = None,
    sort: o.Sort = "created",
) -> None:
    """List shares; every filter combines with the others."""
    flt = o.filter_of(
        shares.SHARE,
        project=project,
        state=state,
        limit=limit,
        package=package,
        method=method,
        destination=destination,
        created_from=created_from,
        created_to=created_to,
        completed_from=completed_from,
        completed_to=completed_to,
    )
    views = backend.listed(
        shares.SHARE, flt, sort,
        lambda: shares.list_shares(STATE.db, actor=STATE.actor, flt=flt, sort=sort),
    )  # fmt: skip
    if STATE.json:
        render.emit_json(views)
        return
    render.show_table(
        Table(
            "shares",
            [
                Column("id"),
                Column("package"),
                Column("method"),
                Column("state"),
                Column("destination"),
                Column("objects", "int"),
                Column("size"),
                Column("created", "time"),
                Column("completed", "time"),
            ],
            [
                (
                    v.id,
                    v.package_id,
                    v.method,
                    v.state,
                    v.destination,
                    v.object_count,
                    render.size(v.bytes_total),
                    v.created_at,
                    v.completed_at,
                )
                for v in views
            ],
        ),
        limit_width=("destination",),
    )


@app.command()
def show(
    share_id: ShareId,
    objects: Annotated[bool, typer.Option(help="Also list every object in the registry.")] = False,
) -> None:
    """A share's fields, its registry totals and timeline."""
    client = STATE.remote
    if client is not None:
        detail = remote.get(client, share_id=share_id)
        registry = remote.objects(client, share_id=share_id) if objects else []
    else:
        detail = shares.get(STATE.db, actor=STATE.actor, share_id=share_id)
        registry = shares.objects(STATE.db, actor=STATE.actor, share_id=share_id) if objects else []
    if STATE.json:
        render.emit_json({"detail": detail, "objects": registry} if objects else detail)
        return
    v, tz = detail.share, STATE.tz
    STATE.out.print(
        Panel(
            render.kv_table(
                [
                    ("id", v.id),
                    ("package", v.package_id),
                    ("method", v.method),
                    ("destination", v.destination),
                    ("state", render.state_for(v.state, detail.current_state_for)),
                    ("failure", v.failure_reason),
                    (
                        "registry",
                        f"{detail.registered_objects} object(s), "
                        f"{render.size(detail.registered_bytes)} verified",
                    ),
                    (
                        "links expire",
                        format_time(v.links_expire_at, tz) if v.links_expire_at else None,
                    ),
                    ("script", v.script_path),
                    ("created", f"{format_time(v.created_at, tz)} by {v.created_by}"),
                    ("completed", format_time(v.completed_at, tz) if v.completed_at else None),
                    ("you may now", ", ".join(detail.available_actions) or "nothing"),
                ]
            ),
            title=v.id,
            title_align="left",
        )
    )
    if objects:
        render.show_table(
            Table(
                "registry",
                [
                    Column("key"),
                    Column("size"),
                    Column("sha256"),
                    Column("skipped"),
                    Column("verified", "time"),
                ],
                [
                    (r.key, render.size(r.size), r.sha256, r.skipped, r.verified_at)
                    for r in registry
                ],
            )
        )
    render.show_timeline(detail.timeline)


@app.command()
def abort(
    share_id: ShareId,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Why.")] = None,
) -> None:
    """Stop a share for good (objects already sent stay where they are)."""
    render.done(
        backend.acted(
            shares.SHARE,
            share_id,
            "abort",
            lambda: shares.act(
                STATE.db, actor=STATE.actor, share_id=share_id, command="abort", reason=reason
            ),
            reason=reason,
        ),
        "aborted",
    )


@app.command()
def comment(share_id: ShareId, text: Annotated[str, typer.Argument(help="The note.")]) -> None:
    """Add a note to a share's timeline."""
    render.done(
        backend.acted(
            shares.SHARE,
            share_id,
            "comment",
            lambda: shares.act(
                STATE.db, actor=STATE.actor, share_id=share_id, command="comment", text=text
            ),
            text=text,
        ),
        "noted",
    )
