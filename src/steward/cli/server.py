"""``steward serve`` (the API, with an embedded worker) and ``steward token`` (API tokens)."""

from __future__ import annotations

from typing import Annotated

import typer

from steward.cli import options as o
from steward.cli import render
from steward.cli.backend import run
from steward.cli.state import STATE
from steward.errors import ConfigurationError, Detail
from steward.services import sessions, tokens
from steward.tables import Column, Table
from steward.timeutil import format_time

token_app = typer.Typer(
    help="Personal API tokens: for scripts and the CLI against a server (`Authorization: "
    "Bearer TOKEN`).",
    no_args_is_help=True,
)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(min=1, max=64, help="Server processes (more than one needs PostgreSQL)."),
    ] = 1,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Also run the job queue in this process (builds, pushes, webhooks).",
        ),
    ] = True,
) -> None:
    """Serve the REST API (`/api/v1`, description at `/api/openapi.json`, browsable at
    `/api/docs`) with `/healthz` and `/readyz` for load balancers.

    With no other setup it serves the embedded SQLite database at http://127.0.0.1:8000 and
    runs the job queue in the same process. Every call needs a token: `steward token create`.
    """
    import os

    import uvicorn

    settings = STATE.settings
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    listening = f"http://{shown}:{port}"
    if workers > 1 and not settings.resolved_database_url.startswith("postgresql"):
        raise ConfigurationError(
            "--workers above 1 needs PostgreSQL: SQLite takes one writer at a time, and several "
            "server processes would mostly wait for each other",
            [
                Detail(
                    "needs PostgreSQL",
                    field="workers",
                    value=str(workers),
                    accepted="1 on SQLite; set STEWARD_DATABASE_URL=postgresql://… for more",
                )
            ],
        )
    STATE.err.print(
        f"Steward API on http://{host}:{port}/api/v1 (docs: /api/docs); "
        f"{'with' if worker else 'without'} the job queue; Ctrl-C stops.",
        highlight=False,
    )
    if workers == 1:
        from steward.api.app import create_app

        app = create_app(settings, worker=worker, listening=listening)
        uvicorn.run(app, host=host, port=port,
                    log_level="warning", server_header=False)  # fmt: skip
        return
    # Several processes: each builds its app from the environment; one queue runner is enough
    # per machine, and `steward worker` scales it separately.
    os.environ["STEWARD_SERVE_WORKER"] = "1" if worker else "0"
    os.environ["STEWARD_SERVE_LISTENING"] = listening
    os.environ["STEWARD_HOME"] = str(settings.home)
    os.environ["STEWARD_DATABASE_URL"] = settings.resolved_database_url
    uvicorn.run("steward.api.app:factory", factory=True, host=host, port=port,
                workers=workers, log_level="warning", server_header=False)  # fmt: skip


@token_app.command("create")
def token_create(
    scope: Annotated[
        str, typer.Option(help="read (look only), write (also act) or admin (administrators).")
    ] = "read",
    expires: Annotated[
        str, typer.Option(help="How long it works: 90d, 12h, 2w (at most 366d).")
    ] = "90d",
    name: Annotated[str, typer.Option(help="What it is for, to recognise it in the list.")] = "",
    user: Annotated[
        str | None, typer.Option(help="Make it for this user (administrators only).")
    ] = None,
) -> None:
    """Make a token and print it once: it is kept only as a hash, so copy it now."""
    made = run(
        tokens.create,
        scope=scope,
        expires_in=o.parse_lifetime(expires),
        name=name,
        user=user,
    )
    if STATE.json:
        render.emit_json(made)
        return
    t = made.token
    STATE.err.print(
        f"Token {t.id} ({t.scope}) for {t.user_id}, until {format_time(t.expires_at, STATE.tz)}."
        " It is shown only now; keep it like a password:",
        highlight=False,
    )
    STATE.out.print(made.secret, highlight=False, markup=False, soft_wrap=True)


@token_app.command("list")
def token_list(
    everyone: Annotated[
        bool, typer.Option("--all", help="Every user's tokens (administrators only).")
    ] = False,
) -> None:
    """Your tokens with their scope, expiry and last use (never their secrets)."""
    views = run(tokens.list_tokens, everyone=everyone)
    render.show_table(
        Table(
            "API tokens",
            [
                Column("id"),
                Column("user"),
                Column("name"),
                Column("scope"),
                Column("created", "time"),
                Column("expires", "time"),
                Column("last used", "time"),
                Column("revoked", "time"),
            ],
            [
                (
                    v.id,
                    v.user_id,
                    v.name,
                    v.scope,
                    v.created_at,
                    v.expires_at,
                    v.last_used_at,
                    v.revoked_at,
                )
                for v in views
            ],
        )
    )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tok_…, from `token list`).")],
) -> None:
    """Stop a token at once; calls with it are refused from now on."""
    view = run(tokens.revoke, token_id=token_id)
    if STATE.json:
        render.emit_json(view)
        return
    when = format_time(view.revoked_at, STATE.tz) if view.revoked_at else "-"
    STATE.out.print(f"{view.id} revoked ({when})", highlight=False)


def login(
    server: Annotated[str, typer.Argument(help="The server, e.g. https://steward.example.org.")],
    token_stdin: Annotated[
        bool,
        typer.Option(
            "--token-stdin",
            help="Read an existing token (from `steward token create` or the web) from stdin "
            "instead of signing in with a password.",
        ),
    ] = False,
    user: Annotated[str | None, typer.Option(help="Your user id (asked if not given).")] = None,
    scope: Annotated[str, typer.Option(help="read or write.")] = "write",
    expires: Annotated[str, typer.Option(help="How long the new token lasts: 90d, 12h…")] = "90d",
) -> None:
    """Keep a token for SERVER, so `--server SERVER` needs nothing more (stored in your config
    folder, readable by you alone)."""
    from steward.remote.client import Client, check_server_url
    from steward.remote.login import store_token

    server = check_server_url(server)
    if token_stdin:
        token = typer.get_text_stream("stdin").readline().strip()
    else:
        who = user or typer.prompt("user")
        password = typer.prompt("password", hide_input=True)
        o.parse_lifetime(expires, "--expires")  # refused here, before the password is sent
        with Client(server, "") as anonymous:
            made = anonymous.call(
                "POST",
                "/api/v1/auth/token",
                body={"user": who, "password": password, "scope": scope, "expires": expires,
                      "name": "steward login"},
            )  # fmt: skip
        token = str(made["secret"])
    with Client(server, token) as client:
        client.call("GET", "/api/v1/requests", params=[("limit", "1")])  # the token works
    path = store_token(server, token)
    STATE.out.print(f"signed in to {server}; token kept in {path}", highlight=False)


def logout(
    server: Annotated[str, typer.Argument(help="The server to forget the token of.")],
) -> None:
    """Forget the token kept for SERVER (revoke it too with `steward token revoke`)."""
    from steward.remote.client import check_server_url
    from steward.remote.login import forget_token

    server = check_server_url(server)
    gone = forget_token(server)
    STATE.out.print(f"{'forgot the token for' if gone else 'no token kept for'} {server}")


session_app = typer.Typer(
    help="Browser sessions (signing in to the server with a password or OIDC): where you are "
    "signed in, and ending a session you do not recognise.",
    no_args_is_help=True,
)


@session_app.command("list")
def session_list(
    everyone: Annotated[
        bool, typer.Option("--all", help="Every user's sessions (administrators only).")
    ] = False,
) -> None:
    """Your browser sessions, newest first: when each began, was last used, ends or ended."""
    views = run(sessions.list_sessions, everyone=everyone)
    render.show_table(
        Table(
            "browser sessions",
            [
                Column("id"),
                Column("user"),
                Column("created", "time"),
                Column("last seen", "time"),
                Column("expires", "time"),
                Column("revoked", "time"),
            ],
            [
                (v.id, v.user_id, v.created_at, v.last_seen_at, v.expires_at, v.revoked_at)
                for v in views
            ],
        )
    )


@session_app.command("revoke")
def session_revoke(
    session_id: Annotated[str, typer.Argument(help="The session's id (ses_…, from the list).")],
) -> None:
    """End a browser session now: the browser must sign in again."""
    view = run(sessions.revoke, session_id=session_id)
    if STATE.json:
        render.emit_json(view)
        return
    when = format_time(view.revoked_at, STATE.tz) if view.revoked_at else "-"
    STATE.out.print(f"{view.id} ended ({when})", highlight=False)


def register(root: typer.Typer) -> None:
    root.command("serve")(serve)
    root.command("login")(login)
    root.command("logout")(logout)
    root.add_typer(token_app, name="token")
    root.add_typer(session_app, name="session")
