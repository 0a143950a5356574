"""The access-request service on real databases: lifecycle, permissions, idempotency, filters.

Every test runs on a SQLite file and on a throwaway PostgreSQL cluster (the ``consortium``
fixture). Events are placed at known times with ``at=`` so read models can be checked exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from steward.db.models import AccessRequest, AuditEntry, Event
from steward.domain.requests import WORKFLOW, RequestFields
from steward.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from steward.services import access, catalog, requests
from steward.services.requests import RequestFilter, RequestView
from tests.conftest import Consortium

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KIND = "access_request"
FULL = RequestFields(
    title="Tumour genomes",
    institution="University of Somewhere",
    project_lead="Prof X",
    intended_use="Find driver mutations",
    datasets=("raw/wgs",),
    duo_codes=("GRU",),
)


def t(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours, minutes=minutes)


# ---- helpers -------------------------------------------------------------------------------


def draft(
    c: Consortium,
    *,
    actor: str | None = None,
    when: datetime | None = None,
    fields: RequestFields = FULL,
    project: str | None = None,
) -> RequestView:
    return requests.create(
        c.db,
        actor=actor or c.requester,
        project=project or c.project,
        fields=fields,
        at=when or T0,
    )


def submitted(c: Consortium, *, actor: str | None = None, when: datetime | None = None) -> str:
    when = when or T0
    v = draft(c, actor=actor, when=when)
    requests.act(
        c.db,
        actor=actor or c.requester,
        request_id=v.id,
        command="submit",
        at=when + timedelta(hours=1),
    )
    return v.id


def events(c: Consortium, rid: str) -> list[Event]:
    with c.db.transaction() as s:
        return list(
            s.scalars(
                select(Event)
                .where(Event.subject_kind == KIND, Event.subject_id == rid)
                .order_by(Event.seq)
            )
        )


def event_count(c: Consortium) -> int:
    with c.db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(Event)) or 0)


def audit(c: Consortium) -> list[tuple[str, str, str | None, str | None, str]]:
    with c.db.transaction() as s:
        return [
            (a.actor, a.action, a.project_id, a.subject_id, a.outcome)
            for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def read_model(c: Consortium, rid: str) -> AccessRequest:
    with c.db.transaction() as s:
        row = s.get(AccessRequest, rid)
        assert row is not None
        return row


def assert_consistent(c: Consortium, rid: str) -> list[Event]:
    """The read model is exactly what the events say, and seq runs 1..version without gaps."""
    evs = events(c, rid)
    row = read_model(c, rid)
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    assert row.version == len(evs)
    assert evs[0].type == "created"
    assert evs[0].from_state is None
    for before, after in itertools.pairwise(evs):
        assert after.from_state == before.to_state, (before.type, after.type)
        assert after.at >= before.at
    assert row.state == evs[-1].to_state
    assert row.created_at == evs[0].at
    assert row.updated_at == evs[-1].at
    moves = [e for e in evs if e.from_state != e.to_state]
    assert row.state_since == moves[-1].at
    subs = [e for e in evs if e.type in ("submitted", "resubmitted")]
    assert row.submitted_at == (subs[0].at if subs else None)
    decisions = [e for e in evs if e.type in ("approved", "rejected")]
    assert row.decided_at == (decisions[-1].at if decisions else None)
    assert row.decided_by == (decisions[-1].actor if decisions else None)
    assigned = [e for e in evs if e.type == "reviewer_assigned"]
    assert row.reviewer == (assigned[-1].data["reviewer"] if assigned else None)
    with_reason = [e for e in evs if e.type in ("approved", "rejected", "returned", "revoked")]
    if with_reason and with_reason[-1] is evs[-1]:
        assert row.decision_reason == evs[-1].data.get("reason")
    return evs


def ids(views: Iterable[RequestView]) -> list[str]:
    return [v.id for v in views]


# ---- lifecycle -----------------------------------------------------------------------------


def test_full_lifecycle_with_every_command(consortium: Consortium) -> None:
    c = consortium
    v = draft(c, fields=RequestFields(title="Half-written"))
    assert (v.state, v.version, v.requester, v.created_at) == ("draft", 1, c.requester, T0)
    assert v.submitted_at is None
    assert v.decided_at is None

    v = requests.act(
        c.db,
        actor=c.requester,
        request_id=v.id,
        command="edit",
        changes=FULL,
        at=t(hours=1),
    )
    assert (v.state, v.version, v.state_since, v.updated_at) == ("draft", 2, T0, t(hours=1))
    assert (v.title, v.institution, v.datasets, v.duo_codes) == (
        FULL.title,
        FULL.institution,
        ["raw/wgs"],
        ["DUO:0000042"],
    )

    v = requests.act(
        c.db,
        actor=c.steward,
        request_id=v.id,
        command="assign-reviewer",
        reviewer=c.reviewer,
        at=t(hours=2),
    )
    assert (v.reviewer, v.version, v.state) == (c.reviewer, 3, "draft")

    v = requests.act(c.db, actor=c.requester, request_id=v.id, command="submit", at=t(1))
    assert (v.state, v.version, v.state_since, v.submitted_at) == ("submitted", 4, t(1), t(1))

    v = requests.act(
        c.db,
        actor=c.reviewer,
        request_id=v.id,
        command="return",
        reason="  say which cohort  ",
        at=t(2),
    )
    assert (v.state, v.version, v.decision_reason) == ("returned", 5, "say which cohort")
    assert v.decided_at is None

    v = requests.act(
        c.db,
        actor=c.requester,
        request_id=v.id,
        command="comment",
        text="the 2024 cohort",
        at=t(2, hours=1),
    )
    assert (v.state, v.version, v.state_since) == ("returned", 6, t(2))

    v = requests.act(
        c.db,
        actor=c.requester,
        request_id=v.id,
        command="edit",
        changes=RequestFields(
            title=FULL.title, intended_use="Find driver mutations in the 2024 cohort"
        ),
        at=t(2, hours=2),
    )
    assert v.intended_use.endswith("2024 cohort")
    assert v.institution == FULL.institution  # fields not given are kept

    v = requests.act(c.db, actor=c.requester, request_id=v.id, command="resubmit", at=t(3))
    # the clock keeps the first submission
    assert (v.state, v.version, v.state_since, v.submitted_at) == ("submitted", 8, t(3), t(1))

    v = requests.act(
        c.db,
        actor=c.reviewer,
        request_id=v.id,
        command="approve",
        expires_at=t(400),
        at=t(4),
    )
    assert (v.state, v.version, v.decided_at, v.decided_by, v.expires_at) == (
        "approved",
        9,
        t(4),
        c.reviewer,
        t(400),
    )

    v = requests.act(
        c.db,
        actor=c.steward,
        request_id=v.id,
        command="revoke",
        reason="consent withdrawn",
        at=t(5),
    )
    assert (v.state, v.version, v.decision_reason, v.state_since) == (
        "revoked",
        10,
        "consent withdrawn",
        t(5),
    )
    assert v.decided_at == t(4)  # the decision stays on record

    evs = assert_consistent(c, v.id)
    assert [(e.type, e.from_state, e.to_state, e.actor, e.at) for e in evs] == [
        ("created", None, "draft", c.requester, T0),
        ("edited", "draft", "draft", c.requester, t(hours=1)),
        ("reviewer_assigned", "draft", "draft", c.steward, t(hours=2)),
        ("submitted", "draft", "submitted", c.requester, t(1)),
        ("returned", "submitted", "returned", c.reviewer, t(2)),
        ("commented", "returned", "returned", c.requester, t(2, hours=1)),
        ("edited", "returned", "returned", c.requester, t(2, hours=2)),
        ("resubmitted", "returned", "submitted", c.requester, t(3)),
        ("approved", "submitted", "approved", c.reviewer, t(4)),
        ("revoked", "approved", "revoked", c.steward, t(5)),
    ]
    assert evs[4].data == {"reason": "say which cohort"}
    assert evs[5].data == {"text": "the 2024 cohort"}
    assert evs[8].data["expires_at"] == t(400).isoformat()


def test_reject_cancel_and_expire_paths(consortium: Consortium) -> None:
    c = consortium
    rejected = submitted(c)
    v = requests.act(
        c.db, actor=c.reviewer, request_id=rejected, command="reject", reason="no ethics", at=t(2)
    )
    assert (v.state, v.decided_at, v.decided_by, v.decision_reason) == (
        "rejected",
        t(2),
        c.reviewer,
        "no ethics",
    )

    cancelled_draft = draft(c).id
    v = requests.act(c.db, actor=c.requester, request_id=cancelled_draft, command="cancel", at=t(1))
    assert (v.state, v.submitted_at, v.decided_at) == ("cancelled", None, None)

    cancelled_open = submitted(c)
    v = requests.act(c.db, actor=c.steward, request_id=cancelled_open, command="cancel", at=t(1))
    assert v.state == "cancelled"

    expired = submitted(c)
    requests.act(c.db, actor=c.reviewer, request_id=expired, command="approve", at=t(1))
    v = requests.act(c.db, actor=c.steward, request_id=expired, command="expire", at=t(30))
    assert (v.state, v.state_since, v.decided_at) == ("expired", t(30), t(1))

    for rid in (rejected, cancelled_draft, cancelled_open, expired):
        assert_consistent(c, rid)
    # final states accept no further moves, only comments
    with pytest.raises(InvalidTransition):
        requests.act(c.db, actor=c.requester, request_id=rejected, command="resubmit")
    v = requests.act(c.db, actor=c.requester, request_id=rejected, command="comment", text="ok")
    assert v.state == "rejected"
    assert_consistent(c, rejected)


def test_get_shows_timeline_time_in_state_and_actions(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)  # created T0, submitted T0+1h
    requests.act(c.db, actor=c.reviewer, request_id=rid, command="return", reason="x", at=t(1))
    requests.act(c.db, actor=c.requester, request_id=rid, command="resubmit", at=t(3))

    d = requests.get(c.db, actor=c.requester, request_id=rid, now=t(5))
    assert [e.type for e in d.timeline] == ["created", "submitted", "returned", "resubmitted"]
    assert [e.time_in_previous_state for e in d.timeline] == [
        None,
        3600.0,
        timedelta(days=1, hours=-1).total_seconds(),
        timedelta(days=2).total_seconds(),
    ]
    assert d.current_state_for == timedelta(days=2).total_seconds()
    assert d.time_in_state == {
        "draft": 3600.0,
        "submitted": timedelta(days=1, hours=-1).total_seconds()
        + timedelta(days=2).total_seconds(),
        "returned": timedelta(days=2).total_seconds(),
    }
    assert d.timeline[2].reason == "x"
    assert set(d.available_actions) == {"cancel", "comment"}
    reviewer_view = requests.get(c.db, actor=c.reviewer, request_id=rid, now=t(5))
    assert set(reviewer_view.available_actions) == {"return", "approve", "reject", "comment"}


# ---- permissions ---------------------------------------------------------------------------


def test_non_member_is_forbidden_and_audited(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    before = event_count(c)
    # A stranger probing an id learns neither that it exists nor which project holds it: the
    # words are exactly those for an id that does not exist.
    with pytest.raises(NotFound) as unknown:
        requests.get(c.db, actor=c.outsider, request_id="req_00000000000000000000000000")
    with pytest.raises(NotFound) as hidden:
        requests.act(c.db, actor=c.outsider, request_id=rid, command="approve")
    assert hidden.value.as_problem() == {
        **unknown.value.as_problem(),
        "detail": unknown.value.message.replace("req_00000000000000000000000000", rid),
        "errors": [{"message": "unknown request", "field": "request", "value": rid}],
    }
    assert c.project not in str(hidden.value.as_problem())
    with pytest.raises(NotFound):
        requests.act(c.db, actor=c.outsider, request_id=rid, command="comment", text="hi")
    with pytest.raises(NotFound):
        requests.get(c.db, actor=c.outsider, request_id=rid)
    with pytest.raises(NotFound) as outside:  # nor that the project exists
        requests.create(c.db, actor=c.outsider, project=c.project, fields=FULL)
    with pytest.raises(NotFound) as nowhere:
        requests.create(c.db, actor=c.outsider, project="p9", fields=FULL)
    assert outside.value.message == nowhere.value.message.replace("p9", c.project)
    assert event_count(c) == before
    assert read_model(c, rid).state == "submitted"
    assert requests.list_requests(c.db, actor=c.outsider, flt=RequestFilter()) == []
    rows = audit(c)
    assert [(a, act, subj, out) for a, act, _, subj, out in rows] == [
        (c.outsider, "approve", rid, "denied"),
        (c.outsider, "comment", rid, "denied"),
        (c.outsider, "show", rid, "denied"),
        (c.outsider, "create", None, "denied"),
    ]
    assert rows[0][2] == c.project
    reasons = [r[0] for r in _audit_reasons(c)]
    assert reasons[:3] == [f"{c.outsider} is not a member of {c.project}"] * 3


def _audit_reasons(c: Consortium) -> list[tuple[str]]:
    from steward.db.models import AuditEntry

    with c.db.transaction() as s:
        return [(r,) for r in s.scalars(select(AuditEntry.reason).order_by(AuditEntry.id))]


def test_nobody_decides_their_own_request(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    # a plain requester lacks the role
    with pytest.raises(Forbidden, match="needs one of the roles"):
        requests.act(c.db, actor=c.requester, request_id=rid, command="approve")
    # a reviewer who is also a requester may not decide on their own request
    access.add_member(
        c.db, actor=c.admin, project_id=c.project, user_id=c.reviewer2, role="requester"
    )
    own = submitted(c, actor=c.reviewer2)
    for command in ("approve", "reject", "return"):
        with pytest.raises(Forbidden, match="own request"):
            requests.act(c.db, actor=c.reviewer2, request_id=own, command=command, reason="r")
    # nor may staff
    staff_own = submitted(c, actor=c.steward)
    with pytest.raises(Forbidden, match="own request"):
        requests.act(c.db, actor=c.steward, request_id=staff_own, command="approve")
    assert read_model(c, own).state == "submitted"
    assert read_model(c, staff_own).state == "submitted"
    denied = [(a, act, subj) for a, act, _, subj, _ in audit(c)]
    assert denied == [
        (c.requester, "approve", rid),
        (c.reviewer2, "approve", own),
        (c.reviewer2, "reject", own),
        (c.reviewer2, "return", own),
        (c.steward, "approve", staff_own),
    ]
    # someone else may
    v = requests.act(c.db, actor=c.reviewer, request_id=own, command="approve")
    assert v.state == "approved"


def test_requesters_see_only_their_own(consortium: Consortium) -> None:
    c = consortium
    mine = submitted(c, actor=c.requester)
    theirs = submitted(c, actor=c.requester2)
    with pytest.raises(NotFound) as hidden:
        requests.get(c.db, actor=c.requester2, request_id=mine)
    # Not "only the requester (ada) may …": who filed it is none of bea's business.
    assert c.requester not in str(hidden.value.as_problem())
    assert hidden.value.message == f"no access request {mine!r}"
    for command in ("comment", "cancel", "edit"):
        with pytest.raises(NotFound):
            requests.act(
                c.db,
                actor=c.requester2,
                request_id=mine,
                command=command,
                text="x",
                changes=FULL,
            )
    assert read_model(c, mine).version == 2
    assert ids(requests.list_requests(c.db, actor=c.requester2, flt=RequestFilter())) == [theirs]
    assert (
        requests.list_requests(c.db, actor=c.requester2, flt=RequestFilter(requester=c.requester))
        == []
    )
    assert ids(requests.list_requests(c.db, actor=c.requester, flt=RequestFilter())) == [mine]
    both = {mine, theirs}
    for who in (c.steward, c.reviewer, c.viewer, c.admin):
        assert set(ids(requests.list_requests(c.db, actor=who, flt=RequestFilter()))) == both
    assert [(a, act, subj) for a, act, _, subj, _ in audit(c)] == [
        (c.requester2, "show", mine),
        (c.requester2, "comment", mine),
        (c.requester2, "cancel", mine),
        (c.requester2, "edit", mine),
    ]


def test_only_the_assigned_reviewer_decides(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    requests.act(
        c.db, actor=c.steward, request_id=rid, command="assign-reviewer", reviewer=c.reviewer
    )
    for command in ("approve", "reject", "return"):
        with pytest.raises(Forbidden, match=f"assigned to reviewer {c.reviewer}"):
            requests.act(c.db, actor=c.reviewer2, request_id=rid, command=command, reason="r")
    assert read_model(c, rid).state == "submitted"
    assert len(audit(c)) == 3
    d = requests.get(c.db, actor=c.reviewer2, request_id=rid)
    assert "approve" not in d.available_actions
    v = requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve")
    assert (v.state, v.decided_by) == ("approved", c.reviewer)
    # staff may step in on another request assigned to someone else
    other = submitted(c)
    requests.act(
        c.db, actor=c.steward, request_id=other, command="assign-reviewer", reviewer=c.reviewer2
    )
    v = requests.act(c.db, actor=c.steward, request_id=other, command="reject", reason="dup")
    assert v.state == "rejected"
    # reviewers may not assign reviewers
    third = submitted(c)
    with pytest.raises(Forbidden):
        requests.act(
            c.db, actor=c.reviewer, request_id=third, command="assign-reviewer", reviewer=c.reviewer
        )


def test_viewer_reads_but_cannot_act(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    d = requests.get(c.db, actor=c.viewer, request_id=rid)
    assert d.request.id == rid
    assert ids(requests.list_requests(c.db, actor=c.viewer, flt=RequestFilter())) == [rid]
    moving = {t.command for t in WORKFLOW.transitions if t.moves()}
    assert not set(d.available_actions) & (moving | {"edit", "assign-reviewer"})
    attempts: list[dict[str, Any]] = [
        {"command": "approve"},
        {"command": "reject", "reason": "r"},
        {"command": "return", "reason": "r"},
        {"command": "cancel"},
        {"command": "assign-reviewer", "reviewer": c.reviewer},
    ]
    for kwargs in attempts:
        with pytest.raises(Forbidden):
            requests.act(c.db, actor=c.viewer, request_id=rid, **kwargs)
    unsent = draft(c).id
    for command in ("submit", "edit"):
        with pytest.raises(Forbidden):
            requests.act(c.db, actor=c.viewer, request_id=unsent, command=command, changes=FULL)
    with pytest.raises(Forbidden):
        requests.create(c.db, actor=c.viewer, project=c.project, fields=FULL)
    assert read_model(c, rid).version == 2
    assert [(a, act) for a, act, *_ in audit(c)] == [
        (c.viewer, "approve"),
        (c.viewer, "reject"),
        (c.viewer, "return"),
        (c.viewer, "cancel"),
        (c.viewer, "assign-reviewer"),
        (c.viewer, "submit"),
        (c.viewer, "edit"),
        (c.viewer, "create"),
    ]


def test_unknown_or_missing_actor_is_unauthenticated(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    with pytest.raises(Unauthenticated):
        requests.act(c.db, actor=None, request_id=rid, command="approve")
    with pytest.raises(Unauthenticated):
        requests.act(c.db, actor="ghost", request_id=rid, command="approve")
    with pytest.raises(Unauthenticated):
        requests.list_requests(c.db, actor=None, flt=RequestFilter())


def test_filing_on_behalf_of_someone(consortium: Consortium) -> None:
    c = consortium
    v = requests.create(
        c.db, actor=c.steward, project=c.project, fields=FULL, requester=c.requester
    )
    assert v.requester == c.requester
    assert events(c, v.id)[0].actor == c.steward
    assert ids(requests.list_requests(c.db, actor=c.requester, flt=RequestFilter())) == [v.id]
    with pytest.raises(Forbidden, match="on behalf"):
        requests.create(
            c.db, actor=c.requester, project=c.project, fields=FULL, requester=c.requester2
        )
    with pytest.raises(ValidationFailed, match="not a requester") as err:
        requests.create(c.db, actor=c.steward, project=c.project, fields=FULL, requester=c.viewer)
    assert err.value.details[0].field == "requester"
    with pytest.raises(ValidationFailed) as err:
        requests.create(c.db, actor=c.steward, project=c.project, fields=FULL, requester="ghost")
    assert err.value.details[0].field == "requester"


# ---- refusals with precise messages --------------------------------------------------------


def test_invalid_transition_names_the_allowed_commands(consortium: Consortium) -> None:
    c = consortium
    v = draft(c)
    before = event_count(c)
    with pytest.raises(InvalidTransition) as err:
        requests.act(c.db, actor=c.reviewer, request_id=v.id, command="approve")
    allowed = ["submit", "cancel", "edit", "assign-reviewer", "comment"]
    assert err.value.message.endswith("allowed now: " + ", ".join(allowed))
    assert "draft" in err.value.message
    assert err.value.details[0].accepted == ", ".join(allowed)
    assert err.value.details[0].value == "draft"

    rid = submitted(c)
    requests.act(c.db, actor=c.reviewer, request_id=rid, command="reject", reason="no")
    after_reject = event_count(c)
    with pytest.raises(InvalidTransition, match=r"allowed now: comment$"):
        requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve")
    with pytest.raises(InvalidTransition, match="unknown command") as err:
        requests.act(c.db, actor=c.reviewer, request_id=rid, command="frobnicate")
    assert "approve" in (err.value.details[0].accepted or "")
    assert event_count(c) == after_reject > before
    assert audit(c) == []


def test_unknown_ids_are_not_found(consortium: Consortium) -> None:
    c = consortium
    missing = "req_01JZZZZZZZZZZZZZZZZZZZZZZZ"
    with pytest.raises(NotFound) as err:
        requests.act(c.db, actor=c.reviewer, request_id=missing, command="approve")
    assert err.value.details[0].value == missing
    with pytest.raises(NotFound):
        requests.get(c.db, actor=c.reviewer, request_id=missing)
    with pytest.raises(NotFound, match="no project"):
        requests.create(c.db, actor=c.requester, project="nope", fields=FULL)
    assert event_count(c) == 0


@pytest.mark.parametrize("command", ["return", "reject", "revoke"])
def test_reason_is_required(consortium: Consortium, command: str) -> None:
    c = consortium
    rid = submitted(c)
    if command == "revoke":
        requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve")
    version = read_model(c, rid).version
    for reason in (None, "", "   "):
        with pytest.raises(ValidationFailed, match="needs a reason") as err:
            requests.act(c.db, actor=c.reviewer, request_id=rid, command=command, reason=reason)
        assert [d.field for d in err.value.details] == ["reason"]
    assert read_model(c, rid).version == version
    v = requests.act(c.db, actor=c.reviewer, request_id=rid, command=command, reason="why")
    assert v.decision_reason == "why"


def test_submit_refuses_incomplete_drafts_listing_every_missing_field(
    consortium: Consortium,
) -> None:
    c = consortium
    v = draft(c, fields=RequestFields(title="Only a title"))
    with pytest.raises(ValidationFailed, match="not complete") as err:
        requests.act(c.db, actor=c.requester, request_id=v.id, command="submit")
    assert [d.field for d in err.value.details] == [
        "institution",
        "project_lead",
        "intended_use",
        "datasets",
    ]
    assert read_model(c, v.id).state == "draft"
    requests.act(
        c.db,
        actor=c.requester,
        request_id=v.id,
        command="edit",
        changes=RequestFields(
            title="Only a title", institution="Uni", project_lead="P", intended_use="U"
        ),
    )
    with pytest.raises(ValidationFailed) as err:
        requests.act(c.db, actor=c.requester, request_id=v.id, command="submit")
    assert [d.field for d in err.value.details] == ["datasets"]
    with pytest.raises(ValidationFailed) as err:
        draft(c, fields=RequestFields(title="   "))
    assert [d.field for d in err.value.details] == ["title"]
    with pytest.raises(ValidationFailed) as err:
        draft(c, fields=RequestFields(title="x" * 201))
    assert [d.field for d in err.value.details] == ["title"]


def test_duo_codes_and_datasets_are_checked_with_details(consortium: Consortium) -> None:
    c = consortium
    bad = RequestFields(
        title="Bad codes",
        datasets=("raw/wgs", "raw/rna", "../etc"),
        duo_codes=("GRU", "XYZ", "DUO:0000999", "DUO:12", "duo:0000006"),
    )
    with pytest.raises(ValidationFailed) as err:
        draft(c, fields=bad)
    got = [(d.field, d.message, d.value) for d in err.value.details]
    assert got == [
        ("duo_codes", "malformed DUO code", "XYZ"),
        ("duo_codes", "unknown DUO code", "DUO:0000999"),
        ("duo_codes", "malformed DUO code", "DUO:12"),
        ("datasets", "not a dataset, folder or access requirement of this project", "raw/rna"),
        ("datasets", "not a dataset, folder or access requirement of this project", "../etc"),
    ]
    assert all(d.accepted for d in err.value.details)
    assert event_count(c) == 0

    good = RequestFields(
        title="Good codes",
        datasets=("raw/wgs", "raw", "Phenotype terms", "raw/wgs"),
        duo_codes=("gru", "DUO:0000006", "GRU"),
    )
    v = draft(c, fields=good)
    assert v.duo_codes == ["DUO:0000042", "DUO:0000006"]
    assert v.datasets == ["raw/wgs", "raw", "Phenotype terms"]
    with pytest.raises(ValidationFailed) as err:
        requests.act(
            c.db,
            actor=c.requester,
            request_id=v.id,
            command="edit",
            changes=RequestFields(title="Good codes", duo_codes=("NOPE",), datasets=("x",)),
        )
    assert [d.field for d in err.value.details] == ["duo_codes", "datasets"]
    assert read_model(c, v.id).version == 1


def test_other_field_checks(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"command": "assign-reviewer"}, "reviewer"),
        ({"command": "assign-reviewer", "reviewer": c.requester}, "reviewer"),
        ({"command": "assign-reviewer", "reviewer": c.viewer}, "reviewer"),
        ({"command": "assign-reviewer", "reviewer": "ghost"}, "reviewer"),
        ({"command": "comment", "text": "  "}, "text"),
        ({"command": "approve", "expires_at": T0 - timedelta(days=1), "at": T0}, "expires_at"),
    ]
    for kwargs, fld in cases:
        actor = c.steward if kwargs["command"] != "approve" else c.reviewer
        with pytest.raises(ValidationFailed) as err:
            requests.act(c.db, actor=actor, request_id=rid, **kwargs)
        assert [d.field for d in err.value.details] == [fld], kwargs
    # an event may not be placed before the previous one
    with pytest.raises(ValidationFailed, match="before the previous one"):
        requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve", at=T0)
    v = draft(c)
    with pytest.raises(ValidationFailed, match="changes nothing"):
        requests.act(c.db, actor=c.requester, request_id=v.id, command="edit", changes=FULL)
    with pytest.raises(ValidationFailed, match="nothing to change"):
        requests.act(c.db, actor=c.requester, request_id=v.id, command="edit")
    with pytest.raises(InvalidTransition):
        requests.act(c.db, actor=c.requester, request_id=rid, command="edit", changes=FULL)
    assert read_model(c, rid).version == 2
    assert read_model(c, v.id).version == 1


# ---- idempotency and optimistic concurrency ------------------------------------------------


def test_create_is_idempotent(consortium: Consortium) -> None:
    c = consortium
    a = requests.create(
        c.db, actor=c.requester, project=c.project, fields=FULL, idempotency_key="k"
    )
    b = requests.create(
        c.db, actor=c.requester, project=c.project, fields=FULL, idempotency_key="k"
    )
    assert a == b
    assert event_count(c) == 1
    assert len(requests.list_requests(c.db, actor=c.admin, flt=RequestFilter())) == 1


def test_someone_elses_create_key_does_not_reveal_their_request(consortium: Consortium) -> None:
    c = consortium
    mine = requests.create(
        c.db, actor=c.requester, project=c.project, fields=FULL, idempotency_key="k"
    )
    with pytest.raises(Conflict, match="already used") as err:
        requests.create(
            c.db, actor=c.requester2, project=c.project, fields=FULL, idempotency_key="k"
        )
    assert mine.id not in str(err.value.as_problem())
    assert event_count(c) == 1
    assert requests.list_requests(c.db, actor=c.requester2, flt=RequestFilter()) == []


def test_times_without_a_zone_are_refused_with_details(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    naive = datetime(2027, 1, 1, 9, 0)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"expires_at": naive}, "expires_at"),
        ({"at": naive}, "at"),
    ]
    for kwargs, fld in cases:
        with pytest.raises(ValidationFailed) as err:
            requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve", **kwargs)
        assert [(d.field, d.value) for d in err.value.details] == [(fld, naive.isoformat())]
    with pytest.raises(ValidationFailed) as err:
        requests.create(c.db, actor=c.requester, project=c.project, fields=FULL, at=naive)
    assert [d.field for d in err.value.details] == ["at"]
    with pytest.raises(ValidationFailed) as err:
        requests.list_requests(
            c.db, actor=c.admin, flt=RequestFilter(created_from=naive, decided_to=naive)
        )
    assert [d.field for d in err.value.details] == ["created_from", "decided_to"]
    assert read_model(c, rid).version == 2
    assert event_count(c) == 2


def test_resending_a_command_returns_the_first_result(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    first = requests.act(
        c.db, actor=c.reviewer, request_id=rid, command="approve", idempotency_key="ap-1", at=t(1)
    )
    again = requests.act(
        c.db, actor=c.reviewer, request_id=rid, command="approve", idempotency_key="ap-1", at=t(2)
    )
    assert again == first
    assert [e.type for e in events(c, rid)].count("approved") == 1
    # the state moves on; the same key still answers with the first result, not an error
    requests.act(c.db, actor=c.steward, request_id=rid, command="revoke", reason="r", at=t(3))
    late = requests.act(
        c.db, actor=c.reviewer, request_id=rid, command="approve", idempotency_key="ap-1"
    )
    assert (late.state, late.version, late.decided_at) == ("approved", 3, t(1))
    evs = assert_consistent(c, rid)
    assert [e.type for e in evs] == ["created", "submitted", "approved", "revoked"]
    assert evs[2].idempotency_key == "ap-1"


def test_reusing_a_key_for_another_command_is_a_conflict(consortium: Consortium) -> None:
    c = consortium
    one, two = submitted(c), submitted(c)
    requests.act(
        c.db, actor=c.requester, request_id=one, command="comment", text="a", idempotency_key="k1"
    )
    n = event_count(c)
    with pytest.raises(Conflict, match="already used") as err:
        requests.act(
            c.db, actor=c.requester, request_id=one, command="cancel", idempotency_key="k1"
        )
    assert err.value.details[0].field == "idempotency_key"
    with pytest.raises(Conflict):  # same command, another request
        requests.act(
            c.db,
            actor=c.requester,
            request_id=two,
            command="comment",
            text="a",
            idempotency_key="k1",
        )
    with pytest.raises(Conflict):  # a command key reused to create
        requests.create(
            c.db, actor=c.requester, project=c.project, fields=FULL, idempotency_key="k1"
        )
    requests.create(c.db, actor=c.requester, project=c.project, fields=FULL, idempotency_key="k2")
    n += 1
    with pytest.raises(Conflict):  # a create key reused for a command
        requests.act(
            c.db, actor=c.requester, request_id=one, command="cancel", idempotency_key="k2"
        )
    assert event_count(c) == n
    assert read_model(c, one).state == "submitted"
    assert read_model(c, two).version == 2


def test_expected_version_mismatch_is_a_conflict(consortium: Consortium) -> None:
    c = consortium
    rid = submitted(c)
    with pytest.raises(Conflict, match="version 2, not 1") as err:
        requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve", expected_version=1)
    assert (err.value.details[0].field, err.value.details[0].accepted) == ("version", "2")
    assert read_model(c, rid).state == "submitted"
    v = requests.act(c.db, actor=c.reviewer, request_id=rid, command="approve", expected_version=2)
    assert v.version == 3
    # a stale caller whose command is no longer possible hears that it was changed under it
    with pytest.raises(Conflict):
        requests.act(
            c.db,
            actor=c.reviewer2,
            request_id=rid,
            command="reject",
            reason="r",
            expected_version=2,
        )
    assert_consistent(c, rid)


def test_expire_due_expires_only_past_approvals_and_is_safe_to_repeat(
    consortium: Consortium,
) -> None:
    c = consortium

    def approved(expires: datetime | None) -> str:
        rid = submitted(c)
        requests.act(
            c.db, actor=c.reviewer, request_id=rid, command="approve", expires_at=expires, at=t(1)
        )
        return rid

    past = approved(t(30))
    boundary = approved(t(45))
    future = approved(t(60))
    forever = approved(None)
    still_open = submitted(c)
    done = requests.expire_due(c.db, actor=c.steward, now=t(45))
    assert sorted(done) == sorted([past, boundary])
    assert requests.expire_due(c.db, actor=c.steward, now=t(45)) == []
    states = {
        rid: read_model(c, rid).state for rid in (past, boundary, future, forever, still_open)
    }
    assert states == {
        past: "expired",
        boundary: "expired",
        future: "approved",
        forever: "approved",
        still_open: "submitted",
    }
    for rid in (past, boundary):
        evs = assert_consistent(c, rid)
        assert [e.type for e in evs].count("expired") == 1
        assert evs[-1].data["reason"]
    assert requests.expire_due(c.db, actor=c.steward, now=t(61)) == [future]
    late = approved(t(70))
    with pytest.raises(Forbidden, match="may not expire"):
        requests.expire_due(c.db, actor=c.reviewer, now=t(1000))
    assert [(a, act, out) for a, act, _, _, out in audit(c)] == [(c.reviewer, "expire", "denied")]
    assert read_model(c, late).state == "approved"
    assert read_model(c, forever).state == "approved"


def test_expire_due_touches_only_the_callers_projects(consortium: Consortium) -> None:
    c = consortium
    access.create_project(c.db, actor=c.admin, project_id="p2", title="Project two")
    access.add_member(c.db, actor=c.admin, project_id="p2", user_id=c.requester, role="requester")
    catalog.add_requirement(
        c.db, actor=c.admin, project="p2", name="Scans", kind="controlled", folders=["img"]
    )
    fields = RequestFields(**{**FULL.__dict__, "datasets": ("img",)})
    elsewhere = draft(c, project="p2", fields=fields).id
    requests.act(c.db, actor=c.requester, request_id=elsewhere, command="submit", at=t(1))
    requests.act(
        c.db, actor=c.admin, request_id=elsewhere, command="approve", expires_at=t(5), at=t(2)
    )
    here = submitted(c)
    requests.act(
        c.db, actor=c.reviewer, request_id=here, command="approve", expires_at=t(6), at=t(2)
    )
    # p1's steward is nobody in p2: their run expires p1's request and leaves p2's alone
    assert requests.expire_due(c.db, actor=c.steward, now=t(10)) == [here]
    assert read_model(c, elsewhere).state == "approved"
    assert requests.expire_due(c.db, actor=c.admin, now=t(10)) == [elsewhere]
    assert read_model(c, elsewhere).state == "expired"
    assert audit(c) == []


# ---- listing ---------------------------------------------------------------------------------


@pytest.fixture
def listing(consortium: Consortium) -> dict[str, str]:
    """Five requests at known times across two projects."""
    c = consortium
    access.create_project(c.db, actor=c.admin, project_id="p2", title="Project two")
    access.add_member(c.db, actor=c.admin, project_id="p2", user_id=c.requester, role="requester")
    catalog.add_requirement(
        c.db, actor=c.admin, project="p2", name="Scans", kind="controlled", folders=["img"]
    )
    out: dict[str, str] = {}

    def make(name: str, who: str, created: datetime, project: str = c.project) -> str:
        fields = (
            RequestFields(**{**FULL.__dict__, "datasets": ("img",)}) if project == "p2" else FULL
        )
        out[name] = draft(c, actor=who, when=created, fields=fields, project=project).id
        return out[name]

    def act(name: str, actor: str, command: str, when: datetime, **kw: Any) -> None:
        requests.act(c.db, actor=actor, request_id=out[name], command=command, at=when, **kw)

    make("r1", c.requester, t(0))
    act("r1", c.steward, "assign-reviewer", t(0, 1), reviewer=c.reviewer)
    act("r1", c.requester, "submit", t(0, 2))
    act("r1", c.reviewer, "approve", t(2))

    make("r2", c.requester2, t(1))
    act("r2", c.steward, "assign-reviewer", t(1, 1), reviewer=c.reviewer2)
    act("r2", c.requester2, "submit", t(1, 2))
    act("r2", c.reviewer2, "reject", t(5), reason="no")

    make("r3", c.requester, t(3))
    act("r3", c.steward, "assign-reviewer", t(3, 1), reviewer=c.reviewer2)

    make("r4", c.requester2, t(6))
    act("r4", c.requester2, "submit", t(6, 1))

    make("r5", c.requester, t(2), project="p2")
    act("r5", c.requester, "submit", t(2, 1))
    act("r5", c.admin, "approve", t(4))
    return out


def _names(listing: dict[str, str], views: list[RequestView]) -> list[str]:
    back = {v: k for k, v in listing.items()}
    return [back[v.id] for v in views]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (RequestFilter(), ["r1", "r2", "r5", "r3", "r4"]),
        (RequestFilter(project="p1"), ["r1", "r2", "r3", "r4"]),
        (RequestFilter(project="p2"), ["r5"]),
        (RequestFilter(states=("submitted",)), ["r4"]),
        (RequestFilter(states=("approved", "rejected")), ["r1", "r2", "r5"]),
        (RequestFilter(requester="ada"), ["r1", "r5", "r3"]),
        (RequestFilter(reviewer="rob"), ["r2", "r3"]),
        (RequestFilter(created_from=t(2)), ["r5", "r3", "r4"]),
        (RequestFilter(created_to=t(2)), ["r1", "r2"]),
        (RequestFilter(created_from=t(1), created_to=t(3)), ["r2", "r5"]),
        (RequestFilter(decided_from=t(4)), ["r2", "r5"]),
        (RequestFilter(decided_to=t(4)), ["r1"]),
        (RequestFilter(decided_from=t(2), decided_to=t(5)), ["r1", "r5"]),
        # combinations are ANDed
        (RequestFilter(project="p1", requester="ada"), ["r1", "r3"]),
        (RequestFilter(requester="ada", states=("approved",)), ["r1", "r5"]),
        (RequestFilter(project="p1", reviewer="rob", states=("draft",)), ["r3"]),
        (RequestFilter(reviewer="rob", decided_from=t(0)), ["r2"]),
        (RequestFilter(requester="bea", created_from=t(2), states=("submitted",)), ["r4"]),
        (RequestFilter(requester="bea", created_from=t(2), states=("rejected",)), []),
        (RequestFilter(project="p2", created_to=t(2)), []),
        (RequestFilter(limit=2), ["r1", "r2"]),
    ],
)
def test_list_filters_each_work_and_combine(
    consortium: Consortium, listing: dict[str, str], flt: RequestFilter, expected: list[str]
) -> None:
    got = requests.list_requests(consortium.db, actor=consortium.admin, flt=flt)
    assert _names(listing, got) == expected


def test_list_respects_membership(consortium: Consortium, listing: dict[str, str]) -> None:
    c = consortium
    names = _names
    assert names(listing, requests.list_requests(c.db, actor=c.steward, flt=RequestFilter())) == [
        "r1",
        "r2",
        "r3",
        "r4",
    ]
    assert names(listing, requests.list_requests(c.db, actor=c.requester, flt=RequestFilter())) == [
        "r1",
        "r5",
        "r3",
    ]
    assert (
        names(
            listing,
            requests.list_requests(c.db, actor=c.requester2, flt=RequestFilter(requester="ada")),
        )
        == []
    )


def test_list_filter_validation(consortium: Consortium) -> None:
    c = consortium
    with pytest.raises(ValidationFailed) as err:
        requests.list_requests(c.db, actor=c.admin, flt=RequestFilter(states=("done", "approved")))
    assert [(d.field, d.value) for d in err.value.details] == [("state", "done")]
    assert "approved" in (err.value.details[0].accepted or "")
    with pytest.raises(ValidationFailed) as err:
        requests.list_requests(
            c.db,
            actor=c.admin,
            flt=RequestFilter(
                created_from=t(2), created_to=t(1), decided_from=t(2), decided_to=t(1)
            ),
        )
    assert [d.field for d in err.value.details] == ["created", "decided"]


def test_edit_without_a_title_keeps_the_title(consortium: Consortium) -> None:
    c = consortium
    fields = RequestFields(title="Keep me", institution="Uni", datasets=("raw/wgs",))
    v = requests.create(c.db, actor=c.requester, project=c.project, fields=fields)
    v = requests.act(
        c.db,
        actor=c.requester,
        request_id=v.id,
        command="edit",
        changes=RequestFields(title="", institution="Other Uni"),
    )
    assert (v.title, v.institution) == ("Keep me", "Other Uni")


def test_an_event_that_changes_nothing_still_makes_a_new_version(consortium: Consortium) -> None:
    """A comment at the very instant of the previous event changes no column of the request;
    it must still be a version of its own, or the next command collides with it."""
    v = draft(consortium)
    noted = requests.act(
        consortium.db,
        actor=consortium.requester,
        request_id=v.id,
        command="comment",
        text="same instant",
        at=T0,
    )
    assert noted.version == v.version + 1
    done = requests.act(
        consortium.db,
        actor=consortium.requester,
        request_id=v.id,
        command="submit",
        at=T0 + timedelta(hours=1),
    )
    assert (done.state, done.version) == ("submitted", v.version + 2)
    with consortium.db.transaction() as s:
        seqs = list(
            s.scalars(select(Event.seq).where(Event.subject_id == v.id).order_by(Event.seq))
        )
    assert seqs == [1, 2, 3]
