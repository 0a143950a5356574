"""Calling the served API in tests: tokens, a client, and checking a problem document."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from steward.services import tokens
from tests.conftest import Consortium

PROBLEM = "application/problem+json"


def token(c: Consortium, user: str, scope: str = "write") -> str:
    return tokens.create(c.db, actor=user, scope=scope, expires_in=timedelta(days=1)).secret


def client(api: str, secret: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(base_url=api, headers=headers, timeout=60)


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The problem document ``r`` carries, after checking it is one with ``status``."""
    assert r.status_code == status, (r.request.url, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
    body = r.json()
    assert {"type", "title", "status", "code", "detail", "errors"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in r.text
    return dict(body)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, (r.request.url, r.status_code, r.text[:500])
    return r.json()
