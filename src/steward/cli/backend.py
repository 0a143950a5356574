"""Where a command's work happens: the database here, or the server ``--server`` names.

Commands call these with the local call as a function; against a server the same list or
command goes through the kind's generated endpoints instead, and comes back as the same view.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from steward.cli.state import STATE
from steward.errors import Detail, ValidationFailed
from steward.remote import subjects as remote
from steward.remote.calls import remote_for
from steward.remote.client import Client
from steward.services.kinds import Filter, Kind

T = TypeVar("T")


def listed(kind: Kind, flt: Filter, sort: str, local: Callable[[], list[T]]) -> list[T]:
    client = STATE.remote
    if client is None:
        return local()
    found: list[T] = remote.list_(client, kind, flt=flt, sort=sort)
    return found


def acted(kind: Kind, subject_id: str, command: str, local: Callable[[], T], **given: Any) -> T:
    client = STATE.remote
    if client is None:
        return local()
    view: T = remote.act(client, kind, subject_id=subject_id, command=command, **given)
    return view


def run(service: Callable[..., T], /, **given: Any) -> T:
    """``service(db, actor=…, **given)`` here, or the same call through the server's API
    (:mod:`steward.remote.calls`); a service without an API call says the command runs only
    where the database is."""
    client = STATE.remote
    if client is None:
        return service(STATE.db, actor=STATE.actor, **given)
    through_api = remote_for(service)
    if through_api is None:
        raise STATE.local_only()
    found: T = through_api(client, **given)
    return found


def server_of(sources: Path | None, *, does: str, here: str) -> Client | None:
    """The server ``--server`` names (``None``: work here). A server reads storage only
    through its own configured sources — a caller never makes it read paths or URLs of their
    choosing — so ``--sources`` with ``--server`` is refused: the server ``does`` only its
    own sources; drop --server ``here``."""
    client = STATE.remote
    if client is not None and sources is not None:
        raise ValidationFailed(
            f"--sources {sources} is not taken with --server: the server {does} only its own "
            "configured sources ([crawl] in its steward.toml); drop --sources, or drop --server "
            f"to {here}",
            [Detail("not with --server", field="--sources", value=str(sources),
                    accepted="the server's configured sources (no --sources)")],
        )  # fmt: skip
    return client
