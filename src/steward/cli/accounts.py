"""``steward user passwd|disable|enable``: passwords for signing in to the server, and
disabling accounts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from steward.cli import render
from steward.cli.backend import run
from steward.cli.state import STATE
from steward.errors import Detail, ValidationFailed
from steward.remote import admin as remote
from steward.services import accounts
from steward.services.access import UserView
from steward.timeutil import format_time


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = typer.get_text_stream("stdin").readline()
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise ValidationFailed(
            "there is no terminal to ask for the password on: pipe it in with --password-stdin",
            [Detail("no terminal", field="--password-stdin", accepted="--password-stdin")],
        )
    password: str = typer.prompt(
        "new password", hide_input=True, confirmation_prompt="repeat the new password"
    )
    return password


def passwd(
    user_id: Annotated[str, typer.Argument(help="Whose password (yours, or anyone's for admins).")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password from the first line of stdin (scripts); against a server, "
            "changing your own: the current one from the first line, the new from the second.",
        ),
    ] = False,
) -> None:
    """Set a password for signing in to the server (`steward login`, the web): asked twice
    without echo. Your own, or anyone's for administrators; their browser sessions end.

    Against a server (`--server`), changing your own password also asks for the current one:
    a token alone does not get to set a password that would outlive it."""
    client = STATE.remote
    if client is None:
        db = STATE.db  # before asking: a command that cannot run says so first
        password = _read_password(password_stdin)
        view = accounts.set_password(db, actor=STATE.actor, user_id=user_id, password=password)
    else:
        mine = remote.whoami(client)["user"] == user_id
        current = _read_current(password_stdin) if mine else None
        password = _read_password(password_stdin)
        view = remote.set_password(client, user_id=user_id, password=password, current=current)
    _done(view, f"Password set for [bold]{view.id}[/bold].")


def _read_current(from_stdin: bool) -> str:
    """Against a server, changing your own password takes the current one (empty when you
    have none yet): the first line of stdin, or asked without echo."""
    if from_stdin:
        line = typer.get_text_stream("stdin").readline()
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        return _read_password(False)  # says to use --password-stdin
    current: str = typer.prompt("current password", hide_input=True, default="",
                                show_default=False)  # fmt: skip
    return current


def disable(
    user_id: Annotated[str, typer.Argument(help="The user to disable.")],
) -> None:
    """Disable an account (administrators only): its API tokens and browser sessions stop
    working at once, it cannot sign in, and nobody may act as it (`--as`)."""
    view = run(accounts.disable, user_id=user_id)
    when = format_time(view.disabled_at, STATE.tz) if view.disabled_at else "-"
    _done(
        view,
        f"User [bold]{view.id}[/bold] disabled since {when}: their tokens and sessions do not "
        "work until `steward user enable`.",
    )


def enable(
    user_id: Annotated[str, typer.Argument(help="The user to enable again.")],
) -> None:
    """Enable a disabled account again (administrators only): its unexpired, unrevoked tokens
    work again; browser sessions must sign in anew."""
    view = run(accounts.enable, user_id=user_id)
    _done(view, f"User [bold]{view.id}[/bold] enabled.")


def _done(view: UserView, message: str) -> None:
    if STATE.json:
        render.emit_json(view)
    else:
        STATE.out.print(message, highlight=False)


def register(user_app: typer.Typer) -> None:
    user_app.command("passwd")(passwd)
    user_app.command("disable")(disable)
    user_app.command("enable")(enable)
