"""Shares: a built package sent somewhere (push) or handed out as presigned links.

The seed marked pushes finished without checking what arrived; here a share succeeds only when
every object was verified at the destination, and a failed or interrupted share is resumed by
the same share (objects already verified are skipped), never by starting a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from steward.domain.roles import STAFF, Role
from steward.domain.workflow import ANY_STATE, State, Transition, define_workflow

KIND = "share"
METHODS = ("push", "presign")

_STAFF = frozenset(STAFF)
READERS = frozenset({*STAFF, Role.REVIEWER.value, Role.VIEWER.value})

WORKFLOW = define_workflow(
    name="share",
    kind=KIND,
    states=[
        State("pending", description="accepted; nothing sent yet"),
        State("running", description="objects are being sent and verified"),
        State(
            "succeeded",
            terminal=True,
            description="every object arrived and was verified (or links issued)",
        ),
        State("failed", description="stopped; the reason says why; retry resumes it"),
        State("aborted", terminal=True, description="stopped on purpose"),
    ],
    initial="pending",
    create=Transition("create", "created", (), "pending", _STAFF, (), "accept a share request"),
    transitions=[
        Transition("start", "started", ("pending",), "running", _STAFF, (), "begin sending"),
        Transition(
            "resume",
            "resumed",
            ("running",),
            None,
            _STAFF,
            (),
            "take over a share whose sender stopped (its lease ran out)",
        ),
        Transition(
            "finish", "succeeded", ("running",), "succeeded", _STAFF, (), "all objects verified"
        ),
        Transition(
            "fail", "failed", ("pending", "running"), "failed", _STAFF, (), "record why it stopped"
        ),
        Transition(
            "retry",
            "retried",
            ("failed",),
            "pending",
            _STAFF,
            (),
            "send again; verified objects are skipped",
        ),
        Transition(
            "abort",
            "aborted",
            ("pending", "running", "failed"),
            "aborted",
            _STAFF,
            (),
            "stop the share for good",
        ),
        Transition(
            "comment",
            "commented",
            (ANY_STATE,),
            None,
            READERS,
            (),
            "add a note to the timeline",
        ),
    ],
    clock_start="pending",
    clock_stop=("succeeded", "failed", "aborted"),
)

SUBJECT_FIELDS = ("package_id", "method", "destination", "created_by")


def project(
    event: str, at: datetime, actor: str, data: Mapping[str, Any], subject: Mapping[str, Any]
) -> dict[str, Any]:
    """Read-model changes an event causes (state/version/timestamps are set by the engine)."""
    if event == "created":
        changes: dict[str, Any] = {k: data[k] for k in SUBJECT_FIELDS if k in data}
        changes["links_expire_at"] = _when(data.get("links_expire_at"))
        return changes
    if event in ("started", "resumed"):
        return {
            "failure_reason": None,
            "sender": data.get("sender"),
            "lease_until": _when(data.get("lease_until")),
        }
    if event == "succeeded":
        return {
            "completed_at": at,
            "sender": None,
            "lease_until": None,
            "object_count": data.get("object_count"),
            "bytes_total": data.get("bytes_total"),
            "script_path": data.get("script_path", subject.get("script_path")),
        }
    if event in ("failed", "aborted"):
        return {
            "failure_reason": data.get("reason"),
            "sender": None,
            "lease_until": None,
            "completed_at": at,
        }
    if event == "retried":
        return {"failure_reason": None, "completed_at": None}
    if event == "commented":
        return {}
    raise KeyError(f"no projection for event {event!r}")


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
