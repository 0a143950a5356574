"""``steward user passwd|disable|enable``: passwords for signing in to the server, and
disabling accounts."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from steward.cli import render
from steward.cli.state import STATE
from steward.errors import Detail, ValidationFailed
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
            "--password-stdin", help="Read the password from the first line of stdin (scripts)."
        ),
    ] = False,
) -> None:
    """Set a password for signing in to the server (`steward login`, the web): asked twice
    without echo. Your own, or anyone's for administrators; their browser sessions end."""
    db = STATE.db  # before asking: a command that cannot run says so first
    actor = STATE.actor
    password = _read_password(password_stdin)
    view = accounts.set_password(db, actor=actor, user_id=user_id, password=password)
    _done(view, f"Password set for [bold]{view.id}[/bold].")


def disable(
    user_id: Annotated[str, typer.Argument(help="The user to disable.")],
) -> None:
    """Disable an account (administrators only): its API tokens and browser sessions stop
    working at once, it cannot sign in, and nobody may act as it (`--as`)."""
    view = accounts.disable(STATE.db, actor=STATE.actor, user_id=user_id)
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
    view = accounts.enable(STATE.db, actor=STATE.actor, user_id=user_id)
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
