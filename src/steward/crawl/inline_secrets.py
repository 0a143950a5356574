"""Credentials written straight into a sources config: found, refused, and never echoed.

The tracker Steward replaces copied private access keys into a shared spreadsheet. Here a
source may only *name* the environment variable that holds a secret (``access_key_env``,
``token_env``); a value that looks like a secret anywhere in an entry is refused, and the
message that refuses it shows the value masked. Shapes recognised: credentials in a URL
(``https://user:pass@host``, a bare ``token@host``, ``?token=…``/``X-Amz-Signature=…``), AWS
access key ids and secret keys, well-known token prefixes (GitHub, GitLab, Slack, Steward), JSON
web tokens, PEM private keys, ``Bearer …``, and long random-looking strings. Shapes
:mod:`steward.redact` knows are reused, so what is refused here is also masked everywhere else.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from urllib.parse import parse_qsl, urlsplit

from steward.redact import MASK, redact, secrets_in

_AWS_KEY_ID = re.compile(
    r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"
)
_AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+=]{0,39}[a-z])(?=[A-Za-z0-9/+=]{0,39}[A-Z])"
    r"(?=[A-Za-z0-9/+=]{0,39}[0-9/+])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
)
_TOKEN_PREFIXES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{16,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|stw_[0-9A-Za-z]+_[0-9A-Za-z_-]+)"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_AWS_KEY_ID, "an AWS access key id"),
    (_AWS_SECRET, "an AWS secret access key"),
    (_TOKEN_PREFIXES, "an access token"),
    (_JWT, "a JSON web token"),
    (_PEM, "a private key"),
)
_RANDOM = re.compile(r"[A-Za-z0-9+=_-]{24,}")
_DIGIT_RUNS = re.compile(r"[0-9]+")
_QUERY_CREDENTIAL = re.compile(
    r"(?i)^(?:.*(?:passw(?:or)?d|pwd|secret|token|signature|credential|api[_-]?key|access[_-]?key)"
    r".*|key|sig|auth|x-amz-signature|x-amz-credential)$"
)
_SECRET_FIELD = re.compile(
    r"(?i)(?:secret|passw(?:or)?d|pwd|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credential|auth|bearer)"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _class_changes(text: str) -> float:
    """How often neighbouring characters switch between lower case, upper case and digits."""

    def kind(c: str) -> int:
        return 0 if c.islower() else 1 if c.isupper() else 2 if c.isdigit() else 3

    return sum(kind(a) != kind(b) for a, b in itertools.pairwise(text)) / len(text)


def _random_looking(text: str) -> bool:
    """A long run of letters and digits that looks generated rather than written.

    Generated keys mix both cases with digits scattered through them, switching character
    class at almost every other position; names people write (``Atlas2024Production``,
    ``MyLongVariableName1``, accessions, paths, hex digests) are separated, single-case, keep
    their digits together or switch class far less often. The tests hold examples of each.
    """
    for run in _RANDOM.findall(text):
        separators = run.count("-") + run.count("_")
        if (
            separators <= len(run) / 8
            and any(c.islower() for c in run)
            and any(c.isupper() for c in run)
            and len(_DIGIT_RUNS.findall(run)) >= 2
            and _class_changes(run) >= 0.42
            and _entropy(run) >= 3.8
        ):
            return True
    return False


def url_secret(url: str) -> str | None:
    """What credential a URL carries (user info, a credential query parameter), if any."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    if "@" in parts.netloc:
        return "credentials in the URL (user name or password before '@')"
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value and _QUERY_CREDENTIAL.match(name):
            return f"a credential in the URL's query ({name}=…)"
    return None


def secret_kind(value: str) -> str | None:
    """What kind of secret ``value`` looks like, or None when it looks like none."""
    if "://" in value and (found := url_secret(value)):
        return found
    for shape, kind in _SHAPES:
        if shape.search(value):
            return kind
    if secrets_in(value):
        return "a credential (a password, token or key)"
    if _random_looking(value):
        return "a generated key or token"
    return None


def mask(value: str) -> str:
    """``value`` with every credential-looking part replaced by ``***`` (safe in a message)."""
    text = redact(value)
    if "://" in text:
        parts = urlsplit(text)
        if "@" in parts.netloc:
            host = parts.netloc.rsplit("@", 1)[1]
            text = text.replace(parts.netloc, f"{MASK}@{host}", 1)
        if parts.query:
            masked = "&".join(
                f"{k}={MASK}" if v and _QUERY_CREDENTIAL.match(k) else f"{k}={v}" if v else k
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            )
            text = text.replace(parts.query, masked, 1)
    for shape, _ in _SHAPES:
        text = shape.sub(MASK, text)
    return _RANDOM.sub(lambda m: MASK if _random_looking(m.group(0)) else m.group(0), text)


def secret_field_name(name: str) -> bool:
    """A field named like a secret (``secret_key``, ``token``), not a reference to one."""
    return bool(_SECRET_FIELD.search(name)) and not name.endswith("_env")


def env_name_ok(name: str) -> bool:
    """A plausible environment variable name (letters, digits, underscores)."""
    return bool(_ENV_NAME.match(name))
