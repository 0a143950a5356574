"""The workflows of the registered kinds as people and programs read them: states (initial,
final, SLA), commands (from, to, who may issue them, guards) and the Mermaid diagram — what
``steward workflow show`` prints and ``GET /api/v1/workflows/{name}`` answers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from steward.domain.workflow import Workflow
from steward.errors import Detail, ValidationFailed
from steward.services.kinds import kinds


class StateInfo(BaseModel):
    name: str
    terminal: bool = Field(description="Final: nothing moves it on.")
    sla_seconds: float | None = Field(description="How long it should stay here at most.")
    description: str


class TransitionInfo(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    command: str
    event: str = Field(description="The event it records.")
    from_: list[str] = Field(
        alias="from", description="The states it applies in (none: it creates the subject)."
    )
    to: str | None = Field(description="The state it leads to (null: it stays where it is).")
    roles: list[str] = Field(description="Who may issue it.")
    guards: list[str] = Field(description="Conditions beyond the role (own, assigned…).")


class WorkflowInfo(BaseModel):
    name: str
    initial: str
    states: list[StateInfo]
    transitions: list[TransitionInfo]
    mermaid: str = Field(description="The state diagram, as Mermaid text (stateDiagram-v2).")


def by_name() -> dict[str, Workflow]:
    """Every registered kind's workflow, by name."""
    return {k.workflow.name: k.workflow for k in kinds()}


def find(name: str) -> Workflow:
    found = by_name().get(name)
    if found is None:
        raise ValidationFailed(
            f"no workflow {name[:80]!r}",
            [Detail("unknown workflow", field="name", value=name, accepted=", ".join(by_name()))],
        )
    return found


def info(wf: Workflow) -> WorkflowInfo:
    return WorkflowInfo(
        name=wf.name,
        initial=wf.initial,
        states=[
            StateInfo(
                name=s.name,
                terminal=s.terminal,
                sla_seconds=s.sla.total_seconds() if s.sla else None,
                description=s.description,
            )
            for s in wf.states
        ],
        transitions=[
            TransitionInfo(
                command=t.command,
                event=t.event,
                from_=list(t.sources),
                to=t.target,
                roles=sorted(t.roles),
                guards=list(t.guards),
            )
            for t in (wf.create, *wf.transitions)
        ],
        mermaid=wf.mermaid(),
    )


def describe(name: str) -> WorkflowInfo:
    """One workflow by name; an unknown name is refused with the names there are."""
    return info(find(name))


def describe_all() -> list[WorkflowInfo]:
    return [info(wf) for wf in by_name().values()]
