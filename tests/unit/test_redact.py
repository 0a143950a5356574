"""One redaction function: every credential form is masked, nothing else is touched."""

from __future__ import annotations

import io
import logging
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steward.config import Settings
from steward.errors import Detail, StewardError
from steward.redact import MASK, install_log_redaction, redact, remember, secrets_in


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # URL user info: the user stays (it helps), the password goes.
        (
            "postgresql+psycopg://steward:s3cret-pw@db.example.org:5432/steward",
            "postgresql+psycopg://steward:***@db.example.org:5432/steward",
        ),
        ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
        ("https://me@example.org:pw9@host/x", "https://me@example.org:***@host/x"),
        # Query parameters, whatever their case and position.
        (
            "postgresql+psycopg://steward@h/db?password=TopSecret99&sslmode=require",
            "postgresql+psycopg://steward@h/db?password=***&sslmode=require",
        ),
        ("sqlite:///x.db?passwd=abc123", "sqlite:///x.db?passwd=***"),
        (
            "at x://h/db?password=abc1: connection refused",
            "at x://h/db?password=***: connection refused",
        ),
        ("x://h/?sslmode=disable&PassWord=Zz9", "x://h/?sslmode=disable&PassWord=***"),
        ("https://h/?secret=s1&token=t1&key=k1", "https://h/?secret=***&token=***&key=***"),
        ("https://h/?api_key=a1&access_token=b2", "https://h/?api_key=***&access_token=***"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAX%2F20240101%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
            "&X-Amz-Security-Token=FQoG&X-Amz-Signature=0a1b2c3d",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=***&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600"
            "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=***&X-Amz-Signature=***",
        ),
        ("https://a.blob.core.windows.net/c?sv=2022&sig=ab%2Bc&se=x", None),
        # libpq connection strings, as psycopg may echo them.
        (
            "invalid dsn: host=db user=steward password=hunter22 dbname=x",
            "invalid dsn: host=db user=steward password=*** dbname=x",
        ),
        ("host=db password='a b c' port=5", "host=db password='***' port=5"),
        # Dict and JSON renderings.
        ("{'password': 'xyz123', 'user': 'u'}", "{'password': '***', 'user': 'u'}"),
        ('{"client_secret": "cs-1", "a": 1}', '{"client_secret": "***", "a": 1}'),
        # Tokens in headers.
        ("Authorization: Bearer eyJhbGciOi.e30.sig", "Authorization: Bearer ***"),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
        ("sent Bearer abc.def.ghi to the API", "sent Bearer *** to the API"),
        # Steward API tokens anywhere: the id stays, the secret goes.
        (
            "--token stw_01JABCDEF_xY-z_9Q was refused",
            "--token stw_01JABCDEF_*** was refused",
        ),
    ],
)
def test_every_credential_shape_is_masked(text: str, shown: str | None) -> None:
    assert redact(text) == (shown if shown is not None else text.replace("ab%2Bc", MASK))


@pytest.mark.parametrize(
    "text",
    [
        "postgresql+psycopg://steward@127.0.0.1:5432/steward",
        "sqlite:////home/ada/.steward/steward.db",
        "http://host:8080/path@x",
        "idempotency_key=form-17 was used for another command",
        "line 4, title: required (accepted: text)",
        "s3://bucket/prefix/file.txt",
        "postgresql+psycopg://steward:***@db/steward?password=***",
        "",
    ],
)
def test_text_without_credentials_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_redaction_is_idempotent() -> None:
    once = redact("postgresql://u:pw12@h/db?password=abcd&token='x y'")
    assert redact(once) == once


@given(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
        min_size=1,
        max_size=30,
    )
)
def test_any_password_in_a_url_is_masked(password: str) -> None:
    """Any password, percent-encoded as a URL requires, in user info and in the query."""
    encoded = quote(password, safe="")
    url = f"postgresql+psycopg://steward:{encoded}@db.example.org/steward?password={encoded}"
    assert redact(url) == ("postgresql+psycopg://steward:***@db.example.org/steward?password=***")
    assert secrets_in(url) == [encoded, encoded]


def test_remembered_secrets_are_masked_wherever_they_appear() -> None:
    remember("Ex4mple-not-a-shape", "p@ss word/1", "ab")
    assert redact('FATAL: unknown option "Ex4mple-not-a-shape"') == 'FATAL: unknown option "***"'
    assert redact("echoed p%40ss%20word%2F1 and p@ss word/1") == "echoed *** and ***"
    # A very short secret is not hunted as bare text: it would mask ordinary words.
    assert redact("absent") == "absent"


def test_settings_hide_every_credential_of_the_database_url() -> None:
    """Issue 8 item 8: a password given as ``?password=`` was printed in clear."""
    s = Settings(
        database_url="postgresql+psycopg://steward:Us3rinfo-pw@db:5432/st"
        "?password=Qu3ry-pw&sslmode=require&sslpassword=K3y-pw"
    )
    shown = s.redacted_database_url()
    assert shown == (
        "postgresql+psycopg://steward:***@db:5432/st?password=***&sslmode=require&sslpassword=***"
    )
    # Settings remember them: a driver quoting one bare is masked too.
    assert redact("could not load key 'K3y-pw'") == "could not load key '***'"


def test_a_url_the_driver_cannot_parse_is_still_shown_safely() -> None:
    s = Settings(database_url="postgresql+psycopg://steward:Unp4rsable@db:notaport/st")
    assert s.redacted_database_url() == "postgresql+psycopg://steward:***@db:notaport/st"


def test_log_records_are_redacted_with_their_tracebacks() -> None:
    install_log_redaction()
    remember("L0g-secret-value")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("steward.test.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("connecting to %s", "postgresql://u:L0g-secret-value@h/db?token=t0k3n-abc")
        try:
            raise RuntimeError("failed: password=L0g-secret-value")
        except RuntimeError:
            log.exception("driver said")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "L0g-secret-value" not in text
    assert "t0k3n-abc" not in text
    assert "WARNING connecting to postgresql://u:***@h/db?token=***" in text
    assert "RuntimeError: failed: password=***" in text
    assert "Traceback" in text  # the traceback is kept, only its secrets are gone


def test_the_error_renderer_masks_what_the_source_forgot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The last defence: an error built with a credential in it is still shown without."""
    import json

    from steward.cli import render
    from steward.cli.state import reset

    err = StewardError(
        "cannot reach postgresql://u:R3nder-pw@h/db?password=R3nder-q",
        [Detail("said password=R3nder-d", field="url", value="x://h/?sig=R3nder-s")],
    )
    state = reset()
    render.show_error(err)
    state.json = True
    render.show_error(err)
    out, errout = capsys.readouterr()
    for secret in ("R3nder-pw", "R3nder-q", "R3nder-d", "R3nder-s"):
        assert secret not in out
        assert secret not in errout
    assert "postgresql://u:***@h/db?password=***" in errout
    problem = json.loads(out)
    assert problem["detail"] == "cannot reach postgresql://u:***@h/db?password=***"
    assert problem["errors"][0]["value"] == "x://h/?sig=***"
