"""The rule for filing a request on someone's behalf: one pure function, used by
``requests.create`` and by the importer's judge alike; and a ledger that takes no decision
from outside the workflow engine."""

from __future__ import annotations

import inspect

from steward.domain.requests import filing_refusal
from steward.services import ledger

STEWARD = frozenset({"steward"})
REQUESTER = frozenset({"requester"})


def _never() -> frozenset[str]:
    raise AssertionError("the requester's roles are not needed here")


def test_filing_for_oneself_is_the_workflows_business() -> None:
    assert filing_refusal("ada", "ada", REQUESTER, _never, project="p1") is None


def test_only_staff_file_for_others() -> None:
    refusal = filing_refusal("ada", "bea", REQUESTER, _never, project="p1")
    assert refusal is not None
    assert (refusal.rule, refusal.message) == (
        "staff only",
        "ada may not file a request on behalf of bea",
    )


def test_staff_file_only_for_requesters() -> None:
    refusal = filing_refusal("sam", "vic", STEWARD, lambda: frozenset({"viewer"}), project="p1")
    assert refusal is not None
    assert (refusal.rule, refusal.message) == ("requester role", "vic is not a requester in p1")
    assert filing_refusal("sam", "bea", STEWARD, lambda: REQUESTER, project="p1") is None


def test_the_ledger_takes_no_decision_from_its_caller() -> None:
    assert "decision" not in inspect.signature(ledger.record).parameters
