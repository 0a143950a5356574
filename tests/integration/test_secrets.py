"""Credentials never reach the screen: real `steward` processes, real PostgreSQL URLs.

The password is given every way a URL allows at once (user info, ``?password=``,
``?sslpassword=``), and every run is searched for each secret on standard output and
standard error, in plain and ``--json`` mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg

SECRETS = ("Userinfo-S3cret", "Query-S3cret", "Ssl-S3cret")
COMMANDS = [["init"], ["request", "list", "--as", "ada"], ["report", "tracking", "--as", "ada"]]


def with_secrets(base: str) -> str:
    """``base`` (scheme://user@host:port/db) with all three secrets in it."""
    scheme, rest = base.split("://", 1)
    user, where = rest.split("@", 1)
    return f"{scheme}://{user}:{SECRETS[0]}@{where}?password={SECRETS[1]}&sslpassword={SECRETS[2]}"


def run_steward(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env |= {
        "STEWARD_HOME": str(tmp_path / "home"),
        "STEWARD_DATABASE_URL": url,
        "STEWARD_CONNECT_TIMEOUT": "3",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "steward", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def assert_no_secret(proc: subprocess.CompletedProcess[str]) -> None:
    for secret in SECRETS:
        assert secret not in proc.stdout, proc.stdout
        assert secret not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_unreachable_postgres_shows_no_credential(tmp_path: Path, argv: list[str]) -> None:
    """Issue 8 item 8: `?password=` was printed in clear when the server could not be reached."""
    url = with_secrets(f"postgresql+psycopg://steward@127.0.0.1:{pg.free_port()}/steward")
    proc = run_steward(tmp_path, url, *argv)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert_no_secret(proc)
    assert proc.stderr.startswith(
        "error: cannot reach the database at postgresql+psycopg://steward:***@127.0.0.1:"
    )
    assert "/steward?password=***&sslpassword=***: connection failed" in proc.stderr

    proc = run_steward(tmp_path, url, "--json", *argv)
    assert (proc.returncode, proc.stderr) == (1, "")
    assert_no_secret(proc)
    problem = json.loads(proc.stdout)
    assert problem["code"] == "database-unavailable"
    assert "?password=***&sslpassword=***" in problem["detail"]


@pytest.mark.postgres
def test_reachable_server_refusing_the_database_shows_no_credential(
    tmp_path: Path, pg_base_url: str
) -> None:
    """The server answers and refuses (no such database): the driver's own message is shown,
    the credentials are not."""
    url = with_secrets(f"{pg_base_url}/no_such_database")
    for args in (["request", "list", "--as", "ada"], ["--json", "init"]):
        proc = run_steward(tmp_path, url, *args)
        assert proc.returncode == 1
        assert_no_secret(proc)
        shown = json.loads(proc.stdout)["detail"] if "--json" in args else proc.stderr
        assert 'database "no_such_database" does not exist' in shown


@pytest.mark.parametrize(
    "url",
    [
        # A port SQLAlchemy cannot parse: used to end in a traceback quoting the URL.
        f"postgresql+psycopg://steward:{SECRETS[0]}@127.0.0.1:notaport/db?password={SECRETS[1]}",
        # A libpq keyword string instead of a URL.
        f"host=127.0.0.1 user=steward password={SECRETS[0]} sslpassword='{SECRETS[2]}'",
        # A driver that is not installed.
        f"mysql+nosuchdriver://steward:{SECRETS[0]}@127.0.0.1/db?password={SECRETS[1]}",
    ],
    ids=["bad-port", "keyword-string", "unknown-driver"],
)
def test_an_unusable_url_is_refused_without_showing_it(tmp_path: Path, url: str) -> None:
    proc = run_steward(tmp_path, url, "request", "list", "--as", "ada")
    assert proc.returncode == 1
    assert_no_secret(proc)
    assert proc.stderr.startswith("error: STEWARD_DATABASE_URL is not a usable database URL")
    proc = run_steward(tmp_path, url, "--json", "request", "list", "--as", "ada")
    assert (proc.returncode, proc.stderr) == (1, "")
    assert_no_secret(proc)
    problem = json.loads(proc.stdout)
    assert problem["code"] == "configuration"
    assert problem["errors"][0]["field"] == "STEWARD_DATABASE_URL"
    assert "***" in problem["errors"][0]["value"]


def test_debug_logging_shows_no_credential(tmp_path: Path) -> None:
    """With every library logging at DEBUG (as a service might), no log line holds a secret,
    not even one that logs the URL itself once Steward has read its settings."""
    url = with_secrets(f"postgresql+psycopg://steward@127.0.0.1:{pg.free_port()}/steward")
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "from steward.cli.app import main\n"
        "code = main(['request', 'list', '--as', 'ada'])\n"
        "logging.getLogger('probe').warning('used %s', sys.argv[1])\n"
        "sys.exit(code)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env |= {"STEWARD_HOME": str(tmp_path / "home"), "STEWARD_DATABASE_URL": url}
    proc = subprocess.run(
        [sys.executable, "-c", code, url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert_no_secret(proc)
    assert "WARNING:probe:used postgresql+psycopg://steward:***@127.0.0.1:" in proc.stderr
