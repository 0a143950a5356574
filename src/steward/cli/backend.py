"""Where a command's work happens: the database here, or the server ``--server`` names.

Commands call these with the local call as a function; against a server the same list or
command goes through the kind's generated endpoints instead, and comes back as the same view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from steward.cli.state import STATE
from steward.remote import subjects as remote
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
