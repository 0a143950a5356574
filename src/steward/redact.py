"""One function that takes credentials out of any text before a person or a log sees it.

Used at the source (where a database URL or a driver's message is put into an error) and once
more by each surface's error renderer as a last defence, so a message built anywhere — from a
psycopg exception that echoes its DSN, a presigned link in an S3 error, an ``Authorization``
header in a log line — never shows a secret. Three kinds of protection:

- shapes: the password in a URL's user info, credential-like ``name=value`` pairs (URL query
  parameters, libpq connection strings, quoted keys of a dict or JSON), bearer tokens and
  ``Authorization`` headers;
- values: every secret the process was configured with (``remember``), wherever and however
  it appears, since a driver may quote a password without its name;
- logs: once installed, every log record is redacted when it is made, traceback included.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"

MIN_SECRET = 4
"""Shorter configured secrets are not hunted as bare text (they would mask ordinary words);
their shapes (``password=…``, ``user:…@``) are still masked."""

_CREDENTIAL_NAME = (
    r"(?:[A-Za-z0-9_.-]*(?:passw(?:or)?d|pwd|secret|token|signature|credential)[A-Za-z0-9_-]*"
    r"|(?:api[_-]?|access[_-]?|private[_-]?|account[_-]?)?key|apikey|sig|pass|auth)"
)
_VALUE = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^&\s'"#]*[^&\s'"#:,;)\]])"""
"""Quoted, or up to the next separator; a trailing ``:`` ``,`` ``;`` ``)`` ``]`` belongs to
the sentence around it ("…?password=***: connection refused"), never to an encoded value."""

_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#]*?:)(?P<secret>[^\s/]*)(?=@)"
)
_PAIR = re.compile(
    rf"(?i)(?<![A-Za-z0-9_.-])(?P<head>{_CREDENTIAL_NAME}\s*=\s*)(?P<secret>{_VALUE})"
)
_QUOTED_KEY = re.compile(
    rf"""(?i)(?P<head>(?P<q>['"]){_CREDENTIAL_NAME}(?P=q)\s*:\s*)(?P<secret>{_VALUE})"""
)
_AUTHORIZATION = re.compile(
    r"(?i)(?P<head>\b(?:proxy-)?authorization\b['\"]?\s*[:=]\s*['\"]?(?:[A-Za-z]+\s+)?)"
    r"(?P<secret>[^\s,;'\"]+)"
)
_BEARER = re.compile(r"(?i)(?P<head>\bbearer\s+)(?P<secret>[^\s,;'\"]+)")
_STEWARD_TOKEN = re.compile(r"(?P<head>\bstw_[0-9A-Za-z]+_)(?P<secret>[0-9A-Za-z_-]+)")
"""A Steward API token anywhere (``--token stw_…`` echoed in a message): its id stays, to
recognise it in ``steward token list``, its secret goes."""
_SHAPES = (_USERINFO, _PAIR, _QUOTED_KEY, _AUTHORIZATION, _BEARER, _STEWARD_TOKEN)

_lock = threading.Lock()
_known: tuple[str, ...] = ()
_logging_installed = False


def _mask(match: re.Match[str]) -> str:
    secret = match.group("secret")
    if secret in ("", MASK) or secret.strip("'\"") == MASK:
        return match.group(0)
    quoted = len(secret) >= 2 and secret[0] in "'\"" and secret[-1] == secret[0]
    quote_mark = secret[0] if quoted else ""
    return f"{match.group('head')}{quote_mark}{MASK}{quote_mark}"


def redact(text: str) -> str:
    """``text`` with every credential it contains replaced by ``***``."""
    if not text:
        return text
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    for shape in _SHAPES:
        text = shape.sub(_mask, text)
    return text


def secrets_in(text: str) -> list[str]:
    """The credential values ``redact`` would mask in ``text`` (quotes removed)."""
    found = []
    for shape in _SHAPES:
        for match in shape.finditer(text):
            value = match.group("secret")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            if value and value != MASK:
                found.append(value)
    return found


def remember(*secrets: str | None) -> None:
    """Mask these values wherever they appear from now on (as given, URL-encoded, decoded).

    Called when settings are built, for the database password and credential query values
    and the S3 secret key. Installs the log redaction too: a process that holds a secret
    redacts its logs.
    """
    global _known
    found = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET:
            continue
        found |= {secret, quote(secret, safe=""), unquote(secret)}
    found = {s for s in found if len(s) >= MIN_SECRET}
    with _lock:
        if not found <= set(_known):
            # Longest first, so a secret that contains another is masked whole.
            _known = tuple(sorted(set(_known) | found, key=len, reverse=True))
    install_log_redaction()


def install_log_redaction() -> None:
    """Redact every log record as it is made, whichever logger and handler it goes to.

    A record factory (not a filter) because filters on one logger miss its children's records
    and Python's last-resort handler has none; the formatted traceback is redacted too.
    """
    global _logging_installed
    with _lock:
        if _logging_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: keep the record as the logger made it
                return record
            record.msg, record.args = redact(message), None
            if record.exc_info and record.exc_info[1] is not None:
                text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
                record.exc_text = redact(text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
            return record

        logging.setLogRecordFactory(factory)
        _logging_installed = True


def redact_tree(value: Any) -> Any:
    """``redact`` applied to every text in a JSON-like value (a problem document)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_tree(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    return value
