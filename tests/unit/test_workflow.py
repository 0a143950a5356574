"""The state-machine engine: definitions are checked when defined, decisions are pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.domain import requests
from steward.domain.roles import ALL_ROLES
from steward.domain.workflow import (
    ANY_STATE,
    Context,
    Decision,
    Guard,
    State,
    Transition,
    Workflow,
    define_workflow,
)
from steward.errors import (
    Detail,
    Forbidden,
    InvalidTransition,
    StewardError,
    WorkflowDefinitionError,
)

EDITORS = frozenset({"editor"})


def tr(
    command: str,
    event: str,
    sources: Iterable[str],
    target: str | None,
    *,
    roles: Iterable[str] = EDITORS,
    guards: Iterable[str] = (),
) -> Transition:
    return Transition(command, event, tuple(sources), target, frozenset(roles), tuple(guards))


def _not_weekend(ctx: Context) -> str | None:
    return "no publishing at weekends" if ctx.data.get("weekend") else None


def _author_only(ctx: Context) -> str | None:
    if ctx.subject.get("author") != ctx.actor:
        return f"only the author ({ctx.subject.get('author')}) may do this"
    return None


def spec(**overrides: Any) -> dict[str, Any]:
    """A small sound document workflow; tests break one part at a time."""
    base: dict[str, Any] = {
        "name": "document",
        "kind": "document",
        "states": [
            State("draft"),
            State("review"),
            State("published", terminal=True),
            State("binned", terminal=True),
        ],
        "initial": "draft",
        "create": tr("create", "created", (), "draft"),
        "transitions": [
            tr("send", "sent", ["draft"], "review"),
            tr("withdraw", "withdrawn", ["review"], "draft", guards=["author_only"]),
            tr(
                "publish",
                "published",
                ["review"],
                "published",
                roles={"chief"},
                guards=["not_weekend"],
            ),
            tr("bin", "binned", [ANY_STATE], "binned"),
            tr("note", "noted", [ANY_STATE], None, roles={"editor", "chief", "reader"}),
        ],
        "guards": {"not_weekend": _not_weekend, "author_only": _author_only},
    }
    base.update(overrides)
    return base


BIN_OPEN = tr("bin", "binned", ["draft", "review"], "binned")
"""``bin`` limited to the document's states, so added states have no way out through it."""


def build(**overrides: Any) -> Workflow:
    return define_workflow(**spec(**overrides))


def problems(**overrides: Any) -> list[Detail]:
    with pytest.raises(WorkflowDefinitionError) as info:
        build(**overrides)
    assert info.value.details, "a refused definition must say why"
    return info.value.details


def found(details: list[Detail]) -> set[tuple[str, str | None]]:
    return {(d.message, d.value) for d in details}


def ctx(
    actor: str = "eve",
    roles: Iterable[str] = ("editor",),
    subject: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Context:
    return Context(
        actor=actor,
        roles=frozenset(roles),
        subject=subject if subject is not None else {"author": actor},
        data=data or {},
    )


# ---- definitions -------------------------------------------------------------------------


def test_a_sound_definition_is_accepted_and_described() -> None:
    wf = build()
    assert wf.state_names == ("draft", "review", "published", "binned")
    assert wf.terminal_states == {"published", "binned"}
    # Every workflow also has the annotation Steward records an effect's outcome with.
    assert wf.commands == (
        "create", "send", "withdraw", "publish", "bin", "note", "record_effect"
    )  # fmt: skip
    assert wf.event_types == (
        "created", "sent", "withdrawn", "published", "binned", "noted", "effect_recorded"
    )  # fmt: skip
    assert wf.event_for("publish") == "published"
    assert wf.event_for("create") == "created"
    assert wf.state("review") == State("review")
    with pytest.raises(KeyError):
        wf.event_for("shred")
    with pytest.raises(KeyError):
        wf.state("shredded")


def test_unknown_source_state_is_refused() -> None:
    details = problems(
        transitions=[*spec()["transitions"], tr("send", "sent", ["drfat"], "review")]
    )
    assert ("unknown source state", "drfat") in found(details)
    assert any(d.field == "transitions.send" for d in details)


def test_unknown_target_state_is_refused() -> None:
    details = problems(
        transitions=[*spec()["transitions"], tr("archive", "archived", ["review"], "archive")]
    )
    assert ("unknown target state", "archive") in found(details)


def test_unknown_target_of_the_create_command_is_refused() -> None:
    details = problems(create=tr("create", "created", (), "drafting"))
    assert ("unknown target state", "drafting") in found(details)


def test_unknown_initial_state_is_refused() -> None:
    details = problems(initial="new")
    assert ("initial state is not declared", "new") in found(details)
    assert any(d.field == "initial" for d in details)


def test_unreachable_state_is_refused() -> None:
    details = problems(states=[*spec()["states"], State("limbo", terminal=True)])
    assert found(details) == {("unreachable from the initial state", "limbo")}


def test_exit_from_a_terminal_state_is_refused() -> None:
    details = problems(
        transitions=[*spec()["transitions"], tr("revive", "revived", ["binned"], "draft")]
    )
    assert ("a terminal state has an exit", "binned") in found(details)


def test_a_wildcard_command_is_not_an_exit_from_terminal_states() -> None:
    wf = build()
    assert wf.transition_for("bin", "published") is None
    assert wf.transition_for("bin", "review") is not None
    assert wf.commands_in("published") == ["note"]
    assert wf.commands_in("draft") == ["send", "bin", "note"]


def test_non_terminal_state_without_a_way_out_is_a_trap() -> None:
    # "bin" leaves every state, so take it away to make the trap real.
    details = problems(
        states=[*spec()["states"], State("stuck")],
        transitions=[
            *(t for t in spec()["transitions"] if t.command != "bin"),
            BIN_OPEN,
            tr("park", "parked", ["draft"], "stuck"),
        ],
    )
    assert found(details) == {("trap state: non-terminal with no way out", "stuck")}


def test_a_state_whose_only_exit_loops_back_to_itself_is_a_trap() -> None:
    details = problems(
        states=[*spec()["states"], State("spinning")],
        transitions=[
            *(t for t in spec()["transitions"] if t.command != "bin"),
            BIN_OPEN,
            tr("spin", "spun", ["draft"], "spinning"),
            tr("spin", "spun", ["spinning"], "spinning"),
        ],
    )
    assert found(details) == {("trap state: non-terminal with no way out", "spinning")}


def test_a_cycle_with_no_terminal_reachable_is_a_trap() -> None:
    details = problems(
        states=[*spec()["states"], State("ping"), State("pong")],
        transitions=[
            *(t for t in spec()["transitions"] if t.command != "bin"),
            BIN_OPEN,
            tr("serve", "served", ["draft"], "ping"),
            tr("hit", "hit_back", ["ping"], "pong"),
            tr("return", "returned", ["pong"], "ping"),
        ],
    )
    assert found(details) == {
        ("no terminal state can be reached from here", "ping"),
        ("no terminal state can be reached from here", "pong"),
    }


def test_a_workflow_without_terminal_states_is_refused() -> None:
    details = problems(
        states=[State("draft"), State("review")],
        transitions=[
            tr("send", "sent", ["draft"], "review"),
            tr("withdraw", "withdrawn", ["review"], "draft"),
        ],
        guards={},
    )
    assert ("no terminal state", None) in found(details)


def test_the_same_command_twice_for_one_state_is_refused() -> None:
    details = problems(
        transitions=[*spec()["transitions"], tr("send", "sent", ["draft"], "published")]
    )
    assert ("command declared twice for one state", "draft") in found(details)


def test_a_wildcard_command_also_declared_for_one_state_is_ambiguous() -> None:
    details = problems(
        transitions=[*spec()["transitions"], tr("note", "noted", ["review"], None)],
    )
    assert ("command declared twice for one state", "review") in found(details)


def test_unknown_guard_is_refused_and_the_known_guards_are_named() -> None:
    details = problems(
        transitions=[
            *(t for t in spec()["transitions"] if t.command != "send"),
            tr("send", "sent", ["draft"], "review", guards=["is_ready"]),
        ]
    )
    [detail] = [d for d in details if d.message == "unknown guard"]
    assert detail.value == "is_ready"
    assert detail.field == "transitions.send"
    assert detail.accepted == "author_only, not_weekend"


def test_unknown_guard_without_any_guards_defined() -> None:
    details = problems(
        transitions=[
            tr("send", "sent", ["draft"], "review", guards=["is_ready"]),
            tr("bin", "binned", [ANY_STATE], "binned"),
        ],
        states=[State("draft"), State("review"), State("binned", terminal=True)],
        guards=None,
    )
    [detail] = [d for d in details if d.message == "unknown guard"]
    assert detail.accepted == "none defined"


def test_a_transition_nobody_may_issue_is_refused() -> None:
    details = problems(
        transitions=[
            *(t for t in spec()["transitions"] if t.command != "send"),
            tr("send", "sent", ["draft"], "review", roles=()),
        ]
    )
    assert [d.field for d in details if d.message == "no role may issue this command"] == [
        "transitions.send"
    ]


def test_a_create_command_nobody_may_issue_is_refused() -> None:
    details = problems(create=tr("create", "created", (), "draft", roles=()))
    assert [d.field for d in details] == ["transitions.create"]
    assert details[0].message == "no role may issue this command"


def test_a_state_declared_twice_is_refused() -> None:
    details = problems(states=[*spec()["states"], State("review")])
    assert ("state declared twice", "review") in found(details)


def test_clock_states_must_be_declared() -> None:
    details = problems(clock_start="sent", clock_stop=["published", "done"])
    assert found(details) == {("unknown state", "sent"), ("unknown state", "done")}
    assert {d.field for d in details} == {"clock_start", "clock_stop"}


def test_every_problem_is_listed_at_once() -> None:
    details = problems(
        states=[*spec()["states"], State("limbo"), State("orphan", terminal=True)],
        initial="draft",
        transitions=[
            *(t for t in spec()["transitions"] if t.command not in {"send", "bin"}),
            tr("send", "sent", ["draft"], "review", guards=["is_ready"]),
            tr("bin", "binned", ["draft", "review"], "binned"),
            tr("revive", "revived", ["binned"], "draft"),
            tr("drop", "dropped", ["draft"], "limbo", roles=()),
            tr("tidy", "tidied", ["archive"], "draft"),
        ],
    )
    assert found(details) == {
        ("unknown guard", "is_ready"),
        ("a terminal state has an exit", "binned"),
        ("no role may issue this command", None),
        ("unknown source state", "archive"),
        ("unreachable from the initial state", "orphan"),
        ("trap state: non-terminal with no way out", "limbo"),
    }


def test_the_refusal_names_the_workflow_and_has_a_stable_code() -> None:
    with pytest.raises(WorkflowDefinitionError, match="'document' is not sound") as info:
        build(initial="new")
    assert info.value.code == "invalid-workflow"


# ---- decisions ---------------------------------------------------------------------------


def test_decide_returns_the_event_and_the_move() -> None:
    wf = build()
    assert wf.decide("send", "draft", ctx()) == Decision("sent", "draft", "review")
    assert wf.decide("publish", "review", ctx(roles={"chief"})) == Decision(
        "published", "review", "published"
    )
    assert wf.decide("bin", "review", ctx()) == Decision("binned", "review", "binned")


def test_a_command_that_does_not_move_keeps_the_state() -> None:
    wf = build()
    for state in wf.state_names:
        assert wf.decide("note", state, ctx(roles={"reader"})) == Decision("noted", state, state)


def test_decide_create_starts_in_the_initial_state() -> None:
    wf = build()
    assert wf.decide_create(ctx()) == Decision("created", None, "draft")
    with pytest.raises(Forbidden, match="a new document"):
        wf.decide_create(ctx(roles={"reader"}))


# ---- entry states: a creation that names where the subject starts ------------------------
IMPORTED = State("imported")
"""A document brought in from elsewhere already under review, or straight into ``imported``."""


def with_entries(*entry: str, states: Iterable[State] = ()) -> dict[str, Any]:
    return spec(
        states=[*spec()["states"], IMPORTED, *states],
        transitions=[*spec()["transitions"], tr("adopt", "adopted", ["imported"], "draft")],
        entry=entry,
    )


def test_a_creation_may_start_in_a_declared_entry_state() -> None:
    wf = define_workflow(**with_entries("review", "imported"))
    assert wf.entry_states == ("draft", "review", "imported")
    assert wf.decide_create(ctx()) == Decision("created", None, "draft")  # as before
    assert wf.decide_create(ctx(), "imported") == Decision("created", None, "imported")
    assert wf.decide_create(ctx(), "draft") == Decision("created", None, "draft")
    with pytest.raises(InvalidTransition) as err:
        wf.decide_create(ctx(), "published")
    assert err.value.details[0].accepted == "draft, review, imported"
    # the state is judged before the actor, as for every other command
    with pytest.raises(InvalidTransition):
        wf.decide_create(ctx(roles={"reader"}), "published")
    with pytest.raises(Forbidden):
        wf.decide_create(ctx(roles={"reader"}), "imported")


def test_without_entry_states_a_creation_starts_only_in_the_initial_state() -> None:
    wf = build()
    assert wf.entry_states == ("draft",)
    with pytest.raises(InvalidTransition):
        wf.decide_create(ctx(), "review")


def test_a_state_reached_only_from_an_entry_state_is_reachable() -> None:
    # ``imported`` has no way in but a creation: unreachable without the entry, fine with it
    assert ("unreachable from the initial state", "imported") in found(problems(**with_entries()))
    define_workflow(**with_entries("imported"))


def test_entry_states_must_be_declared_and_not_terminal() -> None:
    details = problems(**with_entries("imported", "archived", "published"))
    assert ("unknown state", "archived") in found(details)
    assert ("a subject cannot start in a terminal state", "published") in found(details)
    assert all(d.field == "entry" for d in details if d.value in ("archived", "published"))


def test_mermaid_starts_at_every_entry_state() -> None:
    wf = define_workflow(**with_entries("imported"))
    lines = wf.mermaid().splitlines()
    assert lines[1:3] == ["    [*] --> draft", "    [*] --> imported"]


def test_an_invalid_transition_names_the_commands_allowed_now() -> None:
    wf = build()
    with pytest.raises(InvalidTransition) as info:
        wf.decide("publish", "draft", ctx(roles={"chief"}))
    assert str(info.value) == (
        "cannot publish: the document is draft; allowed now: send, bin, note"
    )
    [detail] = info.value.details
    assert (detail.field, detail.value, detail.accepted) == ("state", "draft", "send, bin, note")


def test_an_invalid_transition_from_a_final_state_says_so() -> None:
    wf = build(transitions=[t for t in spec()["transitions"] if t.command != "note"])
    with pytest.raises(InvalidTransition, match=r"allowed now: nothing \(it is final\)"):
        wf.decide("send", "published", ctx())


def test_an_unknown_command_is_an_invalid_transition_listing_the_commands() -> None:
    wf = build()
    with pytest.raises(InvalidTransition, match="unknown command 'shred' for document") as info:
        wf.decide("shred", "draft", ctx())
    [detail] = info.value.details
    assert detail.accepted == "send, withdraw, publish, bin, note"


def test_a_missing_role_is_forbidden_and_names_the_roles_needed() -> None:
    wf = build()
    with pytest.raises(Forbidden) as info:
        wf.decide("publish", "review", ctx(actor="eve", roles={"editor", "reader"}))
    message = str(info.value)
    assert message.startswith("eve may not publish this document")
    assert "needs one of the roles chief" in message
    assert "eve has editor, reader here" in message
    [detail] = info.value.details
    assert (detail.field, detail.accepted) == ("role", "chief")


def test_an_actor_with_no_role_is_told_so() -> None:
    wf = build()
    with pytest.raises(Forbidden, match="eve has no role here"):
        wf.decide("send", "draft", ctx(roles=()))


def test_a_refusing_guard_is_forbidden_with_its_reason() -> None:
    wf = build()
    with pytest.raises(Forbidden) as info:
        wf.decide("publish", "review", ctx(roles={"chief"}, data={"weekend": True}))
    assert str(info.value) == "eve may not publish this document: no publishing at weekends"
    [detail] = info.value.details
    assert (detail.message, detail.field) == ("no publishing at weekends", "not_weekend")


def test_guards_see_the_subject() -> None:
    wf = build()
    assert wf.decide(
        "withdraw", "review", ctx(actor="eve", subject={"author": "eve"})
    ).to_state == ("draft")
    with pytest.raises(Forbidden, match=r"only the author \(ann\)"):
        wf.decide("withdraw", "review", ctx(actor="eve", subject={"author": "ann"}))


def test_the_state_is_checked_before_the_actor() -> None:
    wf = build()
    with pytest.raises(InvalidTransition):
        wf.decide("publish", "draft", ctx(roles={"reader"}))


def test_available_lists_only_what_this_actor_may_do_now() -> None:
    wf = build()
    assert wf.available("draft", ctx()) == ["send", "bin", "note"]
    assert wf.available("review", ctx(actor="eve", subject={"author": "eve"})) == [
        "withdraw",
        "bin",
        "note",
    ]
    assert wf.available("review", ctx(actor="eve", subject={"author": "ann"})) == ["bin", "note"]
    assert wf.available("review", ctx(roles={"chief"})) == ["publish", "note"]
    assert wf.available("review", ctx(roles={"chief"}, data={"weekend": True})) == ["note"]
    assert wf.available("published", ctx(roles={"editor", "chief"})) == ["note"]
    assert wf.available("draft", ctx(roles={"stranger"})) == []


def test_available_lists_a_command_once_even_if_declared_for_several_states() -> None:
    wf = build()
    assert wf.available("draft", ctx(roles={"editor", "chief", "reader"})).count("note") == 1


def test_transition_between_finds_the_command_for_a_move() -> None:
    wf = build()
    found_t = wf.transition_between("review", "published")
    assert found_t is not None
    assert found_t.command == "publish"
    via_wildcard = wf.transition_between("draft", "binned")
    assert via_wildcard is not None
    assert via_wildcard.command == "bin"
    assert wf.transition_between("published", "binned") is None
    assert wf.transition_between("draft", "published") is None


def test_mermaid_draws_every_moving_transition_and_the_start_and_end_edges() -> None:
    wf = build()
    lines = wf.mermaid().splitlines()
    assert lines[0] == "stateDiagram-v2"
    body = {line.strip() for line in lines[1:]}
    assert body == {
        "[*] --> draft",
        "draft --> review: send",
        "review --> draft: withdraw",
        "review --> published: publish",
        "draft --> binned: bin",
        "review --> binned: bin",
        "published --> [*]",
        "binned --> [*]",
    }


def test_mermaid_of_the_access_request_workflow() -> None:
    wf = requests.WORKFLOW
    text = wf.mermaid()
    assert "[*] --> draft" in text
    for t in wf.transitions:
        if t.target is None:
            assert f": {t.command}" not in text
            continue
        for source in t.sources:
            assert f"{source} --> {t.target}: {t.command}" in text
    for state in wf.terminal_states:
        assert f"{state} --> [*]" in text
    for state in set(wf.state_names) - wf.terminal_states:
        assert f"{state} --> [*]" not in text


# ---- properties on the access-request workflow ------------------------------------------

WF = requests.WORKFLOW
PEOPLE = ["ada", "bea", "rita", "rob", "sam"]
contexts = st.builds(
    Context,
    actor=st.sampled_from(PEOPLE),
    roles=st.frozensets(st.sampled_from(sorted(ALL_ROLES)), max_size=3),
    subject=st.fixed_dictionaries(
        {
            "requester": st.sampled_from(["ada", "bea"]),
            "reviewer": st.sampled_from([None, "rita", "rob"]),
        }
    ),
)
commands = st.sampled_from([*WF.commands, "shred"])


@settings(max_examples=300)
@given(steps=st.lists(st.tuples(commands, contexts), max_size=30))
def test_random_commands_never_leave_the_declared_states(
    steps: list[tuple[str, Context]],
) -> None:
    state = WF.initial
    for command, context in steps:
        allowed = WF.available(state, context)
        try:
            decision = WF.decide(command, state, context)
        except (InvalidTransition, Forbidden):
            assert command not in allowed
            continue
        assert command in allowed
        assert decision.from_state == state
        assert decision.to_state in WF.state_names
        assert decision.event == WF.event_for(command)
        if state in WF.terminal_states:
            assert decision.to_state == state, f"{command} left terminal state {state}"
        state = decision.to_state


@settings(max_examples=300)
@given(state=st.sampled_from(WF.state_names), context=contexts)
def test_every_available_command_is_decided(state: str, context: Context) -> None:
    for command in WF.available(state, context):
        decision = WF.decide(command, state, context)
        assert decision.to_state in WF.state_names


@given(state=st.sampled_from(WF.state_names), context=contexts, command=commands)
def test_decide_refuses_only_with_steward_errors(
    state: str, context: Context, command: str
) -> None:
    refusal: StewardError | None = None
    try:
        WF.decide(command, state, context)
    except (InvalidTransition, Forbidden) as exc:  # anything else fails the test
        refusal = exc
    assert refusal is None or refusal.details
    assert (refusal is None) == (command in WF.available(state, context))


def test_guards_are_plain_functions_of_the_context() -> None:
    guard: Guard = requests.GUARDS["not_own"]
    assert guard(Context("ada", frozenset({"reviewer"}), {"requester": "ada"})) is not None
    assert guard(Context("rita", frozenset({"reviewer"}), {"requester": "ada"})) is None
