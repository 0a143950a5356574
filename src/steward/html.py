"""Self-contained HTML pages Steward writes (the package report, the datasets overview):
templates, inlined assets, data for scripts, and a policy that lets nothing load from anywhere.

A page is one file people open from disk or an e-mail: every script and style is inlined, and
its Content-Security-Policy admits only those scripts (by hash), so a value that escaped its
escaping could neither run nor phone home.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from steward.errors import StewardError


@lru_cache(maxsize=4)
def environment(package: str) -> Environment:
    """Templates of ``package``'s ``templates`` folder, autoescaped, strict about names."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=16)
def asset(package: str, name: str) -> str:
    """A script or stylesheet of ``package``'s templates, checked fit to inline."""
    text = (resources.files(package) / "templates" / name).read_text("utf-8")
    return inline_safe(text, name)


def inline_safe(text: str, name: str) -> str:
    """``text`` unchanged, if nothing in it could close the element it is inlined in."""
    lowered = text.lower()
    if "</script" in lowered or "</style" in lowered or "<!--" in lowered:
        raise StewardError(f"{name} cannot be inlined: it contains a closing tag or comment")
    return text


def json_for_script(value: Any) -> str:
    """JSON safe inside ``<script>``: no ``</script>``, ``<!--`` or entity can end or bend it."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def content_security_policy(*scripts: str) -> str:
    """Only our inline scripts (by hash) may run, and nothing may be fetched from anywhere:
    an injected ``<img onerror>`` neither runs nor phones home even if escaping ever failed."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    )
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; "
        "form-action 'none'"
    )
