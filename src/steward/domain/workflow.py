"""State machines declared as data, checked when defined, and a pure ``decide``.

A workflow lists its states, the commands that move between them, who may issue each command
and which guards must pass. ``decide`` turns (command, current state, context) into the event to
append or a precise refusal; it performs no I/O, so services wrap it in a transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from steward.domain.roles import SYSTEM
from steward.errors import Detail, Forbidden, InvalidTransition, WorkflowDefinitionError

ANY_STATE = "*"
RECORD_EFFECT = "record_effect"
EFFECT_RECORDED = "effect_recorded"
"""Every workflow's annotation of what an outbox effect caused by its subject did (a webhook
delivered or refused): added by :func:`define_workflow`, issued only by Steward itself."""


@dataclass(frozen=True)
class Context:
    """What a decision may look at: who acts, in which roles, and the subject's facts."""

    actor: str
    roles: frozenset[str]
    subject: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


Guard = Callable[[Context], str | None]
"""Returns ``None`` when the command may go ahead, otherwise the reason it may not."""


@dataclass(frozen=True)
class State:
    name: str
    terminal: bool = False
    sla: timedelta | None = None
    description: str = ""


@dataclass(frozen=True)
class Transition:
    """``command`` (imperative) moves ``sources`` → ``target`` and is recorded as ``event``.

    ``target=None`` keeps the current state: an annotation such as a comment.
    """

    command: str
    event: str
    sources: tuple[str, ...]
    target: str | None
    roles: frozenset[str]
    guards: tuple[str, ...] = ()
    description: str = ""

    def applies_to(self, state: str) -> bool:
        return ANY_STATE in self.sources or state in self.sources

    def moves(self) -> bool:
        return self.target is not None

    @property
    def by_people(self) -> bool:
        """Someone can be given a role that issues it (not only Steward itself)."""
        return bool(self.roles - {SYSTEM})


@dataclass(frozen=True)
class Decision:
    event: str
    from_state: str | None
    to_state: str


@dataclass(frozen=True)
class Workflow:
    name: str
    kind: str
    states: tuple[State, ...]
    initial: str
    create: Transition
    transitions: tuple[Transition, ...]
    guards: Mapping[str, Guard]
    clock_start: str | None = None
    clock_stop: frozenset[str] = frozenset()
    entry: tuple[str, ...] = ()
    """States other than ``initial`` that a creation may lead to, the creation naming which
    (a dataset is first seen in whichever stage it is found in). Empty for most workflows:
    every subject starts in ``initial``."""

    # ---- look-ups -------------------------------------------------------------------------
    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def entry_states(self) -> tuple[str, ...]:
        """Every state a creation may lead to: ``initial`` first, then ``entry``."""
        return (self.initial, *(s for s in self.entry if s != self.initial))

    @property
    def terminal_states(self) -> frozenset[str]:
        return frozenset(s.name for s in self.states if s.terminal)

    @cached_property
    def commands(self) -> tuple[str, ...]:
        # Cached: ``decide`` asks for it on every command, bulk imports for every row.
        return (self.create.command, *dict.fromkeys(t.command for t in self.transitions))

    @property
    def event_types(self) -> tuple[str, ...]:
        return (self.create.event, *dict.fromkeys(t.event for t in self.transitions))

    def event_for(self, command: str) -> str:
        for t in (self.create, *self.transitions):
            if t.command == command:
                return t.event
        raise KeyError(command)

    def transition_for(self, command: str, state: str) -> Transition | None:
        for t in self.transitions:
            if t.command == command and t.applies_to(state) and self._allowed_in(t, state):
                return t
        return None

    def _allowed_in(self, t: Transition, state: str) -> bool:
        # A wildcard never lets a moving command leave a terminal state.
        return not (ANY_STATE in t.sources and t.moves() and self.state(state).terminal)

    def transition_between(self, source: str, target: str) -> Transition | None:
        """The command that moves ``source`` → ``target`` (used to replay imported histories)."""
        for t in self.transitions:
            if t.target == target and t.applies_to(source) and self._allowed_in(t, source):
                return t
        return None

    def commands_in(self, state: str) -> list[str]:
        """What people may issue in ``state`` (by role and guard: see ``available``)."""
        return [
            t.command
            for t in self.transitions
            if t.by_people and t.applies_to(state) and self._allowed_in(t, state)
        ]

    # ---- decisions ------------------------------------------------------------------------
    def _check_actor(self, t: Transition, ctx: Context, what: str) -> None:
        if not (t.roles & ctx.roles):
            raise Forbidden(
                f"{ctx.actor} may not {t.command} {what}: it needs one of the roles "
                f"{', '.join(sorted(t.roles))}; {ctx.actor} has "
                f"{', '.join(sorted(ctx.roles)) or 'no role'} here",
                [
                    Detail(
                        "missing role",
                        field="role",
                        value=",".join(sorted(ctx.roles)),
                        accepted=", ".join(sorted(t.roles)),
                    )
                ],
            )
        for name in t.guards:
            reason = self.guards[name](ctx)
            if reason is not None:
                raise Forbidden(
                    f"{ctx.actor} may not {t.command} {what}: {reason}",
                    [Detail(reason, field=name)],
                )

    def decide_create(self, ctx: Context, state: str | None = None) -> Decision:
        """The creation's event, leading to ``state`` (one of :attr:`entry_states`; ``None``:
        the initial state)."""
        target = self.initial if state is None else state
        if target not in self.entry_states:
            entries = self.entry_states
            raise InvalidTransition(
                f"a new {self.name} cannot start in {target!r}; it starts in {', '.join(entries)}",
                [
                    Detail(
                        "not a state a new subject may start in",
                        field="state",
                        value=target,
                        accepted=", ".join(entries),
                    )
                ],
            )
        self._check_actor(self.create, ctx, f"a new {self.name}")
        return Decision(self.create.event, None, target)

    def decide(self, command: str, state: str, ctx: Context) -> Decision:
        """The event ``command`` produces in ``state``, or an error saying what is allowed."""
        if command not in self.commands:
            raise InvalidTransition(
                f"unknown command {command!r} for {self.name}",
                [
                    Detail(
                        "unknown command",
                        field="command",
                        value=command,
                        accepted=", ".join(
                            dict.fromkeys(t.command for t in self.transitions if t.by_people)
                        ),
                    )
                ],
            )
        t = self.transition_for(command, state)
        if t is None:
            allowed = self.commands_in(state)
            raise InvalidTransition(
                f"cannot {command}: the {self.name} is {state}; allowed now: "
                f"{', '.join(allowed) or 'nothing (it is final)'}",
                [
                    Detail(
                        "not allowed in this state",
                        field="state",
                        value=state,
                        accepted=", ".join(allowed),
                    )
                ],
            )
        self._check_actor(t, ctx, f"this {self.name}")
        return Decision(t.event, state, t.target or state)

    def available(self, state: str, ctx: Context) -> list[str]:
        """Commands this actor may issue now: what the UI shows as buttons."""
        out = []
        for t in self.transitions:
            if not (t.applies_to(state) and self._allowed_in(t, state)):
                continue
            if not (t.roles & ctx.roles):
                continue
            if any(self.guards[g](ctx) is not None for g in t.guards):
                continue
            out.append(t.command)
        return list(dict.fromkeys(out))

    # ---- pictures -------------------------------------------------------------------------
    def mermaid(self) -> str:
        lines = ["stateDiagram-v2", *(f"    [*] --> {s}" for s in self.entry_states)]
        for t in self.transitions:
            if not t.moves():
                continue
            sources = self.state_names if ANY_STATE in t.sources else t.sources
            for s in sources:
                if self.state(s).terminal and ANY_STATE in t.sources:
                    continue
                lines.append(f"    {s} --> {t.target}: {t.command}")
        lines.extend(f"    {s.name} --> [*]" for s in self.states if s.terminal)
        return "\n".join(lines)


def define_workflow(
    *,
    name: str,
    kind: str,
    states: Iterable[State],
    initial: str,
    create: Transition,
    transitions: Iterable[Transition],
    guards: Mapping[str, Guard] | None = None,
    clock_start: str | None = None,
    clock_stop: Iterable[str] = (),
    entry: Iterable[str] = (),
) -> Workflow:
    """Build a workflow and refuse it if it is unsound; every problem is listed.

    Every workflow also gets :data:`RECORD_EFFECT`, so an effect's outcome is an event on the
    subject that caused it, whatever the kind."""
    record_effect = Transition(
        RECORD_EFFECT,
        EFFECT_RECORDED,
        (ANY_STATE,),
        None,
        frozenset({SYSTEM}),
        (),
        "Steward records what an effect (a webhook call, a mail) did",
    )
    wf = Workflow(
        name=name,
        kind=kind,
        states=tuple(states),
        initial=initial,
        create=create,
        transitions=(*transitions, record_effect),
        guards=dict(guards or {}),
        clock_start=clock_start,
        clock_stop=frozenset(clock_stop),
        entry=tuple(entry),
    )
    problems = validate(wf)
    if problems:
        raise WorkflowDefinitionError(f"workflow {name!r} is not sound", problems)
    return wf


def validate(wf: Workflow) -> list[Detail]:
    problems: list[Detail] = []
    names = [s.name for s in wf.states]
    known = set(names)
    for dup in {n for n in names if names.count(n) > 1}:
        problems.append(Detail("state declared twice", field="states", value=dup))
    if wf.initial not in known:
        problems.append(Detail("initial state is not declared", field="initial", value=wf.initial))
    if wf.create.target != wf.initial:
        problems.append(
            Detail(
                "the create command must lead to the initial state",
                field=f"transitions.{wf.create.command}",
                value=str(wf.create.target),
                accepted=wf.initial,
            )
        )
    for s in wf.entry:
        if s not in known:
            problems.append(Detail("unknown state", field="entry", value=s))
        elif wf.state(s).terminal:
            problems.append(
                Detail("a subject cannot start in a terminal state", field="entry", value=s)
            )
    for ref, label in [
        (wf.clock_start, "clock_start"),
        *((s, "clock_stop") for s in wf.clock_stop),
    ]:
        if ref is not None and ref not in known:
            problems.append(Detail("unknown state", field=label, value=ref))
    seen: set[tuple[str, str]] = set()
    for t in (wf.create, *wf.transitions):
        where = f"transitions.{t.command}"
        for s in t.sources:
            if s != ANY_STATE and s not in known:
                problems.append(Detail("unknown source state", field=where, value=s))
        if t.target is not None and t.target not in known:
            problems.append(Detail("unknown target state", field=where, value=t.target))
        if not t.roles:
            problems.append(Detail("no role may issue this command", field=where))
        for g in t.guards:
            if g not in wf.guards:
                problems.append(
                    Detail(
                        "unknown guard",
                        field=where,
                        value=g,
                        accepted=", ".join(sorted(wf.guards)) or "none defined",
                    )
                )
        if t is wf.create:
            continue
        # A wildcard covers every state it applies in, so it clashes with an explicit source.
        covered = (
            [n for n in dict.fromkeys(names) if wf._allowed_in(t, n)]
            if ANY_STATE in t.sources
            else t.sources
        )
        for s in covered:
            if (t.command, s) in seen:
                problems.append(
                    Detail("command declared twice for one state", field=where, value=s)
                )
            seen.add((t.command, s))
            if s in known and wf.state(s).terminal and t.moves() and t.target != s:
                problems.append(Detail("a terminal state has an exit", field=where, value=s))

    # Reachability: every state from the initial one, and a terminal state from every state.
    # Edges naming undeclared states were reported above and are left out here, so these
    # problems are listed alongside them rather than hidden until those are fixed.
    edges: dict[str, set[str]] = {n: set() for n in names}
    for t in wf.transitions:
        if t.target is None or t.target not in known:
            continue
        for s in names if ANY_STATE in t.sources else t.sources:
            if s in known and wf._allowed_in(t, s):
                edges[s].add(t.target)
    starts = [s for s in wf.entry_states if s in known]
    if wf.initial in known:
        reach = set[str]().union(*(_closure(s, edges) for s in starts))
        where = "the states a subject starts in" if wf.entry else "the initial state"
        for n in dict.fromkeys(names):
            if n not in reach:
                problems.append(Detail(f"unreachable from {where}", field="states", value=n))
    terminals = wf.terminal_states
    if not terminals:
        problems.append(Detail("no terminal state", field="states"))
    for n in dict.fromkeys(names):
        if n in terminals:
            continue
        if not (edges[n] - {n}):
            problems.append(
                Detail("trap state: non-terminal with no way out", field="states", value=n)
            )
        elif terminals and not (_closure(n, edges) & terminals):
            problems.append(
                Detail("no terminal state can be reached from here", field="states", value=n)
            )
    return problems


def _closure(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
