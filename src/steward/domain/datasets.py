"""Datasets: what the crawl found where, as a workflow whose states are the ingest stages.

A dataset's state is the highest-ranked stage it is found in (external, incoming, loading,
analysing, processed, published — a crawl config may rank them in another order, never name
others), or ``missing`` once it has vanished from every place that was listed completely. It is
created directly in the stage it is first found in (the workflow's ``entry`` states), so its
history starts where the data was, not in a made-up first state.

Steward moves datasets itself: every command but ``comment``, ``withdraw`` and ``verify``
belongs to the crawl (role :data:`~steward.domain.roles.SYSTEM`); ``verify`` records what
recomputing a dataset's sidecar checksums found (staff ask for it, Steward's jobs may). The
seed tracker kept no history; here every move, location gained or lost, metadata change and
problem is an event, so ``dataset history`` shows the whole past with the time spent in each
stage. ``withdraw`` lets staff retire a dataset that is gone for good: without an end state,
a vanished dataset would stay ``missing`` for ever (and the engine refuses a workflow nothing
can finish).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from steward.domain.roles import STAFF, SYSTEM, Role
from steward.domain.workflow import ANY_STATE, State, Transition, define_workflow

KIND = "dataset"
STAGES = ("external", "incoming", "loading", "analysing", "processed", "published")
"""Every stage a crawl config may name, in the default order (lowest rank first)."""
MISSING = "missing"
WITHDRAWN = "withdrawn"

_SYSTEM = frozenset({SYSTEM})
_STAFF = frozenset(STAFF)
READERS = frozenset({*STAFF, Role.REVIEWER.value, Role.VIEWER.value})
"""Who sees a project's datasets: its staff, reviewers and viewers (not requesters, who see
the catalogue; not analysts, who belong to sites)."""

_STAGE_MEANING = {
    "external": "known from an outside source (an archive, a discovery endpoint), not ingested",
    "incoming": "arrived in the incoming area",
    "loading": "being loaded",
    "analysing": "being analysed",
    "processed": "analysis finished",
    "published": "published",
}


def move_command(stage: str) -> str:
    """The command that moves a dataset to ``stage`` (``move-to-loading``)."""
    return f"move-to-{stage}"


def reappear_command(stage: str) -> str:
    """The command that brings a missing dataset back, found in ``stage``."""
    return f"reappear-in-{stage}"


VANISH = "vanish"
ADD_LOCATION = "add-location"
REMOVE_LOCATION = "remove-location"
CHANGE_METADATA = "change-metadata"
RECORD_PROBLEMS = "record-problems"
CLEAR_PROBLEMS = "clear-problems"
DISCOVER = "discover"
VERIFY = "verify"

# ---- what the durable per-file record says of a file (``dataset_files.outcome``) ----------
FILE_PRESENT = "present"
"""Listed by the last crawl that looked at its place; not verified (or changed since)."""
FILE_REMOVED = "removed"
"""Gone since a listing that saw its whole place without it."""
FILE_VERIFIED = "verified"
"""Present, and its content matched its checksum sidecar when last verified."""
FILE_MISMATCH = "mismatch"
"""Present, and its content did not match its checksum sidecar when last verified."""
FILE_UNREADABLE = "unreadable"
"""Present, but Steward could not read it when verifying it."""
FILE_MISSING = "missing"
"""Named by the dataset's expected-files manifest, not found by the last listing of its place
(its first and last seen times say since when, and until when, it was found missing)."""
FILE_OUTCOMES = (
    FILE_PRESENT,
    FILE_REMOVED,
    FILE_VERIFIED,
    FILE_MISMATCH,
    FILE_UNREADABLE,
    FILE_MISSING,
)
ABSENT = (FILE_REMOVED, FILE_MISSING)
"""Every other outcome means the file is there as far as the crawl knows."""
VERIFY_OUTCOMES = (FILE_VERIFIED, FILE_MISMATCH, FILE_UNREADABLE)


def _annotation(
    command: str, event: str, description: str, roles: frozenset[str] = _SYSTEM
) -> Transition:
    return Transition(command, event, (ANY_STATE,), None, roles, (), description)


WORKFLOW = define_workflow(
    name="dataset",
    kind=KIND,
    states=[
        *(State(stage, description=_STAGE_MEANING[stage]) for stage in STAGES),
        State(MISSING, description="gone from every place that was listed completely"),
        State(WITHDRAWN, terminal=True, description="gone for good; no longer tracked"),
    ],
    initial=STAGES[0],
    entry=STAGES[1:],
    create=Transition(
        DISCOVER,
        "discovered",
        (),
        STAGES[0],
        _SYSTEM,
        (),
        "a crawl finds a dataset for the first time, in the stage it is found in",
    ),
    transitions=[
        *(
            Transition(
                move_command(stage),
                "state_changed",
                tuple(s for s in STAGES if s != stage),
                stage,
                _SYSTEM,
                (),
                f"the highest-ranked stage it is found in is now {stage}",
            )
            for stage in STAGES
        ),
        Transition(
            VANISH,
            "missing",
            STAGES,
            MISSING,
            _SYSTEM,
            (),
            "gone from every source that listed completely, and unknown to none",
        ),
        *(
            Transition(
                reappear_command(stage),
                "reappeared",
                (MISSING,),
                stage,
                _SYSTEM,
                (),
                f"found again, in {stage}",
            )
            for stage in STAGES
        ),
        _annotation(ADD_LOCATION, "location_added", "found in one more place"),
        _annotation(REMOVE_LOCATION, "location_removed", "gone from a place that listed it"),
        _annotation(CHANGE_METADATA, "metadata_changed", "its metadata files say otherwise now"),
        _annotation(RECORD_PROBLEMS, "problems_found", "unreadable files, duplicates…"),
        _annotation(CLEAR_PROBLEMS, "problems_cleared", "no problem any more"),
        _annotation(
            VERIFY,
            "verified",
            "its data files' checksums recomputed and compared with their sidecars",
            _STAFF | _SYSTEM,
        ),
        Transition(
            "withdraw",
            WITHDRAWN,
            (MISSING,),
            WITHDRAWN,
            _STAFF,
            (),
            "stop tracking a dataset that is gone for good",
        ),
        Transition(
            "comment", "commented", (ANY_STATE,), None, READERS, (), "add a note to the timeline"
        ),
    ],
)

# ---- metadata as columns ----------------------------------------------------------------------
COLUMN_FIELDS = ("title", "experiment_type", "organism", "curator", "secondary_accessions")
"""Read-model columns derived from the extracted metadata (``fields`` keeps all of it)."""


def _texts(value: Any) -> list[str]:
    """A field's value as a list of non-empty texts (a text, a number or a list of them)."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            text = str(item).strip()
            if text and text not in out:
                out.append(text)
    return out


def columns_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The searchable columns of a dataset's metadata: MAGE-TAB names (``curators``) and the
    plain ones an endpoint's records may use (``curator``, ``organisms``) alike."""
    title = _texts(fields.get("title"))
    return {
        "title": title[0] if title else "",
        "experiment_type": "; ".join(_texts(fields.get("experiment_type"))),
        "organism": _texts(fields.get("organism", fields.get("organisms"))),
        "curator": "; ".join(_texts(fields.get("curators", fields.get("curator")))),
        "secondary_accessions": _texts(fields.get("secondary_accessions")),
    }


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each field whose value differs, with the old and new value (``None``: absent)."""
    return {
        key: {"old": old.get(key), "new": new.get(key)}
        for key in sorted({*old, *new})
        if old.get(key) != new.get(key)
    }


def apply_changes(
    fields: Mapping[str, Any], changes: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    out = dict(fields)
    for key, change in changes.items():
        if change.get("new") is None:
            out.pop(key, None)
        else:
            out[key] = change["new"]
    return out


def _problem_columns(problems: Sequence[Mapping[str, Any]], duplicate_of: Any) -> dict[str, Any]:
    return {
        "problems": [dict(p) for p in problems],
        "problem_count": len(problems),
        "duplicate_of": duplicate_of,
    }


# ---- the projector ----------------------------------------------------------------------------
def project(
    event: str, at: datetime, actor: str, data: Mapping[str, Any], subject: Mapping[str, Any]
) -> dict[str, Any]:
    """Read-model changes an event causes (state/version/timestamps are set by the engine)."""
    if event == "discovered":
        fields = dict(data.get("fields") or {})
        return {
            "accession": data["accession"],
            "fields": fields,
            **columns_of(fields),
            "technologies": list(data.get("technologies") or []),
            **_problem_columns(data.get("problems") or [], data.get("duplicate_of")),
            "last_seen_at": at,
            "missing_since": None,
        }
    if event == "metadata_changed":
        fields = apply_changes(subject.get("fields") or {}, data.get("changed") or {})
        changes: dict[str, Any] = {"fields": fields, **columns_of(fields)}
        tech = data.get("technologies")
        if tech is not None:
            changes["technologies"] = list(tech.get("new") or [])
        return changes
    if event == "problems_found":
        return _problem_columns(data.get("problems") or [], data.get("duplicate_of"))
    if event == "problems_cleared":
        return _problem_columns([], None)
    if event == "missing":
        return {"missing_since": at}
    if event == "reappeared":
        return {"missing_since": None, "last_seen_at": at}
    if event in ("state_changed", "location_added", "location_removed", "commented", "verified"):
        return {}
    if event == WITHDRAWN:
        return {}
    raise KeyError(f"no projection for event {event!r}")
