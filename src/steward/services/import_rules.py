"""Imported histories judged by the same rules as live commands, in memory, row by row.

Why: an import that only checks the shape of a history let a requester approve her own
request, a viewer approve, a non-member review and a rejection go without a reason. Every
imported event now goes through ``Workflow.decide`` (roles and guards) with the actor's roles
as they are in the project, and through the rules live commands add around it (a reason for
``return``/``reject``/``revoke``, who may be the reviewer); the creation through
``decide_create`` and the rule for filing on someone's behalf. The only relaxation is the
documented one: users created by ``--create-users`` become requesters of the project when
they file a request. What a request says about itself (complete fields, datasets in today's
catalog) is history, kept as the other system recorded it: docs/access-requests.md says so.

Everything is looked up in dictionaries built once per import (no query per row), so the
import stays as fast as before; each refusal names the line and the rule it breaks, and all of
a file's refusals are returned together.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from steward.domain import requests as domain
from steward.domain.roles import STAFF, Role
from steward.domain.workflow import Context
from steward.errors import Detail, Forbidden, InvalidTransition

if TYPE_CHECKING:
    from steward.services.importer import Plan

WF = domain.WORKFLOW
COMMAND_OF = {t.event: t.command for t in WF.transitions}
NEEDS_REASON = frozenset(t.event for t in WF.transitions if t.command in domain.REASON_REQUIRED)
REVIEWERS = frozenset({Role.REVIEWER.value, *STAFF})
NO_ROLES: frozenset[str] = frozenset()


def _refusal(ext: str, line: int, who: str, exc: Forbidden | InvalidTransition) -> Detail:
    first = exc.details[0] if exc.details else Detail("refused")
    rule = "roles" if first.field == "role" else (first.field or "workflow")
    return Detail(
        f"request {ext}: {exc.message} (rule: {rule})",
        row=line,
        field="actor",
        value=who,
        accepted=first.accepted if first.field == "role" else None,
    )


class _Judge:
    """The checks for one import: the project's people, looked up in memory."""

    def __init__(
        self,
        project: str,
        roles: Mapping[str, frozenset[str]],
        unknown: Collection[str],
    ) -> None:
        self.project = project
        self.roles: Callable[[str], frozenset[str]] = lambda who: roles.get(who, NO_ROLES)
        self.unknown = unknown
        self.out: list[Detail] = []
        self.seen: dict[tuple[str, str | None, str, str, str | None], Any] = {}
        """Verdicts already reached: a history repeats the same steps (submit, return, …)."""

    def plan(self, p: Plan) -> None:
        fields = p.fields
        requester = fields.get("requester")
        if not requester or requester in self.unknown:
            return  # reported already: no requester, or one who does not exist
        self._reviewer(p, requester)
        self._creation(p, requester)
        self._moves(p, requester)

    def _reviewer(self, p: Plan, requester: str) -> None:
        reviewer = p.fields.get("reviewer")
        if not reviewer or reviewer in self.unknown:
            return
        line = p.field_lines["reviewer"]
        if reviewer == requester:
            self.out.append(
                Detail(
                    f"request {p.external_id}: the requester cannot review their own request "
                    "(rule: not_own)",
                    row=line,
                    field="reviewer",
                    value=reviewer,
                )
            )
        elif not self.roles(reviewer) & REVIEWERS:
            self.out.append(
                Detail(
                    f"request {p.external_id}: {reviewer} is not a reviewer in {self.project} "
                    "(rule: reviewer role)",
                    row=line,
                    field="reviewer",
                    value=reviewer,
                    accepted="members with the reviewer, steward or admin role",
                )
            )

    def _creation(self, p: Plan, requester: str) -> None:
        first = p.events[0][0]
        who = first.values.get("actor") or requester
        if who in self.unknown:
            return
        roles = self.roles(who)
        try:
            WF.decide_create(Context(actor=who, roles=roles))
        except Forbidden as exc:
            self.out.append(_refusal(p.external_id, first.line, who, exc))
            return
        refusal = domain.filing_refusal(
            who, requester, roles, lambda: self.roles(requester), project=self.project
        )
        if refusal is None:
            return
        on_actor = refusal.rule == "staff only"
        self.out.append(
            Detail(
                f"request {p.external_id}: {refusal.message} (rule: {refusal.rule})",
                row=first.line if on_actor else p.field_lines.get("requester", first.line),
                field="actor" if on_actor else "requester",
                value=who if on_actor else requester,
                accepted=f"{requester}, or a steward or admin of {self.project}"
                if on_actor
                else "members with the requester role",
            )
        )

    def _moves(self, p: Plan, requester: str) -> None:
        """Each state change through ``decide``, and the reason rule (a tight loop: it runs
        for every imported event)."""
        ext, out, seen, unknown = p.external_id, self.out, self.seen, self.unknown
        for (row, event, src, _dst), assigned in zip(
            p.events[1:], assigned_reviewers(p)[1:], strict=True
        ):  # the first is the creation, judged above
            values = row.values
            who: str = values.get("actor") or requester
            if who not in unknown:
                # decide's every input: command, state and context, which is fixed by who
                # acts (their roles are fixed for the import) and the subject's people.
                key = (event, src, who, requester, assigned)
                refused = seen.get(key, _UNSEEN)
                if refused is _UNSEEN:
                    refused = seen[key] = self._verdict(event, src, who, requester, assigned)
                if refused is not None:
                    out.append(_refusal(ext, row.line, who, refused))
            if event in NEEDS_REASON and not values.get("reason"):
                command = COMMAND_OF[event]
                out.append(
                    Detail(
                        f"request {ext}: {command} needs a reason the requester can read "
                        "(rule: reason required)",
                        row=row.line,
                        field="reason",
                        accepted=f"a reason, as `steward request {command} --reason` needs",
                    )
                )

    def _verdict(
        self, event: str, state: str | None, who: str, requester: str, reviewer: str | None
    ) -> Forbidden | InvalidTransition | None:
        """``Workflow.decide``'s refusal of the command behind ``event``, or None."""
        assert state is not None, "only the creation has no state before it"
        ctx = Context(
            actor=who,
            roles=self.roles(who),
            subject={"requester": requester, "reviewer": reviewer},
        )
        try:
            WF.decide(COMMAND_OF[event], state, ctx)
        except (Forbidden, InvalidTransition) as exc:
            return exc
        return None


_UNSEEN = object()


def assigned_reviewers(p: Plan) -> list[str | None]:
    """The reviewer assigned when each of ``p.events`` happened: the one the history names,
    from the row that names them on (nearly always the first; the importer's decisions see
    the same)."""
    reviewer = p.fields.get("reviewer") or None
    if reviewer is None:
        return [None] * len(p.events)
    line = p.field_lines["reviewer"]
    if p.rows[0].line == line:
        return [reviewer] * len(p.events)
    named = next((i for i, r in enumerate(p.rows) if r.line == line), 0)
    positions = {id(r): i for i, r in enumerate(p.rows)}
    return [reviewer if positions[id(r)] >= named else None for r, *_ in p.events]


def check_histories(
    plans: Iterable[Plan],
    *,
    project: str,
    roles: Mapping[str, frozenset[str]],
    unknown: Collection[str] = (),
    skip: Collection[str | None] = (),
) -> list[Detail]:
    """Every rule each new request's history breaks, as refusals naming line and rule.

    ``roles``: each user's roles in ``project`` (admins with ``admin``); ``unknown``: users
    who do not exist (reported on their own, so not judged again); ``skip``: external ids
    already imported (their rows are not written again, so not judged).
    """
    judge = _Judge(project, roles, unknown)
    for p in plans:
        if p.external_id not in skip:
            judge.plan(p)
    return judge.out
