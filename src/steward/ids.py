"""Prefixed, sortable identifiers (``req_01J…``) so an id says what it names."""

from __future__ import annotations

import re
from datetime import datetime

from ulid import ULID

PREFIXES = {
    "access_request": "req",
    "dataset": "ds",
    "crawl": "crl",
    "run": "run",
    "package": "pkg",
    "share": "shr",
    "job": "job",
    "project": "prj",
    "requirement": "ar",
    "api_token": "tok",
    "browser_session": "ses",
}

_ID_RE = re.compile(r"^[a-z]{2,4}_[0-9A-HJKMNP-TV-Z]{26}$")


def new_id(kind: str, at: datetime | None = None) -> str:
    """A new id for ``kind``; ``at`` keeps imported subjects sortable by their real creation."""
    ulid = ULID.from_datetime(at) if at is not None else ULID()
    return f"{PREFIXES[kind]}_{ulid}"


def looks_like_id(value: str) -> bool:
    return bool(_ID_RE.match(value))
