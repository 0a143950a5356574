"""One exception tree: every error has the same shape on every surface."""

from __future__ import annotations

import pickle
import re

import pytest

from steward import errors
from steward.errors import (
    Concealed,
    Conflict,
    Detail,
    Forbidden,
    InvalidTransition,
    NotFound,
    StewardError,
    Unauthenticated,
    ValidationFailed,
)


def _all_errors() -> list[type[StewardError]]:
    # Every module first: an error class defined anywhere counts, whatever ran before.
    import importlib
    import pkgutil

    import steward

    for info in pkgutil.walk_packages(steward.__path__, "steward."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
    found: list[type[StewardError]] = [StewardError]
    todo = [StewardError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                todo.append(sub)
    return found


ALL = _all_errors()
PROBLEM_KEYS = {"type", "title", "status", "code", "detail", "errors"}


def test_the_documented_tree_exists() -> None:
    for name in (
        "NotFound",
        "Forbidden",
        "Unauthenticated",
        "InvalidTransition",
        "Conflict",
        "ValidationFailed",
        "WorkflowDefinitionError",
        "ConfigurationError",
        "DatabaseUnavailable",
        "DatabaseBusy",
    ):
        cls = getattr(errors, name)
        assert issubclass(cls, StewardError)
        assert cls in ALL
    assert issubclass(StewardError, Exception)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_renders_the_same_problem_shape(cls: type[StewardError]) -> None:
    err = cls("it went wrong", [Detail("bad", field="title", row=3, value="x", accepted="y")])
    problem = err.as_problem()
    assert set(problem) == PROBLEM_KEYS
    assert problem["type"] == f"https://steward.invalid/problems/{cls.code}"
    assert problem["title"] == cls.title
    assert problem["title"]
    assert problem["status"] == cls.http_status
    assert 400 <= problem["status"] <= 599
    assert problem["code"] == cls.code
    assert problem["detail"] == "it went wrong"
    assert problem["errors"] == [
        {"message": "bad", "field": "title", "row": 3, "value": "x", "accepted": "y"}
    ]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_error_is_a_plain_exception_with_its_message(cls: type[StewardError]) -> None:
    err = cls("nope")
    assert str(err) == "nope"
    assert err.args == ("nope",)
    assert err.details == []
    assert err.as_problem()["errors"] == []
    with pytest.raises(StewardError, match=r"^nope$"):
        raise err


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_errors_survive_pickling_and_can_be_hashed(cls: type[StewardError]) -> None:
    err = cls("nope", [Detail("bad", field="f")])
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls
    assert copy.message == "nope"
    assert copy.details == [Detail("bad", field="f")]
    assert {err: 1}[err] == 1  # like every exception, usable in sets and as a key


def test_details_are_not_shared_between_errors() -> None:
    a, b = Forbidden("a"), Forbidden("b")
    a.details.append(Detail("x"))
    assert b.details == []


def test_codes_are_distinct_and_kebab_case() -> None:
    # Every class that names a code names its own; only Concealed borrows NotFound's, on purpose
    # (below), so a hidden thing and a missing one cannot be told apart.
    own = [cls for cls in ALL if "code" in cls.__dict__]
    assert [cls for cls in ALL if cls not in own] == [Concealed]
    codes = [cls.code for cls in own]
    assert len(codes) == len(set(codes)), codes
    for code in codes:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", code), code


def test_concealed_reads_exactly_as_not_found() -> None:
    """Who may not see a thing is told it does not exist: same problem document, same exit
    code; the reason (for the audit log) is never part of what is shown."""
    details = [Detail("unknown request", field="request", value="req_1")]
    hidden = Concealed("no access request 'req_1'", details, reason="bea may not see req_1")
    missing = NotFound("no access request 'req_1'", details)
    assert hidden.as_problem() == missing.as_problem()
    assert hidden.exit_code == missing.exit_code
    assert "bea" not in str(hidden.as_problem())
    assert str(hidden) == str(missing)


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (NotFound, 404),
        (Forbidden, 403),
        (Unauthenticated, 401),
        (InvalidTransition, 409),
        (Conflict, 409),
        (ValidationFailed, 422),
    ],
)
def test_http_statuses(cls: type[StewardError], status: int) -> None:
    assert cls.http_status == status


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_exit_codes(cls: type[StewardError]) -> None:
    expected = 2 if cls in (ValidationFailed, Unauthenticated) else 1
    assert cls.exit_code == expected


def test_detail_as_dict_leaves_out_what_is_unknown() -> None:
    assert Detail("required").as_dict() == {"message": "required"}
    assert Detail("bad", row=0).as_dict() == {"message": "bad", "row": 0}


@pytest.mark.parametrize(
    ("detail", "text"),
    [
        (Detail("required"), "required"),
        (Detail("required", field="title"), "title: required"),
        (Detail("required", field="title", row=4), "line 4, title: required"),
        (Detail("bad", row=0), "line 0: bad"),
        (
            Detail("malformed", field="duo", value="X", accepted="GRU"),
            "duo: malformed (given: 'X'; accepted: GRU)",
        ),
        (Detail("unknown user", field="user", value="zoe"), "user: unknown user (given: 'zoe')"),
        # Already quoted in the message: not said twice.
        (Detail("no user 'zoe'", value="zoe"), "no user 'zoe'"),
        (Detail("x", value="a" * 300), "x (given: '" + "a" * 200 + "…')"),
    ],
)
def test_detail_reads_as_a_sentence(detail: Detail, text: str) -> None:
    assert str(detail) == text


def test_a_busy_database_is_not_a_conflict() -> None:
    """A lock held too long says nothing about the data: its own class, code and words."""
    from steward.errors import DatabaseBusy

    assert not issubclass(DatabaseBusy, Conflict)
    assert not issubclass(Conflict, DatabaseBusy)
    assert (DatabaseBusy.code, DatabaseBusy.http_status, DatabaseBusy.exit_code) == (
        "database-busy",
        503,
        1,
    )
