"""The contract every registered kind keeps, checked for each kind in the registry.

A new kind is a declaration; this file is what makes the declaration complete: every command
has a typed payload and a handler, every event is projected, the workflow is valid and drawn in
its docs page, and who may see or do what is exactly the declared policy — through the real
services, on a real database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from steward.config import Settings
from steward.db.models import AuditEntry, Event
from steward.domain import workflow as wf
from steward.errors import Forbidden, InvalidTransition, NotFound, StewardError, ValidationFailed
from steward.services import package_build, packages, requests, shares, subjects
from steward.services.kinds import Kind, Payload, kinds
from steward.services.packages import PackageSpec
from tests.conftest import Consortium
from tests.packaging_data import make_dataset

DOCS = Path(__file__).resolve().parents[2] / "docs"
KINDS = {k.name: k for k in kinds()}
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


def test_the_registry_holds_every_kind() -> None:
    assert set(KINDS) == {"access_request", "package", "share", "dataset"}
    assert len({k.prefix for k in KINDS.values()}) == len(KINDS)


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_every_command_has_a_payload_schema_and_a_handler(kind: Kind) -> None:
    commands = {t.command for t in kind.workflow.transitions}
    assert set(kind.commands) == commands  # none missing, none stale
    for name, command in kind.commands.items():
        assert issubclass(command.payload, Payload), name
        assert callable(command.handle), name
        # Unknown fields are refused, not dropped.
        assert command.payload.model_config.get("extra") == "forbid", name


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_every_event_type_is_projected(kind: Kind) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    class AnyData(dict[str, object]):
        """Whatever field a projector reads, there is a value (the payloads are tested apart)."""

        def __missing__(self, key: str) -> object:
            return None

    for event in kind.workflow.event_types:
        changes = kind.project(event, at, "someone", AnyData(), {})
        columns = set(kind.model.__table__.c.keys())
        assert set(changes) <= columns, (event, set(changes) - columns)
    with pytest.raises(KeyError):
        kind.project("no-such-event", at, "someone", {}, {})


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_the_workflow_validates_and_its_docs_page_draws_it(kind: Kind) -> None:
    assert wf.validate(kind.workflow) == []
    page = (DOCS / kind.docs).read_text(encoding="utf-8")
    assert kind.workflow.mermaid() in page
    for state in kind.workflow.state_names:
        assert f"`{state}`" in page, (kind.name, state)


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_filters_name_real_columns(kind: Kind) -> None:
    columns = set(kind.model.__table__.c.keys())
    spec = kind.filters
    named = [*spec.equals.values(), *spec.contains.values(), *spec.ranges.values()]
    named += list(spec.choices)
    assert set(named) <= columns
    assert set(kind.facts) <= columns
    if kind.policy.owner:
        assert kind.policy.owner in columns


# ---- the authorisation matrix, through the real services ----------------------------------
# Who sees a subject of each kind (all in its project): the declared policy, written out.
SEES = {
    "access_request": {"admin", "sam", "rita", "rob", "vic", "ada"},  # ada filed it
    "package": {"admin", "sam", "rita", "rob", "vic"},
    "share": {"admin", "sam", "rita", "rob", "vic"},
    "dataset": {"admin", "sam", "rita", "rob", "vic"},
}
# What each of them may do to a fresh subject (a submitted request, a built package, a
# finished share): the workflow's roles × guards, written out.
MAY = {
    "access_request": {
        "admin": {"approve", "reject", "return", "cancel", "assign-reviewer", "comment"},
        "sam": {"approve", "reject", "return", "cancel", "assign-reviewer", "comment"},
        "rita": {"approve", "reject", "return", "comment"},
        "rob": {"approve", "reject", "return", "comment"},
        "vic": {"comment"},
        "ada": {"cancel", "comment"},
    },
    "package": {
        "admin": {"expire", "delete", "comment"},
        "sam": {"expire", "delete", "comment"},
        "rita": {"comment"},
        "rob": {"comment"},
        "vic": {"comment"},
    },
    "share": {
        "admin": {"comment"},
        "sam": {"comment"},
        "rita": {"comment"},
        "rob": {"comment"},
        "vic": {"comment"},
    },
    # a dataset the crawl found: only a missing one may be withdrawn (by staff)
    "dataset": {
        "admin": {"comment"},
        "sam": {"comment"},
        "rita": {"comment"},
        "rob": {"comment"},
        "vic": {"comment"},
    },
}
PEOPLE = ("admin", "sam", "rita", "rob", "vic", "ada", "bea", "olga")
PAYLOADS = {
    "comment": {"text": "a note"},
    "assign-reviewer": {"reviewer": "rita"},
}


@pytest.fixture
def subject_of(consortium: Consortium, settings: Settings, tmp_path: Path) -> Callable[[str], str]:
    """A fresh subject of a kind, made through its own service by the project's staff."""
    c = consortium

    def make(kind: str) -> str:
        if kind == "access_request":
            from steward.domain.requests import RequestFields

            view = requests.create(
                c.db,
                actor=c.requester,
                project=c.project,
                fields=RequestFields("Study", "Uni", "Prof", "Research", datasets=("raw/wgs",)),
                submit=True,
            )
            return view.id
        if kind == "dataset":
            return _crawled_dataset(c, tmp_path)
        data = make_dataset(tmp_path / "ds")
        spec = PackageSpec(name="cup", manifest=data.manifest)
        pkg, _ = packages.create(c.db, settings, actor=c.steward, project=c.project, spec=spec)
        pkg = package_build.build(c.db, settings, actor=c.steward, package_id=pkg.id)
        if kind == "package":
            return pkg.id
        share = shares.push(
            c.db, settings, actor=c.steward, package_id=pkg.id, destination=str(tmp_path / "r")
        )
        return share.id

    return make


def _crawled_dataset(c: Consortium, tmp_path: Path) -> str:
    """A dataset found by a crawl of a folder of the project's (by its staff)."""
    from steward.crawl.config import parse_crawl_config
    from steward.services import crawl, datasets
    from tests.crawl_trees import ACCESSION, write_tree

    write_tree(tmp_path / "loading", {"E-MTAB-1/data.txt": "x"})
    entry = {
        "project": c.project,
        "url": str(tmp_path / "loading"),
        "stage": "loading",
        "pattern": ACCESSION,
    }
    config = parse_crawl_config({"sources": [entry]})
    crawl.run_crawl(c.db, c.db.settings, actor=c.steward, config=config)
    with c.db.read() as s:
        return datasets.resolve(s, c.steward, "E-MTAB-1")


def _events(c: Consortium, subject_id: str) -> int:
    with c.db.read() as s:
        return int(s.scalar(select(func.count()).where(Event.subject_id == subject_id)) or 0)


@SQLITE_ONLY
@pytest.mark.parametrize("name", list(KINDS))
def test_who_sees_and_who_may_do_what(
    consortium: Consortium, subject_of: Callable[[str], str], name: str
) -> None:
    c = consortium
    kind = KINDS[name]
    sid = subject_of(name)
    people_commands = [n for n, cmd in kind.commands.items() if not cmd.internal]
    for who in PEOPLE:
        listed = {v.id for v in subjects.list_(c.db, kind, actor=who, flt=kind.filter())}
        if who not in SEES[name]:
            with pytest.raises(NotFound):
                subjects.get(c.db, kind, actor=who, subject_id=sid)
            assert sid not in listed, who
            for command in people_commands:
                with pytest.raises(NotFound):
                    subjects.act(
                        c.db, kind, actor=who, subject_id=sid, command=command,
                        payload=PAYLOADS.get(command, {}),
                    )  # fmt: skip
            continue
        found = subjects.get(c.db, kind, actor=who, subject_id=sid)
        assert sid in listed, who
        assert set(found.allowed_actions) == MAY[name][who], who
        # Every command not offered is refused by act itself — and writes nothing.
        before = _events(c, sid)
        for command in set(people_commands) - MAY[name][who]:
            with pytest.raises((Forbidden, InvalidTransition)):
                subjects.act(
                    c.db, kind, actor=who, subject_id=sid, command=command,
                    payload=PAYLOADS.get(command, {}),
                )  # fmt: skip
        assert _events(c, sid) == before
    # Every refusal of someone who may not see it is in the audit log, with the real reason.
    with c.db.read() as s:
        hidden = s.scalars(
            select(AuditEntry.actor).where(
                AuditEntry.subject_id == sid, AuditEntry.outcome == "denied"
            )
        ).all()
    assert set(hidden) >= set(PEOPLE) - SEES[name]


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_a_filter_takes_exactly_the_fields_its_kind_declares(kind: Kind) -> None:
    declared = (*kind.filters.texts, *kind.filters.bounds)
    assert declared  # every kind filters by something beyond project and state
    flt = kind.filter(**dict.fromkeys(declared, "x"))
    assert set(flt.values) == set(declared)
    with pytest.raises(ValidationFailed) as err:
        kind.filter(colour="blue", **{declared[0]: "x"})
    assert [d.field for d in err.value.details] == ["colour"]
    assert declared[0] in (err.value.details[0].accepted or "")


@SQLITE_ONLY
def test_a_payload_is_typed(consortium: Consortium, subject_of: Callable[[str], str]) -> None:
    """Fields a command does not take are refused with their path; types are checked."""
    c = consortium
    rid = subject_of("access_request")
    kind = KINDS["access_request"]
    with pytest.raises(StewardError) as err:
        subjects.act(
            c.db, kind, actor=c.steward, subject_id=rid, command="comment",
            payload={"text": "x", "colour": "blue"},
        )  # fmt: skip
    assert err.value.details[0].field == "colour"
    with pytest.raises(StewardError) as err:
        subjects.act(
            c.db, kind, actor=c.reviewer, subject_id=rid, command="approve",
            payload={"expires_at": "next tuesday"},
        )  # fmt: skip
    assert err.value.details[0].field == "expires_at"
    assert _events(c, rid) == 2


# ---- pages: sorted, with a cursor ------------------------------------------------------------
def _make_requests(
    c: Consortium, n: int, start: datetime = datetime(2026, 3, 1, tzinfo=UTC)
) -> list[str]:
    from datetime import timedelta

    from steward.domain.requests import RequestFields

    ids = []
    for i in range(n):
        view = requests.create(
            c.db,
            actor=c.requester,
            project=c.project,
            fields=RequestFields(f"Study {i}", "Uni", "Prof", "Research", datasets=("raw/wgs",)),
            # Pairs share a creation time: the id breaks the tie, so no row is lost or repeated.
            at=start + timedelta(hours=i // 2),
        )
        ids.append(view.id)
    return ids


@pytest.mark.parametrize("sort", ["created", "-created", "id", "-state"])
def test_paging_with_a_cursor_visits_every_row_once_in_order(
    consortium: Consortium, sort: str
) -> None:
    c = consortium
    kind = KINDS["access_request"]
    made = set(_make_requests(c, 11))
    seen: list[str] = []
    cursor: str | None = None
    totals = set()
    for _ in range(20):
        got = subjects.page(
            c.db, kind, actor=c.steward, flt=requests.RequestFilter(), sort=sort,
            after=cursor, limit=3,
        )  # fmt: skip
        totals.add(got.total)
        seen += [v.id for v in got.items]
        cursor = got.next
        if cursor is None:
            break
    assert totals == {11}
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == made
    everything = subjects.page(
        c.db, kind, actor=c.steward, flt=requests.RequestFilter(), sort=sort, limit=100
    )
    assert [v.id for v in everything.items] == seen  # pages join up to the whole, in order
    key = {"created": "created_at", "id": "id", "state": "state"}[sort.lstrip("-")]
    values = [(getattr(v, key), v.id) for v in everything.items]
    assert values == sorted(values, reverse=sort.startswith("-"))


@SQLITE_ONLY
def test_rows_added_between_pages_neither_repeat_nor_push_others_off(
    consortium: Consortium,
) -> None:
    c = consortium
    kind = KINDS["access_request"]
    _make_requests(c, 6)
    first = subjects.page(c.db, kind, actor=c.steward, flt=requests.RequestFilter(), limit=3)
    late = _make_requests(c, 2, start=datetime(2026, 4, 1, tzinfo=UTC))  # after the others
    rest = subjects.page(
        c.db, kind, actor=c.steward, flt=requests.RequestFilter(), after=first.next, limit=100
    )
    ids = [v.id for v in (*first.items, *rest.items)]
    assert len(ids) == len(set(ids)) == 8
    assert set(late) <= set(ids)


@SQLITE_ONLY
def test_bad_sorts_and_cursors_are_named(consortium: Consortium) -> None:
    kind = KINDS["access_request"]
    c = consortium
    with pytest.raises(StewardError) as err:
        subjects.page(c.db, kind, actor=c.steward, flt=requests.RequestFilter(), sort="colour")
    assert err.value.details[0].field == "sort"
    with pytest.raises(StewardError) as err:
        subjects.page(c.db, kind, actor=c.steward, flt=requests.RequestFilter(), after="%%%")
    assert err.value.details[0].field == "after"


@SQLITE_ONLY
@pytest.mark.parametrize("name", ["access_request", "package"])
def test_scheduled_expiry_refuses_whoever_coordinates_nothing(
    consortium: Consortium, settings: Settings, name: str
) -> None:
    """The same rule for every kind with an expiry: a reviewer (or anyone who coordinates no
    project) running expire-due is refused and audited, never silently given nothing."""
    c = consortium
    run = {
        "access_request": lambda who: requests.expire_due(c.db, actor=who),
        "package": lambda who: packages.expire_due(c.db, settings, actor=who),
    }[name]
    for who in (c.reviewer, c.viewer, c.requester, c.outsider):
        with pytest.raises(Forbidden, match="steward or admin"):
            run(who)
    assert run(c.steward) == []
    with c.db.read() as s:
        denied = set(
            s.scalars(
                select(AuditEntry.actor).where(
                    AuditEntry.action == "expire", AuditEntry.subject_kind == name
                )
            )
        )
    assert denied == {c.reviewer, c.viewer, c.requester, c.outsider}
