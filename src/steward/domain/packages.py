"""Data packages: the build workflow, name rules and the read-model projector.

A package is built from a manifest into a BagIt bag. The seed system this replaces left jobs
RUNNING forever when anything but the report failed and made a new package on every retry;
here every failure moves the package to ``failed`` with its reason, and a retry continues the
same package (same id, same folder) instead of making another.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from steward.domain.roles import STAFF, Role
from steward.domain.workflow import ANY_STATE, State, Transition, define_workflow
from steward.errors import Detail

KIND = "package"
MODES = ("copy", "link", "fetch")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ACTIVE = ("pending", "building")

_STAFF = frozenset(STAFF)
READERS = frozenset({*STAFF, Role.REVIEWER.value, Role.VIEWER.value})

WORKFLOW = define_workflow(
    name="package",
    kind=KIND,
    states=[
        State("pending", description="accepted; waiting for a builder"),
        State("building", description="files are being copied and hashed into the bag"),
        State("built", description="complete and validated; ready to share"),
        State("failed", description="the build stopped; the reason says why; retry continues it"),
        State("aborted", terminal=True, description="stopped on purpose; partial files removed"),
        State("expired", terminal=True, description="past its keep-until date; files removed"),
        State("deleted", terminal=True, description="removed on request; history kept"),
    ],
    initial="pending",
    create=Transition("create", "created", (), "pending", _STAFF, (), "accept a package request"),
    transitions=[
        Transition(
            "start", "build_started", ("pending",), "building", _STAFF, (), "begin building"
        ),
        Transition(
            "resume",
            "build_resumed",
            ("building",),
            None,
            _STAFF,
            (),
            "take over a build whose builder stopped (its lease ran out)",
        ),
        Transition("finish", "built", ("building",), "built", _STAFF, (), "mark the bag complete"),
        Transition(
            "fail",
            "build_failed",
            ("pending", "building"),
            "failed",
            _STAFF,
            (),
            "record why the build stopped",
        ),
        Transition(
            "retry",
            "retried",
            ("failed",),
            "pending",
            _STAFF,
            (),
            "build a failed package again (files already done are kept)",
        ),
        Transition(
            "abort",
            "aborted",
            ("pending", "building", "failed"),
            "aborted",
            _STAFF,
            (),
            "stop the package for good",
        ),
        Transition(
            "expire", "expired", ("built",), "expired", _STAFF, (), "remove files past keep-until"
        ),
        Transition(
            "delete",
            "deleted",
            ("pending", "built", "failed"),
            "deleted",
            _STAFF,
            (),
            "remove the package's files (refused while building)",
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
    clock_stop=("built", "failed", "aborted"),
)

SUBJECT_FIELDS = (
    "name",
    "mode",
    "layout",
    "filters",
    "manifest_digest",
    "file_count",
    "total_size",
    "created_by",
    "description",
    "libraries",
    "warnings",
)


def check_name(name: str) -> list[Detail]:
    """Names become folder names and appear in scripts: keep them to a safe alphabet."""
    if NAME_RE.match(name) and ".." not in name:
        return []
    return [
        Detail(
            "not a valid package name",
            field="name",
            value=name,
            accepted="1-128 letters, digits, '-', '_' or '.', starting with a letter or digit",
        )
    ]


def check_mode(mode: str) -> list[Detail]:
    if mode in MODES:
        return []
    return [Detail("unknown mode", field="mode", value=mode, accepted=", ".join(MODES))]


def project(
    event: str, at: datetime, actor: str, data: Mapping[str, Any], subject: Mapping[str, Any]
) -> dict[str, Any]:
    """Read-model changes an event causes (state/version/timestamps are set by the engine)."""
    if event == "created":
        return {k: data[k] for k in SUBJECT_FIELDS if k in data}
    if event in ("build_started", "build_resumed"):
        return {
            "failure_reason": None,
            "builder": data.get("builder"),
            "lease_until": _when(data.get("lease_until")),
        }
    if event == "built":
        return {
            "completed_at": at,
            "builder": None,
            "lease_until": None,
            "file_count": data.get("file_count", subject.get("file_count")),
            "total_size": data.get("total_size", subject.get("total_size")),
            "keep_until": _when(data.get("keep_until")),
        }
    if event in ("build_failed", "aborted"):
        return {
            "failure_reason": data.get("reason"),
            "builder": None,
            "lease_until": None,
            "completed_at": at,
        }
    if event == "retried":
        return {"failure_reason": None, "completed_at": None}
    if event in ("expired", "deleted"):
        return {"files_removed_at": at}
    if event == "commented":
        return {}
    raise KeyError(f"no projection for event {event!r}")


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
