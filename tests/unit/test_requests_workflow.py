"""The access-request workflow (modelled on REMS), its field rules and its projector."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from steward.domain.requests import (
    EDITABLE_FIELDS,
    MAX_TITLE,
    OPEN,
    REASON_REQUIRED,
    REQUIRED_TO_SUBMIT,
    WORKFLOW,
    RequestFields,
    check_fields,
    check_ready_to_submit,
    project,
)
from steward.domain.workflow import EFFECT_RECORDED, Context, Decision
from steward.errors import Forbidden, InvalidTransition

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

ROLES = {
    "ada": {"requester"},
    "bea": {"requester"},
    "rita": {"reviewer"},
    "rob": {"reviewer"},
    "sam": {"steward"},
    "root": {"admin"},
    "vic": {"viewer"},
}


def as_(actor: str, roles: Iterable[str] | None = None, **subject: Any) -> Context:
    facts = {"requester": "ada", "reviewer": "rita"}
    facts.update(subject)
    return Context(actor, frozenset(ROLES[actor] if roles is None else roles), facts)


def walk(*steps: tuple[str, str]) -> str:
    """Apply ``(command, actor)`` steps from a new draft; return the final state."""
    state = WORKFLOW.decide_create(as_("ada")).to_state
    for command, actor in steps:
        state = WORKFLOW.decide(command, state, as_(actor)).to_state
    return state


# ---- shape ---------------------------------------------------------------------------------


def test_states_are_those_of_rems() -> None:
    assert set(WORKFLOW.state_names) == {
        "draft",
        "submitted",
        "returned",
        "approved",
        "rejected",
        "cancelled",
        "revoked",
        "expired",
    }
    assert WORKFLOW.initial == "draft"
    assert WORKFLOW.terminal_states == {"rejected", "cancelled", "revoked", "expired"}
    assert WORKFLOW.kind == "access_request"


def test_waiting_states_have_slas_and_the_clock_is_declared() -> None:
    assert WORKFLOW.state("submitted").sla == timedelta(days=4)
    assert WORKFLOW.state("returned").sla == timedelta(days=14)
    assert WORKFLOW.state("draft").sla is None
    assert WORKFLOW.clock_start == "submitted"
    assert WORKFLOW.clock_stop == {"approved", "rejected", "cancelled"}


def test_every_command_has_an_event_type() -> None:
    events = [WORKFLOW.event_for(command) for command in WORKFLOW.commands]
    assert len(events) == len(set(events)) == len(WORKFLOW.event_types)
    assert set(events) == set(WORKFLOW.event_types)


def test_commands_are_imperative_and_events_past_tense() -> None:
    commands = set(WORKFLOW.commands)
    events = set(WORKFLOW.event_types)
    assert not commands & events
    for command in commands:
        assert not command.endswith("ed"), command
        assert command == command.lower()
    for event in events:
        assert event.endswith("ed"), event
        assert event == event.lower()


SAMPLE_DATA: dict[str, Any] = {
    "title": "Genomes",
    "requester": "ada",
    "reviewer": "rita",
    "reason": "why not",
    "expires_at": "2027-03-01T00:00:00+00:00",
    "datasets": ["ds1"],
}


@pytest.mark.parametrize("event", [e for e in WORKFLOW.event_types if e != EFFECT_RECORDED])
def test_every_event_type_is_handled_by_the_projector(event: str) -> None:
    changes = project(event, AT, "rita", SAMPLE_DATA, {"requester": "ada"})
    assert isinstance(changes, dict)
    assert set(changes) <= {
        "title",
        "requester",
        "institution",
        "project_lead",
        "intended_use",
        "datasets",
        "duo_codes",
        "reviewer",
        "external_id",
        "submitted_at",
        "decided_at",
        "decided_by",
        "decision_reason",
        "expires_at",
    }
    assert "state" not in changes
    assert "version" not in changes


def test_an_event_type_the_projector_does_not_know_is_refused() -> None:
    with pytest.raises(KeyError, match="no projection for event 'granted'"):
        project("granted", AT, "rita", {}, {})


def test_reasons_are_required_for_decisions_that_disappoint() -> None:
    assert set(WORKFLOW.commands) >= REASON_REQUIRED
    assert {"return", "reject", "revoke"} == REASON_REQUIRED


# ---- paths ---------------------------------------------------------------------------------


def test_create_starts_a_draft_for_requesters_and_staff_only() -> None:
    assert WORKFLOW.decide_create(as_("ada")) == Decision("created", None, "draft")
    assert WORKFLOW.decide_create(as_("sam")).to_state == "draft"
    with pytest.raises(Forbidden):
        WORKFLOW.decide_create(as_("rita"))
    with pytest.raises(Forbidden):
        WORKFLOW.decide_create(as_("vic"))


def test_the_full_rems_path_with_a_return() -> None:
    state = WORKFLOW.initial
    steps = [
        ("submit", "ada", "submitted", "submitted"),
        ("return", "rita", "returned", "returned"),
        ("resubmit", "ada", "resubmitted", "submitted"),
        ("approve", "rita", "approved", "approved"),
        ("revoke", "rita", "revoked", "revoked"),
    ]
    for command, actor, event, target in steps:
        decision = WORKFLOW.decide(command, state, as_(actor))
        assert decision == Decision(event, state, target)
        state = decision.to_state
    assert state in WORKFLOW.terminal_states


def test_approved_access_can_expire() -> None:
    assert walk(("submit", "ada"), ("approve", "rita"), ("expire", "sam")) == "expired"


def test_approved_access_expiry_is_for_staff_only() -> None:
    with pytest.raises(Forbidden, match="admin, steward"):
        WORKFLOW.decide("expire", "approved", as_("rita"))


def test_a_submitted_request_can_be_rejected() -> None:
    assert walk(("submit", "ada"), ("reject", "rita")) == "rejected"


@pytest.mark.parametrize("state", OPEN)
def test_the_requester_can_cancel_an_open_request(state: str) -> None:
    assert WORKFLOW.decide("cancel", state, as_("ada")) == Decision("cancelled", state, "cancelled")


@pytest.mark.parametrize("state", ["approved", "rejected", "revoked", "expired", "cancelled"])
def test_a_decided_request_cannot_be_cancelled(state: str) -> None:
    with pytest.raises(InvalidTransition, match=f"the access-request is {state}"):
        WORKFLOW.decide("cancel", state, as_("ada"))


@pytest.mark.parametrize("state", ["rejected", "cancelled", "revoked", "expired"])
def test_final_states_only_take_comments(state: str) -> None:
    assert WORKFLOW.commands_in(state) == ["comment"]
    assert WORKFLOW.available(state, as_("root")) == ["comment"]
    assert WORKFLOW.decide("comment", state, as_("ada")) == Decision("commented", state, state)


def test_approve_needs_a_submitted_request() -> None:
    with pytest.raises(InvalidTransition) as info:
        WORKFLOW.decide("approve", "draft", as_("rita"))
    assert "allowed now: submit, cancel, edit, assign-reviewer, comment" in str(info.value)


@pytest.mark.parametrize("state", ["draft", "returned"])
def test_edits_are_possible_only_while_the_requester_holds_the_pen(state: str) -> None:
    assert WORKFLOW.decide("edit", state, as_("ada")) == Decision("edited", state, state)


@pytest.mark.parametrize("state", ["submitted", "approved", "rejected"])
def test_edits_are_refused_once_submitted(state: str) -> None:
    with pytest.raises(InvalidTransition):
        WORKFLOW.decide("edit", state, as_("ada"))


# ---- who may do what -----------------------------------------------------------------------


def test_nobody_may_approve_their_own_request() -> None:
    ctx = as_("ada", roles={"requester", "reviewer"}, reviewer=None)
    with pytest.raises(Forbidden, match="nobody may decide on their own request") as info:
        WORKFLOW.decide("approve", "submitted", ctx)
    assert info.value.details[0].field == "not_own"


@pytest.mark.parametrize("command", ["approve", "reject", "return"])
def test_not_even_staff_may_decide_on_their_own_request(command: str) -> None:
    with pytest.raises(Forbidden, match="their own request"):
        WORKFLOW.decide(command, "submitted", as_("sam", requester="sam"))


def test_staff_may_not_revoke_their_own_access() -> None:
    with pytest.raises(Forbidden, match="their own request"):
        WORKFLOW.decide("revoke", "approved", as_("sam", requester="sam"))


@pytest.mark.parametrize("command", ["approve", "reject", "return"])
def test_a_reviewer_who_is_not_the_assigned_one_is_forbidden(command: str) -> None:
    with pytest.raises(Forbidden, match="assigned to reviewer rita") as info:
        WORKFLOW.decide(command, "submitted", as_("rob"))
    assert info.value.details[0].field == "assigned_reviewer"


def test_any_reviewer_may_decide_an_unassigned_request() -> None:
    decision = WORKFLOW.decide("approve", "submitted", as_("rob", reviewer=None))
    assert decision.to_state == "approved"


@pytest.mark.parametrize("actor", ["sam", "root"])
def test_staff_may_decide_a_request_assigned_to_someone_else(actor: str) -> None:
    assert WORKFLOW.decide("approve", "submitted", as_(actor)).to_state == "approved"


def test_a_requester_cannot_approve_and_is_told_which_roles_can() -> None:
    with pytest.raises(Forbidden) as info:
        WORKFLOW.decide("approve", "submitted", as_("bea"))
    assert "needs one of the roles admin, reviewer, steward" in str(info.value)


def test_another_requester_cannot_submit_or_cancel_your_request() -> None:
    with pytest.raises(Forbidden, match=r"only the requester \(ada\) or project staff"):
        WORKFLOW.decide("submit", "draft", as_("bea"))
    with pytest.raises(Forbidden, match=r"only the requester \(ada\)"):
        WORKFLOW.decide("cancel", "submitted", as_("bea"))


def test_staff_may_submit_on_a_requesters_behalf() -> None:
    assert WORKFLOW.decide("submit", "draft", as_("sam")).to_state == "submitted"


def test_only_staff_assign_reviewers_and_only_to_open_requests() -> None:
    assert WORKFLOW.decide("assign-reviewer", "submitted", as_("sam")) == Decision(
        "reviewer_assigned", "submitted", "submitted"
    )
    with pytest.raises(Forbidden):
        WORKFLOW.decide("assign-reviewer", "submitted", as_("rita"))
    with pytest.raises(InvalidTransition):
        WORKFLOW.decide("assign-reviewer", "approved", as_("sam"))


def test_requesters_comment_only_on_their_own_requests() -> None:
    assert WORKFLOW.decide("comment", "submitted", as_("ada")).event == "commented"
    with pytest.raises(Forbidden, match=r"only the requester \(ada\)"):
        WORKFLOW.decide("comment", "submitted", as_("bea"))
    assert WORKFLOW.decide("comment", "submitted", as_("vic")).event == "commented"


def test_available_shows_each_person_their_own_buttons() -> None:
    assert WORKFLOW.available("draft", as_("ada")) == ["submit", "cancel", "edit", "comment"]
    assert WORKFLOW.available("draft", as_("bea")) == []
    assert WORKFLOW.available("submitted", as_("rita")) == [
        "return",
        "approve",
        "reject",
        "comment",
    ]
    assert WORKFLOW.available("submitted", as_("rob")) == ["comment"]
    assert WORKFLOW.available("submitted", as_("sam")) == [
        "return",
        "approve",
        "reject",
        "cancel",
        "assign-reviewer",
        "comment",
    ]
    assert WORKFLOW.available("submitted", as_("sam", requester="sam")) == [
        "cancel",
        "assign-reviewer",
        "comment",
    ]
    assert WORKFLOW.available("approved", as_("sam")) == ["revoke", "expire", "comment"]
    assert WORKFLOW.available("approved", as_("ada")) == ["comment"]


def test_imported_histories_can_be_replayed_by_state_pairs() -> None:
    pairs = {
        ("draft", "submitted"): "submit",
        ("returned", "submitted"): "resubmit",
        ("submitted", "returned"): "return",
        ("submitted", "approved"): "approve",
        ("approved", "expired"): "expire",
        ("returned", "cancelled"): "cancel",
    }
    for (source, target), command in pairs.items():
        t = WORKFLOW.transition_between(source, target)
        assert t is not None
        assert t.command == command
    assert WORKFLOW.transition_between("draft", "approved") is None


# ---- the projector ----------------------------------------------------------------------------


def test_created_copies_the_known_fields_only() -> None:
    data = {"title": "T", "requester": "ada", "datasets": ["a"], "state": "approved", "x": 1}
    assert project("created", AT, "ada", data, {}) == {
        "title": "T",
        "requester": "ada",
        "datasets": ["a"],
    }


def test_the_first_submission_time_is_kept_on_resubmission() -> None:
    first = project("submitted", AT, "ada", {}, {})
    assert first == {"submitted_at": AT}
    later = AT + timedelta(days=3)
    assert project("resubmitted", later, "ada", {}, {"submitted_at": AT}) == {"submitted_at": AT}


def test_approval_records_who_when_why_and_until_when() -> None:
    changes = project(
        "approved",
        AT,
        "rita",
        {"reason": "fine", "expires_at": "2027-03-01T00:00:00+00:00"},
        {},
    )
    assert changes == {
        "decided_at": AT,
        "decided_by": "rita",
        "decision_reason": "fine",
        "expires_at": datetime(2027, 3, 1, tzinfo=UTC),
    }
    assert "expires_at" not in project("approved", AT, "rita", {}, {})


def test_rejection_and_other_endings_record_the_reason() -> None:
    assert project("rejected", AT, "rita", {"reason": "no"}, {})["decision_reason"] == "no"
    for event in ("returned", "cancelled", "revoked", "expired"):
        assert project(event, AT, "x", {"reason": "r"}, {}) == {"decision_reason": "r"}


def test_edits_change_only_editable_fields() -> None:
    data = {"title": "New", "requester": "bea", "reviewer": "rob", "duo_codes": ["DUO:0000042"]}
    assert project("edited", AT, "ada", data, {}) == {
        "title": "New",
        "duo_codes": ["DUO:0000042"],
    }
    assert "requester" not in EDITABLE_FIELDS


def test_reviewer_assignment_and_comments() -> None:
    assert project("reviewer_assigned", AT, "sam", {"reviewer": "rob"}, {}) == {"reviewer": "rob"}
    assert project("commented", AT, "vic", {"text": "hi"}, {}) == {}


# ---- fields --------------------------------------------------------------------------------


def test_check_fields_normalises_what_people_type() -> None:
    fields, problems = check_fields(
        RequestFields(
            title="  Whole genomes  ",
            institution=" Uni ",
            project_lead=" Dr Lead ",
            intended_use=" cancer ",
            datasets=(" ds1 ", "ds2", "ds1", "  "),
            duo_codes=(" gru ", "DUO:0000042", "hmb"),
        )
    )
    assert problems == []
    assert fields == RequestFields(
        title="Whole genomes",
        institution="Uni",
        project_lead="Dr Lead",
        intended_use="cancer",
        datasets=("ds1", "ds2"),
        duo_codes=("DUO:0000042", "DUO:0000006"),
    )


def test_check_fields_lists_every_problem_with_its_row() -> None:
    _, problems = check_fields(
        RequestFields(title="   ", duo_codes=("DUO:12", "DUO:9999999", "GRU")), row=7
    )
    assert [(p.field, p.message, p.value, p.row) for p in problems] == [
        ("title", "a title is required", None, 7),
        ("duo_codes", "malformed DUO code", "DUO:12", 7),
        ("duo_codes", "unknown DUO code", "DUO:9999999", 7),
    ]


def test_titles_have_a_maximum_length() -> None:
    fields, problems = check_fields(RequestFields(title="x" * MAX_TITLE))
    assert problems == []
    assert len(fields.title) == MAX_TITLE
    _, problems = check_fields(RequestFields(title="x" * (MAX_TITLE + 1)))
    assert [(p.field, p.message) for p in problems] == [
        ("title", f"longer than {MAX_TITLE} characters")
    ]


def test_a_complete_request_is_ready_to_submit() -> None:
    subject = {
        "title": "T",
        "institution": "Uni",
        "project_lead": "Lead",
        "intended_use": "use",
        "datasets": ["ds1"],
    }
    assert check_ready_to_submit(subject) == []


def test_an_empty_request_lists_every_missing_field() -> None:
    problems = check_ready_to_submit({"title": "T", "datasets": []})
    assert [p.field for p in problems] == [
        "institution",
        "project_lead",
        "intended_use",
        "datasets",
    ]
    assert {p.message for p in problems} == {"required before submitting"}
    assert [p.field for p in check_ready_to_submit({})] == list(REQUIRED_TO_SUBMIT)
