"""Access requests: the workflow (modelled on REMS), field rules and the read-model projector."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from steward.domain.duo import normalise as normalise_duo
from steward.domain.roles import STAFF, Role
from steward.domain.workflow import ANY_STATE, Context, State, Transition, define_workflow
from steward.errors import Detail

KIND = "access_request"

_DECIDERS = frozenset({Role.REVIEWER.value, *STAFF})
_EVERYONE = frozenset(r.value for r in Role)
_APPLICANTS = frozenset({Role.REQUESTER.value, *STAFF})
OPEN = ("draft", "submitted", "returned")


def _is_staff(ctx: Context) -> bool:
    return bool(ctx.roles & STAFF)


def _own_or_staff(ctx: Context) -> str | None:
    if ctx.subject.get("requester") == ctx.actor or _is_staff(ctx):
        return None
    return f"only the requester ({ctx.subject.get('requester')}) or project staff may do this"


def _not_own(ctx: Context) -> str | None:
    if ctx.subject.get("requester") == ctx.actor:
        return "nobody may decide on their own request"
    return None


def _assigned_reviewer(ctx: Context) -> str | None:
    reviewer = ctx.subject.get("reviewer")
    if reviewer and reviewer != ctx.actor and not _is_staff(ctx):
        return f"the request is assigned to reviewer {reviewer}"
    return None


def _can_see(ctx: Context) -> str | None:
    if ctx.roles - {Role.REQUESTER.value}:
        return None
    return _own_or_staff(ctx)


GUARDS = {
    "own_or_staff": _own_or_staff,
    "not_own": _not_own,
    "assigned_reviewer": _assigned_reviewer,
    "can_see": _can_see,
}

WORKFLOW = define_workflow(
    name="access-request",
    kind=KIND,
    states=[
        State("draft", description="being written by the requester"),
        State("submitted", sla=timedelta(days=4), description="waiting for a reviewer"),
        State(
            "returned", sla=timedelta(days=14), description="sent back to the requester for changes"
        ),
        State("approved", description="access granted until it expires or is revoked"),
        State("rejected", terminal=True, description="access refused"),
        State("cancelled", terminal=True, description="withdrawn before a decision"),
        State("revoked", terminal=True, description="granted access taken back"),
        State("expired", terminal=True, description="granted access ran out"),
    ],
    initial="draft",
    create=Transition(
        "create", "created", (), "draft", _APPLICANTS, description="start a draft request"
    ),
    transitions=[
        Transition(
            "submit",
            "submitted",
            ("draft",),
            "submitted",
            _APPLICANTS,
            ("own_or_staff",),
            "send the request for review",
        ),
        Transition(
            "return",
            "returned",
            ("submitted",),
            "returned",
            _DECIDERS,
            ("not_own", "assigned_reviewer"),
            "ask the requester for changes",
        ),
        Transition(
            "resubmit",
            "resubmitted",
            ("returned",),
            "submitted",
            _APPLICANTS,
            ("own_or_staff",),
            "send the changed request back for review",
        ),
        Transition(
            "approve",
            "approved",
            ("submitted",),
            "approved",
            _DECIDERS,
            ("not_own", "assigned_reviewer"),
            "grant access",
        ),
        Transition(
            "reject",
            "rejected",
            ("submitted",),
            "rejected",
            _DECIDERS,
            ("not_own", "assigned_reviewer"),
            "refuse access",
        ),
        Transition(
            "cancel",
            "cancelled",
            OPEN,
            "cancelled",
            _APPLICANTS,
            ("own_or_staff",),
            "withdraw the request",
        ),
        Transition(
            "revoke",
            "revoked",
            ("approved",),
            "revoked",
            _DECIDERS,
            ("not_own",),
            "take granted access back",
        ),
        Transition(
            "expire",
            "expired",
            ("approved",),
            "expired",
            frozenset(STAFF),
            (),
            "end access whose expiry date has passed",
        ),
        Transition(
            "edit",
            "edited",
            ("draft", "returned"),
            None,
            _APPLICANTS,
            ("own_or_staff",),
            "change the request's fields",
        ),
        Transition(
            "assign-reviewer",
            "reviewer_assigned",
            OPEN,
            None,
            frozenset(STAFF),
            (),
            "choose who reviews the request",
        ),
        Transition(
            "comment",
            "commented",
            (ANY_STATE,),
            None,
            _EVERYONE,
            ("can_see",),
            "add a note to the timeline",
        ),
    ],
    guards=GUARDS,
    clock_start="submitted",
    clock_stop=("approved", "rejected", "cancelled"),
)

REASON_REQUIRED = frozenset({"return", "reject", "revoke"})
EDITABLE_FIELDS = ("title", "institution", "project_lead", "intended_use", "datasets", "duo_codes")
SUBJECT_FIELDS = (
    "title",
    "requester",
    "institution",
    "project_lead",
    "intended_use",
    "datasets",
    "duo_codes",
    "reviewer",
)
"""What a request says about itself, as recorded by its ``created`` event."""
REQUIRED_TO_SUBMIT = ("title", "institution", "project_lead", "intended_use", "datasets")
MAX_TITLE = 200


@dataclass(frozen=True)
class RequestFields:
    title: str
    institution: str = ""
    project_lead: str = ""
    intended_use: str = ""
    datasets: tuple[str, ...] = ()
    duo_codes: tuple[str, ...] = ()


def check_fields(
    fields: RequestFields, *, row: int | None = None
) -> tuple[RequestFields, list[Detail]]:
    """Normalise what a person typed and list every problem with it."""
    problems: list[Detail] = []
    title = fields.title.strip()
    if not title:
        problems.append(Detail("a title is required", field="title", row=row))
    elif len(title) > MAX_TITLE:
        problems.append(Detail(f"longer than {MAX_TITLE} characters", field="title", row=row))
    duo, duo_problems = normalise_duo(list(fields.duo_codes), row=row)
    problems += duo_problems
    datasets = tuple(dict.fromkeys(d.strip() for d in fields.datasets if d.strip()))
    return RequestFields(
        title=title,
        institution=fields.institution.strip(),
        project_lead=fields.project_lead.strip(),
        intended_use=fields.intended_use.strip(),
        datasets=datasets,
        duo_codes=tuple(duo),
    ), problems


@dataclass(frozen=True)
class FilingRefusal:
    rule: str
    """"staff only" (the filer may not act for others) or "requester role" (the person named
    may not hold requests)."""
    message: str


def filing_refusal(
    actor: str,
    requester: str,
    actor_roles: frozenset[str],
    requester_roles: Callable[[], frozenset[str]],
    *,
    project: str,
) -> FilingRefusal | None:
    """Why ``actor`` may not file a request whose requester is ``requester`` (None: they may).

    The rule for filing on someone's behalf, one copy for live commands and imports: only
    project staff may, and only for a member who is a requester. Filing for oneself is the
    workflow's creation rule (``decide_create``). ``requester_roles`` is asked only when
    needed: looking the requester up is the caller's I/O.
    """
    if requester == actor:
        return None
    if not actor_roles & STAFF:
        return FilingRefusal(
            "staff only", f"{actor} may not file a request on behalf of {requester}"
        )
    if Role.REQUESTER.value not in requester_roles():
        return FilingRefusal("requester role", f"{requester} is not a requester in {project}")
    return None


def check_ready_to_submit(subject: Mapping[str, Any]) -> list[Detail]:
    """What a complete request needs before a reviewer sees it."""
    return [
        Detail("required before submitting", field=name)
        for name in REQUIRED_TO_SUBMIT
        if not subject.get(name)
    ]


def project(
    event: str, at: datetime, actor: str, data: Mapping[str, Any], subject: Mapping[str, Any]
) -> dict[str, Any]:
    """Read-model changes an event causes (state/version/timestamps are set by the engine)."""
    if event == "created":
        return {k: data[k] for k in (*SUBJECT_FIELDS, "external_id") if k in data}
    if event in ("submitted", "resubmitted"):
        return {"submitted_at": subject.get("submitted_at") or at}
    if event in ("approved", "rejected"):
        changes: dict[str, Any] = {
            "decided_at": at,
            "decided_by": actor,
            "decision_reason": data.get("reason"),
        }
        if event == "approved" and data.get("expires_at"):
            expires = datetime.fromisoformat(data["expires_at"])
            changes["expires_at"] = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
        return changes
    if event in ("returned", "cancelled", "revoked", "expired"):
        return {"decision_reason": data.get("reason")}
    if event == "edited":
        return {k: data[k] for k in EDITABLE_FIELDS if k in data}
    if event == "reviewer_assigned":
        return {"reviewer": data["reviewer"]}
    if event == "commented":
        return {}
    raise KeyError(f"no projection for event {event!r}")
