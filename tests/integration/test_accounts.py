"""Local accounts on SQLite and PostgreSQL: passwords (argon2id, rehashed when the parameters
change), signing in under a rate limit with one answer for every refusal, disabling and
enabling users — through the services and through ``steward user passwd|disable|enable``."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import inspect, text, update
from sqlalchemy import select as sql_select

from steward.db.models import AuditEntry, LoginFailure, User
from steward.db.session import Database
from steward.errors import (
    Forbidden,
    NotFound,
    StewardError,
    TooManyAttempts,
    Unauthenticated,
    ValidationFailed,
)
from steward.services import access, accounts, tokens
from steward.timeutil import utcnow
from tests.conftest import CliResult, Consortium
from tests.terminal import converse

Cli = Callable[..., CliResult]
PASSWORD = "correct horse battery staple"
HERE = "192.0.2.10"


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log record of the test, at every level, to look for passwords in."""
    caplog.set_level(logging.DEBUG)
    return


def _refusal(db: Database, user: str, password: str, address: str = HERE) -> StewardError:
    with pytest.raises((Unauthenticated, TooManyAttempts)) as caught:
        accounts.login(db, user=user, password=password, address=address)
    return caught.value


def _audit(db: Database, action: str) -> list[AuditEntry]:
    with db.read() as s:
        return list(
            s.scalars(
                sql_select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


def _everything_stored(db: Database) -> str:
    """Every value in every table, as text: where a password must never be."""
    out = []
    with db.read() as s:
        for table in inspect(s.connection()).get_table_names():
            for row in s.execute(text(f'SELECT * FROM "{table}"')):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


# ---- passwords -----------------------------------------------------------------------------
def test_a_password_is_kept_only_as_an_argon2id_hash(consortium: Consortium) -> None:
    c = consortium
    view = accounts.set_password(c.db, actor=c.requester, user_id=c.requester, password=PASSWORD)
    assert view.has_password
    assert view.id == c.requester
    with c.db.read() as s:
        stored = s.get(User, c.requester)
        assert stored is not None
        assert stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in _everything_stored(c.db)
    signed = accounts.login(c.db, user=c.requester, password=PASSWORD, address=HERE)
    assert (signed.user_id, signed.is_admin) == (c.requester, False)


def test_the_password_rule_is_named_and_the_password_never_echoed(
    consortium: Consortium, caplog: pytest.LogCaptureFixture
) -> None:
    c = consortium
    short = "s3cret-pw"
    with pytest.raises(ValidationFailed) as caught:
        accounts.set_password(c.db, actor=c.requester, user_id=c.requester, password=short)
    assert "at least 12 characters" in caught.value.message
    assert short not in json.dumps(caught.value.as_problem())
    with pytest.raises(ValidationFailed) as blank:
        accounts.set_password(c.db, actor=c.requester, user_id=c.requester, password=" " * 20)
    assert "only spaces" in blank.value.message
    with pytest.raises(ValidationFailed) as long:
        accounts.set_password(c.db, actor=c.requester, user_id=c.requester, password="x" * 1025)
    assert "at most 1024" in long.value.message
    assert short not in caplog.text


def test_only_the_user_or_an_administrator_sets_a_password(consortium: Consortium) -> None:
    c = consortium
    with pytest.raises(Forbidden) as caught:
        accounts.set_password(c.db, actor=c.requester2, user_id=c.requester, password=PASSWORD)
    assert "only they or an administrator" in caught.value.message
    denied = [a for a in _audit(c.db, "password-set") if a.outcome == "denied"]
    assert [a.actor for a in denied] == [c.requester2]
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester, password=PASSWORD)
    with pytest.raises(NotFound):
        accounts.set_password(c.db, actor=c.admin, user_id="nobody", password=PASSWORD)
    done = [a for a in _audit(c.db, "password-set") if a.outcome == "done"]
    assert [(a.actor, a.subject_id) for a in done] == [(c.admin, c.requester)]
    assert PASSWORD not in _everything_stored(c.db)


def test_a_hash_made_with_older_parameters_is_replaced_at_sign_in(
    consortium: Consortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = consortium
    current = accounts.HASHER
    monkeypatch.setattr(
        accounts, "HASHER", PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    )
    accounts.set_password(c.db, actor=c.requester, user_id=c.requester, password=PASSWORD)
    with c.db.read() as s:
        old = s.scalars(sql_select(User.password_hash).where(User.id == c.requester)).one()
    assert old is not None
    assert "m=8192,t=1,p=1" in old
    monkeypatch.setattr(accounts, "HASHER", current)
    accounts.login(c.db, user=c.requester, password=PASSWORD, address=HERE)
    with c.db.read() as s:
        new = s.scalars(sql_select(User.password_hash).where(User.id == c.requester)).one()
    assert new is not None
    assert new != old
    assert not current.check_needs_rehash(new)
    accounts.login(c.db, user=c.requester, password=PASSWORD, address=HERE)  # still works


# ---- signing in ----------------------------------------------------------------------------
def test_every_failed_sign_in_reads_the_same(consortium: Consortium) -> None:
    c = consortium
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester, password=PASSWORD)
    accounts.set_password(c.db, actor=c.admin, user_id=c.viewer, password=PASSWORD)
    accounts.disable(c.db, actor=c.admin, user_id=c.viewer)
    refusals = {
        "wrong password": _refusal(c.db, c.requester, PASSWORD + "!"),
        "unknown user": _refusal(c.db, "nobody-here", PASSWORD),
        "no password set": _refusal(c.db, c.steward, PASSWORD),
        "disabled": _refusal(c.db, c.viewer, PASSWORD),
        "not even a name": _refusal(c.db, "Robert'); DROP TABLE users;--", PASSWORD),
    }
    shapes = {json.dumps(e.as_problem(), sort_keys=True) for e in refusals.values()}
    assert len(shapes) == 1, shapes
    assert all(type(e) is Unauthenticated for e in refusals.values())
    assert next(iter(refusals.values())).message == accounts.REFUSED
    # The audit log knows why, and never the password.
    failed = _audit(c.db, "login")
    reasons = [(a.actor, a.reason.split(";")[0], a.outcome) for a in failed]
    assert reasons == [
        (c.requester, "wrong password", "failed"),
        ("nobody-here", "unknown user", "failed"),
        (c.steward, "no password set", "failed"),
        (c.viewer, "account disabled", "failed"),
        ("Robert'); DROP TABLE users;--", "unknown user", "failed"),
    ]
    assert all(HERE in a.reason for a in failed)
    assert PASSWORD not in _everything_stored(c.db)


def test_an_account_is_locked_after_five_failures(consortium: Consortium) -> None:
    c = consortium
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester, password=PASSWORD)
    for i in range(accounts.ACCOUNT_LIMIT):
        assert type(_refusal(c.db, c.requester, f"guess number {i}")) is Unauthenticated
    locked = _refusal(c.db, c.requester, PASSWORD, address="198.51.100.7")  # right, elsewhere
    assert isinstance(locked, TooManyAttempts)
    assert 0 < locked.retry_after <= accounts.WINDOW.total_seconds()
    assert locked.as_problem()["status"] == 429
    # Someone else from the same address is not locked out by it.
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester2, password=PASSWORD)
    assert accounts.login(c.db, user=c.requester2, password=PASSWORD, address=HERE).user_id
    # An unknown name is locked the same way, so the lock tells nothing either.
    for i in range(accounts.ACCOUNT_LIMIT):
        _refusal(c.db, "ghost", f"guess {i}")
    ghost = _refusal(c.db, "ghost", PASSWORD)
    assert isinstance(ghost, TooManyAttempts)
    assert ghost.message.split(":")[0] == locked.message.split(":")[0]
    lockouts = [a for a in _audit(c.db, "login") if a.outcome == "locked-out"]
    assert [a.actor for a in lockouts] == [c.requester, "ghost"]
    # When the failures leave the window, the account opens again.
    with c.db.transaction() as s:
        s.execute(update(LoginFailure).values(at=utcnow() - accounts.WINDOW - timedelta(seconds=1)))
    assert accounts.login(c.db, user=c.requester, password=PASSWORD, address=HERE).user_id


def test_an_address_is_locked_after_twenty_failures(consortium: Consortium) -> None:
    c = consortium
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester, password=PASSWORD)
    for i in range(accounts.ADDRESS_LIMIT):
        assert type(_refusal(c.db, f"name-{i}", "guess")) is Unauthenticated
    locked = _refusal(c.db, c.requester, PASSWORD)
    assert isinstance(locked, TooManyAttempts)
    assert locked.retry_after > 0
    # The same account from another address is fine: its own failures are none.
    assert accounts.login(c.db, user=c.requester, password=PASSWORD, address="203.0.113.5")


def test_a_success_clears_the_failures_it_followed(consortium: Consortium) -> None:
    c = consortium
    accounts.set_password(c.db, actor=c.admin, user_id=c.requester, password=PASSWORD)
    for _ in range(2):
        for i in range(accounts.ACCOUNT_LIMIT - 1):
            _refusal(c.db, c.requester, f"typo {i}")
        accounts.login(c.db, user=c.requester, password=PASSWORD, address=HERE)
    with c.db.read() as s:
        assert s.scalars(sql_select(LoginFailure)).all() == []


# ---- disabling -----------------------------------------------------------------------------
def test_a_disabled_user_can_do_nothing_until_enabled(consortium: Consortium) -> None:
    c = consortium
    made = tokens.create(c.db, actor=c.requester, scope="write", expires_in=timedelta(days=1))
    assert tokens.authenticate(c.db, made.secret).user_id == c.requester
    with pytest.raises(Forbidden):
        accounts.disable(c.db, actor=c.steward, user_id=c.requester)
    with pytest.raises(ValidationFailed) as yourself:
        accounts.disable(c.db, actor=c.admin, user_id=c.admin)
    assert "yourself" in yourself.value.message
    view = accounts.disable(c.db, actor=c.admin, user_id=c.requester)
    assert view.disabled_at is not None
    with pytest.raises(Unauthenticated) as token:
        tokens.authenticate(c.db, made.secret)
    assert "disabled" in token.value.message
    with pytest.raises(Unauthenticated) as acting:
        access.list_projects(c.db, actor=c.requester)
    assert "is disabled" in acting.value.message
    assert "steward user enable" in acting.value.message
    again = accounts.disable(c.db, actor=c.admin, user_id=c.requester)  # changes nothing
    assert again.disabled_at == view.disabled_at
    assert accounts.enable(c.db, actor=c.admin, user_id=c.requester).disabled_at is None
    assert tokens.authenticate(c.db, made.secret).user_id == c.requester
    done = [(a.action, a.subject_id) for a in _audit(c.db, "user-disable")]
    done += [(a.action, a.subject_id) for a in _audit(c.db, "user-enable")]
    assert ("user-disable", c.requester) in done
    assert ("user-enable", c.requester) in done
    users = {u.id: u for u in access.list_users(c.db, actor=c.admin)}
    assert users[c.requester].disabled_at is None


# ---- the CLI -------------------------------------------------------------------------------
@pytest.fixture
def stdin(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def feed(value: str) -> None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(value))

    return feed


def test_cli_passwd_disable_enable(
    consortium: Consortium,
    cli: Cli,
    stdin: Callable[[str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = consortium
    stdin(PASSWORD + "\n")
    done = cli("user", "passwd", c.requester, "--password-stdin", "--as", c.requester)
    assert done.code == 0, done.err
    assert f"Password set for {c.requester}" in done.out
    accounts.login(c.db, user=c.requester, password=PASSWORD, address=HERE)

    stdin("too-short\n")
    short = cli("user", "passwd", c.requester, "--password-stdin", "--as", c.requester, "--json")
    assert short.code == 2
    problem = json.loads(short.out)  # only JSON on stdout
    assert problem["code"] == "validation-failed"
    assert "at least 12 characters" in problem["detail"]
    assert "too-short" not in short.out + short.err

    stdin(PASSWORD + "\n")
    other = cli("user", "passwd", c.requester, "--password-stdin", "--as", c.requester2)
    assert other.code == 1
    assert "only they or an administrator" in other.err

    stdin("")  # not a terminal, and no --password-stdin
    asked = cli("user", "passwd", c.requester, "--as", c.requester)
    assert asked.code == 2
    assert "--password-stdin" in asked.err

    off = cli("user", "disable", c.requester, "--as", c.admin, "--json")
    assert off.code == 0, off.err
    assert json.loads(off.out)["disabled_at"] is not None
    refused = cli("request", "list", "--as", c.requester)
    assert refused.code == 2
    assert f"user '{c.requester}' is disabled" in refused.err
    assert "Traceback" not in refused.err
    listed = json.loads(cli("user", "list", "--as", c.admin, "--json").out)
    row = next(u for u in listed if u["id"] == c.requester)
    assert row["has_password"] is True
    assert row["disabled_at"] is not None
    assert "has_password" in cli("user", "list", "--as", c.admin).out
    not_admin = cli("user", "enable", c.requester, "--as", c.steward)
    assert not_admin.code == 1
    on = cli("user", "enable", c.requester, "--as", c.admin)
    assert on.code == 0, on.err
    assert f"User {c.requester} enabled" in on.out
    assert cli("request", "list", "--as", c.requester).code == 0
    everything = done.out + done.err + short.out + other.out + other.err + caplog.text
    assert PASSWORD not in everything
    assert PASSWORD not in _everything_stored(c.db)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_passwd_asks_twice_on_a_terminal_without_echo(
    consortium: Consortium, tmp_path: Path
) -> None:
    """The real prompt, on a real pseudo-terminal: asked twice, never shown."""
    c = consortium
    env = {
        **os.environ,
        "STEWARD_HOME": str(c.db.settings.home),
        "STEWARD_DATABASE_URL": c.db.settings.resolved_database_url,
        "STEWARD_USER": c.requester,
    }
    code, shown = converse(
        ["user", "passwd", c.requester],
        env=env,
        cwd=tmp_path,
        answers=[(b"new password", PASSWORD, True), (b"repeat", PASSWORD, True)],
    )
    assert code == 0, shown
    assert b"password set" in shown.lower()
    assert PASSWORD.encode() not in shown
    assert accounts.login(c.db, user=c.requester, password=PASSWORD, address=HERE)
