"""What a crawl's findings mean for each dataset: its places, stage, metadata, problems and the
events that bring the database there. Pure: no I/O, so a re-run planned against what an
interrupted run committed yields exactly the events that run had not written yet.

Everything is decided against the database (:class:`Stored`, :class:`StoredPlace`), never
against the previous listing: a place is gone only when its source listed completely without
it; a place in a source that failed, in a part of a source that could not be read, or in a
source this crawl did not list, is *kept* (unknown this crawl), so it still counts as present
and its dataset never becomes ``missing`` because of it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from steward.crawl.accessions import AccessionMapping, secondary_duplicates
from steward.crawl.model import FoundFile, SourceStatus
from steward.domain import datasets as domain

Problem = dict[str, Any]
Event = tuple[str, dict[str, Any]]
"""A command for the ledger and its event's data."""


@dataclass(frozen=True)
class Ranks:
    """The crawl config's stage order; stages it does not name rank below all it does."""

    stages: tuple[str, ...]

    def key(self, stage: str) -> tuple[int, int]:
        own = self.stages.index(stage) if stage in self.stages else -1
        default = domain.STAGES.index(stage) if stage in domain.STAGES else -1
        return own, default


@dataclass(frozen=True)
class Found:
    """One place a dataset was found this crawl, with what its metadata files said if they
    were read (``fields is None``: not read, the stored metadata stands)."""

    project: str
    accession: str
    source: str
    stage: str
    technologies: tuple[str, ...]
    key: str
    base: str
    location: str
    digest: str
    complete: bool
    files: Sequence[FoundFile] | None
    """Where the place changed: its files (spooled to disk until written)."""
    fields: Mapping[str, Any] | None = None
    problems: tuple[Problem, ...] = ()
    missing: tuple[tuple[str, int | None, str | None], ...] | None = None
    """Read with its files: what its expected-files manifests name and it lacks (path
    relative to the place, size and checksum if given); None: it has no manifest."""


@dataclass(frozen=True)
class SourceResult:
    """How a source's listing ended, as far as deciding "gone" needs it."""

    status: SourceStatus
    unknown: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()

    def gone(self, key: str) -> bool:
        """Whether a stored place of this source that was not found is really gone."""
        if self.status is SourceStatus.FAILED or key in self.unknown:
            return False
        if self.status is SourceStatus.PARTIAL:
            return key in self.removed  # a part it could not read may hold it
        return True


@dataclass(frozen=True)
class StoredPlace:
    source: str
    key: str
    location: str
    stage: str
    technologies: tuple[str, ...]
    fields: Mapping[str, Any]
    problems: tuple[Problem, ...]
    digest: str
    complete: bool
    present: bool


@dataclass(frozen=True)
class Stored:
    """A dataset as the database has it."""

    id: str
    project: str
    accession: str
    state: str
    fields: Mapping[str, Any]
    technologies: tuple[str, ...]
    problems: tuple[Problem, ...]
    duplicate_of: str | None
    secondary_accessions: tuple[str, ...]
    places: tuple[StoredPlace, ...] = ()
    light: bool = False
    """Read without its metadata (``fields`` empty; see ``crawl_store.load``): only for telling
    an untouched dataset (:func:`untouched`), never to plan one."""


@dataclass(frozen=True)
class Place(StoredPlace):
    """A place of a dataset as it is to be stored after this crawl."""

    seen: bool
    """Found this crawl (its ``last_seen_at`` moves on)."""
    was_present: bool | None
    """Present before this crawl; ``None``: not stored at all."""
    found: Found | None = None
    same: bool = False
    """Found again exactly as stored: nothing to write but its seen-time, which
    :func:`steward.services.crawl_store.mark_seen` moves on for every such place at once."""


@dataclass
class Shape:
    """What a dataset is after this crawl, before duplicates across datasets are known."""

    project: str
    accession: str
    stored: Stored | None
    places: list[Place]
    stage: str | None
    """The highest-ranked stage it is present in; ``None``: present nowhere."""
    fields: dict[str, Any]
    technologies: tuple[str, ...]
    problems: list[Problem]
    """Its places' problems (unreadable files, same stage twice); duplicates come later."""

    @property
    def touched(self) -> bool:
        """Whether a place must be written (more than its seen-time moves on)."""
        return any((p.seen and not p.same) or p.present != p.was_present for p in self.places)


@dataclass(frozen=True)
class Duplicates:
    problems: tuple[Problem, ...] = ()
    duplicate_of: str | None = None


@dataclass
class Plan:
    """The events of one dataset (for a new one: its discovery and entry stage)."""

    shape: Shape
    events: list[Event] = field(default_factory=list)
    discovery: dict[str, Any] | None = None
    problems: list[Problem] = field(default_factory=list)
    duplicate_of: str | None = None


def _ordered(problems: Iterable[Mapping[str, Any]]) -> list[Problem]:
    problems = list(problems)
    if not problems:
        return []
    unique = {json.dumps(p, sort_keys=True, default=str): dict(p) for p in problems}
    return [unique[k] for k in sorted(unique)]


def places_of(
    stored: Stored | None, found: Sequence[Found], results: Mapping[str, SourceResult]
) -> list[Place]:
    """Every place of a dataset after this crawl: found now, kept (unknown), or gone."""
    before = {(p.source, p.key): p for p in (stored.places if stored else ())}
    out: list[Place] = []
    for f in found:
        old = before.pop((f.source, f.key), None)
        fields = f.fields if f.fields is not None else (old.fields if old else {})
        problems = f.problems if f.fields is not None else (old.problems if old else ())
        out.append(
            Place(
                source=f.source,
                key=f.key,
                location=f.location,
                stage=f.stage,
                technologies=f.technologies,
                fields=dict(fields),
                problems=tuple(problems),
                # Nothing read: the stored digest still describes the stored metadata (a quick
                # re-crawl carries the last *saved* listing state's, older than what a
                # --full crawl killed before saving its states may have committed).
                digest=old.digest if old is not None and f.fields is None else f.digest,
                complete=f.complete,
                present=True,
                seen=True,
                was_present=None if old is None else old.present,
                found=f,
                same=old is not None and _same(old, f),
            )
        )
    for old in before.values():
        result = results.get(old.source)
        gone = old.present and result is not None and result.gone(old.key)
        out.append(
            Place(
                **{**vars(old), "present": old.present and not gone},
                seen=False,
                was_present=old.present,
            )
        )
    return sorted(out, key=lambda p: (p.source, p.key))


def _same(old: StoredPlace, f: Found) -> bool:
    return (
        old.present
        and f.fields is None
        and f.files is None
        and (old.location, old.stage, old.technologies, old.complete)
        == (f.location, f.stage, tuple(f.technologies), f.complete)
    )


def untouched(stored: Stored | None, found: Sequence[Found], ranks: Ranks) -> bool:
    """Found again exactly as stored — in every place it was present, nowhere else, each place
    as it was (nothing read), in the stage it is in — and no duplicate of anything: nothing to
    plan unless another dataset now shares an accession with it (the crawl checks that with
    :func:`as_is`). Its seen-times move on all the same (``crawl_store.mark_seen``). Most
    datasets of a re-crawl are untouched; planning each would read all their metadata."""
    if stored is None or not found or stored.duplicate_of is not None:
        return False
    if any(p.get("kind") == "duplicate" for p in stored.problems):
        return False
    before = {(p.source, p.key): p for p in stored.places}
    if {(f.source, f.key) for f in found} != {k for k, p in before.items() if p.present}:
        return False
    if not all(_same(before[(f.source, f.key)], f) for f in found):
        return False
    return max(found, key=lambda f: ranks.key(f.stage)).stage == stored.state


def as_is(stored: Stored) -> Shape:
    """An untouched dataset as :func:`duplicates` needs to see it (its stage and its
    secondary accessions, from the stored columns)."""
    return Shape(
        project=stored.project,
        accession=stored.accession,
        stored=stored,
        places=[],
        stage=stored.state,
        fields={},
        technologies=stored.technologies,
        problems=[],
    )


def _merge_fields(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    """As the extractors merge files: the first value of a field wins, lists are united."""
    for key, value in new.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], list) and isinstance(value, list):
            into[key] = into[key] + [v for v in value if v not in into[key]]


def shape_of(
    project: str,
    accession: str,
    stored: Stored | None,
    found: Sequence[Found],
    results: Mapping[str, SourceResult],
    ranks: Ranks,
) -> Shape:
    places = places_of(stored, found, results)
    present = [p for p in places if p.present]
    if not present:
        # Gone from everywhere: what it was stays what people see; its files' problems go.
        return Shape(
            project=project,
            accession=accession,
            stored=stored,
            places=places,
            stage=None,
            fields=dict(stored.fields) if stored else {},
            technologies=stored.technologies if stored else (),
            problems=[],
        )
    # Highest rank first (its metadata wins); within a rank, by source and key.
    present.sort(key=lambda p: (_behind(ranks.key(p.stage)), p.source, p.key))
    fields: dict[str, Any] = {}
    technologies: list[str] = []
    problems: list[Problem] = []
    by_stage: dict[str, list[str]] = defaultdict(list)
    for p in present:
        _merge_fields(fields, p.fields)
        technologies += [t for t in p.technologies if t not in technologies]
        problems += [{**q, "location": p.location} for q in p.problems]
        by_stage[p.stage].append(p.location)
    for stage, locations in sorted(by_stage.items()):
        if len(locations) > 1:
            problems.append(
                {"kind": "duplicate-location", "stage": stage, "locations": sorted(locations)}
            )
    return Shape(
        project=project,
        accession=accession,
        stored=stored,
        places=places,
        stage=present[0].stage,
        fields=fields,
        technologies=tuple(technologies),
        problems=_ordered(problems),
    )


def _behind(rank: tuple[int, int]) -> tuple[int, int]:
    """Sorts the highest rank first."""
    return -rank[0], -rank[1]


def duplicates(
    shapes: Iterable[Shape], ranks: Ranks, mappings: Sequence[AccessionMapping]
) -> dict[str, Duplicates]:
    """Datasets of one project that share an accession in any form (their own or a secondary
    one, through the mappings): each gets a problem naming the other, and the one that is
    behind (lower stage; at the same stage the later accession) points at the one ahead."""
    own: dict[str, tuple[tuple[int, int], Sequence[str]]] = {}
    for s in shapes:
        state = s.stage or (s.stored.state if s.stored else domain.MISSING)
        if state == domain.WITHDRAWN:
            continue
        if s.stored is not None and s.stored.light:
            secondary: Sequence[str] = s.stored.secondary_accessions  # as_is: no metadata read
        else:
            secondary = domain.columns_of(s.fields)["secondary_accessions"]
        own[s.accession] = (ranks.key(state), secondary)
    partners: dict[str, list[tuple[str, Problem]]] = defaultdict(list)
    for pair in secondary_duplicates(((a, sec) for a, (_, sec) in own.items()), mappings):
        for me, other in ((pair.first, pair.second), (pair.second, pair.first)):
            problem = {"kind": "duplicate", "reason": pair.reason, "other": other, "via": pair.via}
            partners[me].append((other, problem))

    def order(accession: str) -> tuple[tuple[int, int], str]:
        """Who is ahead: the higher stage, then the earlier accession."""
        return _behind(own[accession][0]), accession

    out: dict[str, Duplicates] = {}
    for accession, found in partners.items():
        leaders = sorted(o for o, _ in found if order(o) < order(accession))
        leaders.sort(key=order)
        out[accession] = Duplicates(
            tuple(_ordered(p for _, p in found)), leaders[0] if leaders else None
        )
    return out


def _place_data(p: Place) -> dict[str, Any]:
    return {"source": p.source, "key": p.key, "location": p.location, "stage": p.stage}


def plan(shape: Shape, dup: Duplicates) -> Plan:
    """The events that make the stored dataset what ``shape`` and ``dup`` say it is."""
    problems = _ordered([*shape.problems, *dup.problems])
    out = Plan(shape, problems=problems, duplicate_of=dup.duplicate_of)
    stored = shape.stored
    if stored is None:
        assert shape.stage is not None  # a new dataset was found somewhere
        out.discovery = {
            "accession": shape.accession,
            "stage": shape.stage,
            "locations": [_place_data(p) for p in shape.places if p.present],
            "fields": shape.fields,
            "technologies": list(shape.technologies),
            "problems": problems,
            "duplicate_of": dup.duplicate_of,
        }
        return out
    events = out.events
    for p in shape.places:
        if p.was_present and not p.present:
            events.append((domain.REMOVE_LOCATION, _place_data(p)))
    for p in shape.places:
        if p.present and p.seen and not p.was_present:
            events.append((domain.ADD_LOCATION, _place_data(p)))
    changed = domain.changed_fields(stored.fields, shape.fields)
    if changed or tuple(stored.technologies) != shape.technologies:
        data: dict[str, Any] = {"changed": changed}
        if tuple(stored.technologies) != shape.technologies:
            data["technologies"] = {
                "old": list(stored.technologies),
                "new": list(shape.technologies),
            }
        events.append((domain.CHANGE_METADATA, data))
    if (_ordered(stored.problems), stored.duplicate_of) != (problems, dup.duplicate_of):
        if problems:
            events.append(
                (domain.RECORD_PROBLEMS, {"problems": problems, "duplicate_of": dup.duplicate_of})
            )
        else:
            events.append((domain.CLEAR_PROBLEMS, {}))
    events.extend(_move(stored.state, shape))
    return out


def _move(state: str, shape: Shape) -> list[Event]:
    stage = shape.stage
    if state == domain.WITHDRAWN:
        return []  # withdrawn for good: found again, its places are still recorded
    if stage is None:
        if state == domain.MISSING:
            return []
        last = [p.location for p in shape.places if p.was_present]
        return [(domain.VANISH, {"last_locations": last})]
    found_in = [p.location for p in shape.places if p.present and p.stage == stage]
    if state == domain.MISSING:
        return [(domain.reappear_command(stage), {"found_in": found_in})]
    if state != stage:
        return [(domain.move_command(stage), {"found_in": found_in})]
    return []
