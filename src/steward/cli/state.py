"""Per-invocation CLI state: settings, the database handle and output preferences."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from rich.console import Console

from steward.config import Settings, load_settings
from steward.db.session import Database
from steward.errors import ConfigurationError, Detail, Unauthenticated, ValidationFailed
from steward.remote.client import Client
from steward.timeutil import zone


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich exits with status 1 when the reader goes away (`steward … | head`); raise instead
        # so the entry point can call it what it is: the reader had what it wanted.
        raise BrokenPipeError


def _console() -> Console:
    # Piped output has no width of its own: use a wide page rather than Rich's 80 columns.
    return _Console(soft_wrap=False, width=None if sys.stdout.isatty() else 180)


@dataclass
class CliState:
    actor_flag: str | None = None
    json: bool = False
    tz_name: str | None = None
    out: Console = field(default_factory=_console)
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))
    server_flag: str | None = None
    token_flag: str | None = None
    _settings: Settings | None = None
    _db: Database | None = None
    _remote: Client | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def server(self) -> str | None:
        return self.server_flag or self.settings.server

    @property
    def remote(self) -> Client | None:
        """The server the command works against, or None to use the database."""
        server = self.server
        if not server:
            return None
        if self._remote is None:
            if self.actor_flag:
                raise ValidationFailed(
                    "against a server you act as your token's owner: drop --as",
                    [Detail("not with --server", field="--as", value=self.actor_flag)],
                )
            from steward.remote.login import stored_token

            secret = self.settings.token.get_secret_value() if self.settings.token else None
            token = self.token_flag or secret or stored_token(server)
            if not token:
                raise Unauthenticated(
                    f"no token for {server}: run `steward login {server}`, or pass --token "
                    "(or set STEWARD_TOKEN)",
                    [Detail("missing", field="token")],
                )
            self._remote = Client(server, token)
        return self._remote

    def local_only(self) -> ValidationFailed:
        """What a command that needs the database says when told to use a server."""
        import click

        ctx = click.get_current_context(silent=True)
        name = ctx.command_path if ctx is not None else "this command"
        return ValidationFailed(
            f"`{name}` works on the database itself and does not run against a server: run "
            "it where the database is (without --server or STEWARD_SERVER)",
            [Detail("local only", field="--server", value=self.server)],
        )

    @property
    def db(self) -> Database:
        if self.server:
            raise self.local_only()
        if self._db is None:
            from sqlalchemy.exc import ArgumentError, NoSuchModuleError

            try:
                self._db = Database(self.settings)
            except (ArgumentError, NoSuchModuleError, ImportError) as exc:
                raise ConfigurationError(
                    f"STEWARD_DATABASE_URL is not a usable database URL: {exc}",
                    [
                        Detail(
                            "cannot use this URL",
                            field="STEWARD_DATABASE_URL",
                            accepted="sqlite:///PATH or postgresql+psycopg://user:password@host/db",
                        )
                    ],
                ) from None
        return self._db

    @property
    def actor(self) -> str | None:
        return self.actor_flag or self.settings.user

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.tz_name if self.tz_name is not None else self.settings.timezone)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
        if self._remote is not None:
            self._remote.close()


STATE = CliState()


def reset() -> CliState:
    """A fresh state per invocation (tests call main() many times in one process).

    The object is refilled in place so modules that imported ``STATE`` see the new values.
    """
    STATE.close()
    STATE.__dict__.update(CliState().__dict__)
    return STATE
