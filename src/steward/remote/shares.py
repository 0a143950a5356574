"""Shares through a server's API, as :mod:`steward.services.shares` does them locally: same
arguments (less the database), same views, same errors.

A push runs on the server's worker (:func:`steward.remote.packages.follow` watches it). A
presign answers the links and the download script once; the CLI writes the script on *this*
machine, where the person who asked for it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from steward.errors import Detail, StewardError
from steward.remote import packages as remote_packages
from steward.remote import subjects
from steward.remote.client import Client
from steward.services.package_build import BuildProgress
from steward.services.shares import SHARE, ShareDetail, ShareObjectView, ShareView

BASE = "/api/v1/shares"


@dataclass(frozen=True)
class Presigned:
    share: ShareView
    script_name: str
    script: str
    """The download script's text: its links work like passwords."""


def request_push(
    client: Client, *, package_id: str, destination: str, concurrency: int | None = None
) -> tuple[ShareView, str | None]:
    body: dict[str, Any] = {"package": package_id, "destination": destination}
    if concurrency is not None:
        body["concurrency"] = concurrency
    answer = client.call("POST", BASE, body=body)
    return ShareView.model_validate(answer["share"]), answer["action_id"]


def view(client: Client, *, share_id: str) -> ShareView:
    return ShareView.model_validate(client.call("GET", f"{BASE}/{share_id}")["item"])


def follow_push(
    client: Client, share_id: str, action_id: str, *, progress: BuildProgress | None = None
) -> ShareView:
    """The share once its queued push ended: succeeded, or an error saying why not."""

    def failed(_: Any) -> bool:
        return view(client, share_id=share_id).state not in ("pending", "running")

    found = remote_packages.follow(client, action_id, progress=progress, stopped=failed)
    done = view(client, share_id=share_id)
    if done.state == "succeeded":
        return done
    reason = done.failure_reason or found.last_error or found.state
    again = " (the worker tries again later)" if found.state == "pending" else ""
    raise StewardError(
        f"the push of {share_id} stopped: {reason}; {share_id} is {done.state}{again}",
        [Detail("push stopped", field="share", value=share_id, accepted="succeeded")],
    )


def presign(
    client: Client, *, package_id: str, expires: str, from_share: str | None = None
) -> Presigned:
    body = {"package": package_id, "expires": expires, "from_share": from_share}
    answer = client.call("POST", f"{BASE}/presign", body=body)
    return Presigned(
        share=ShareView.model_validate(answer["share"]),
        script_name=str(answer["script_name"]),
        script=str(answer["script"]),
    )


def _objects_page(client: Client, share_id: str, limit: int) -> dict[str, Any]:
    found: dict[str, Any] = client.call(
        "GET", f"{BASE}/{share_id}/objects", params=[("limit", str(limit))]
    )
    return found


def get(client: Client, *, share_id: str) -> ShareDetail:
    item, found = subjects.detail(client, SHARE, share_id)
    registry = _objects_page(client, share_id, 1)
    return ShareDetail(
        share=item,
        **subjects.history_fields(found),
        registered_objects=registry["total"],
        registered_bytes=registry["bytes"],
    )


def objects(client: Client, *, share_id: str) -> list[ShareObjectView]:
    found = client.pages(f"{BASE}/{share_id}/objects", [("limit", "5000")], None)
    return [ShareObjectView.model_validate(o) for o in found]


def act(client: Client, *, share_id: str, command: str, **given: Any) -> ShareView:
    done: ShareView = subjects.act(client, SHARE, subject_id=share_id, command=command, **given)
    return done
