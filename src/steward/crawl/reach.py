"""Is a source reachable right now? One cheap call per source, for ``steward crawl sources``.

Kept out of config validation on purpose: a config is right or wrong on its own, while a
location can be down for an hour. The answer distinguishes what a person would do about it:
``missing-credentials`` (set a variable), ``not-found`` (wrong path or bucket), ``denied``
(permissions or keys), ``unreachable`` (network, server down) and ``reachable``.
"""

from __future__ import annotations

import os
import stat as stat_mode
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from steward.crawl.config_model import SourceConfig
from steward.crawl.credentials import bearer_token, missing_env, s3_config
from steward.crawl.inline_secrets import mask
from steward.errors import (
    ConfigurationError,
    NotFound,
    StewardError,
    StorageDenied,
)
from steward.redact import redact


class Reach(StrEnum):
    REACHABLE = "reachable"
    MISSING_CREDENTIALS = "missing-credentials"
    NOT_FOUND = "not-found"
    DENIED = "denied"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Reachability:
    source: str
    status: Reach
    message: str

    @property
    def ok(self) -> bool:
        return self.status is Reach.REACHABLE


def _folder(source: SourceConfig) -> tuple[Reach, str]:
    root = Path(source.url)
    try:
        st = os.stat(root)
        if not stat_mode.S_ISDIR(st.st_mode):
            return Reach.NOT_FOUND, f"{root} is not a folder"
        with os.scandir(root) as entries:
            next(entries, None)
    except FileNotFoundError:
        return Reach.NOT_FOUND, f"{root} does not exist"
    except PermissionError:
        return Reach.DENIED, f"Steward may not read {root}"
    except OSError as exc:
        return Reach.UNREACHABLE, f"{root} cannot be read: {exc.strerror}"
    return Reach.REACHABLE, f"{root} can be read"


def _s3(source: SourceConfig, environ: Mapping[str, str] | None) -> tuple[Reach, str]:
    from steward.adapters.storage import open_store
    from steward.adapters.store_s3 import S3Store

    store = open_store(source.url, s3_config(source, environ))
    if isinstance(store, S3Store):
        store.list_page_size = 1
    try:
        next(iter(store.list()), None)
    except NotFound as exc:
        return Reach.NOT_FOUND, str(exc)
    except StorageDenied as exc:
        return Reach.DENIED, str(exc)
    except ConfigurationError as exc:
        keys_refused = "credentials" in str(exc)
        return (Reach.DENIED if keys_refused else Reach.UNREACHABLE), str(exc)
    except StewardError as exc:
        return Reach.UNREACHABLE, str(exc)
    return Reach.REACHABLE, f"{store.url} can be listed"


def _endpoint(
    source: SourceConfig, environ: Mapping[str, str] | None, timeout: float
) -> tuple[Reach, str]:
    token = bearer_token(source, environ)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    shown = mask(source.url)
    import httpx  # here: most commands never check an endpoint

    try:
        response = httpx.get(source.url, headers=headers, timeout=timeout, follow_redirects=True)
    except httpx.TimeoutException:
        return Reach.UNREACHABLE, f"{shown} did not answer within {timeout:g} s"
    except httpx.TransportError as exc:
        return Reach.UNREACHABLE, f"{shown} could not be reached ({type(exc).__name__})"
    status = response.status_code
    if status in (401, 403):
        return Reach.DENIED, f"{shown} refused Steward ({status})"
    if status == 404:
        return Reach.NOT_FOUND, f"{shown} answered 404 Not Found"
    if status >= 400:
        return Reach.UNREACHABLE, f"{shown} answered {status} {response.reason_phrase}"
    try:
        response.json()
    except ValueError:
        return Reach.UNREACHABLE, f"{shown} answered, but not with JSON"
    return Reach.REACHABLE, f"{shown} answered JSON"


def reachable(
    source: SourceConfig, *, environ: Mapping[str, str] | None = None, timeout: float = 10.0
) -> Reachability:
    """Whether ``source`` can be listed now, and if not, what to do about it.

    ``timeout`` bounds the endpoint request; S3 calls use the store's own timeout.
    """
    missing = missing_env(source, environ)
    if missing:
        names = ", ".join(str(d.value) for d in missing)
        return Reachability(source.name, Reach.MISSING_CREDENTIALS, f"set {names}")
    if source.kind == "folder":
        status, message = _folder(source)
    elif source.kind == "s3":
        status, message = _s3(source, environ)
    else:
        status, message = _endpoint(source, environ, timeout)
    return Reachability(source.name, status, redact(message))
