"""Which datasets are one experiment by their accessions: pure rules, no database.

Two uses: ``steward dataset duplicates`` (pairs, reason ``secondary-accession``) and the
"already ingested" column of the discover view: an ``external`` dataset (known from an archive
or an endpoint, not ingested) is *already ingested* when a dataset of the same project, in
any stage past ``external``, shares an accession with it in any form — its own accession or a
secondary one, through the configured mappings (``E-GEOD-{n}`` ↔ ``GSE{n}``), in either
direction (:func:`steward.crawl.accessions.forms`).

Give them rows as plain :class:`DatasetFacts` (project, accession, state, secondary
accessions), e.g. from the datasets list's views.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from steward.crawl.accessions import DEFAULT_MAPPINGS, AccessionMapping, forms
from steward.crawl.accessions import secondary_duplicates as _pairs
from steward.domain import datasets as domain

EXTERNAL = domain.STAGES[0]
INGESTED_STATES: tuple[str, ...] = domain.STAGES[1:]
"""States that count as ingested: every stage but ``external`` (not ``missing`` — gone from
every place — nor ``withdrawn``)."""


@dataclass(frozen=True)
class DatasetFacts:
    project: str
    accession: str
    state: str
    secondary_accessions: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessionLink:
    """Two datasets of one project that are one experiment: ``dataset`` is behind (the
    duplicate: lower stage, or at the same stage the later accession), ``other`` ahead."""

    project: str
    dataset: str
    other: str
    via: str
    """The accession form they share."""
    how: str
    """``secondary-accession`` (written as-is in both) or ``mapping`` (equal through one)."""


def forms_of(
    dataset: DatasetFacts, mappings: Sequence[AccessionMapping] = DEFAULT_MAPPINGS
) -> frozenset[str]:
    """Every accession the dataset answers to: its own and secondary ones, each in every
    spelling the mappings lead to."""
    out: set[str] = set()
    for accession in (dataset.accession, *dataset.secondary_accessions):
        out |= forms(accession, mappings)
    return frozenset(out)


def already_ingested(
    datasets: Iterable[DatasetFacts],
    mappings: Sequence[AccessionMapping] = DEFAULT_MAPPINGS,
    *,
    ingested_states: Collection[str] = INGESTED_STATES,
) -> dict[tuple[str, str], tuple[str, ...]]:
    """For every ``external`` dataset, keyed ``(project, accession)``: the accessions of the
    datasets of its project in an ingested state that share an accession form with it,
    sorted (an empty tuple: not ingested). Datasets of other states are not keys."""
    rows = list(datasets)
    ingested_by_form: dict[tuple[str, str], set[str]] = defaultdict(set)
    for d in rows:
        if d.state in ingested_states:
            for form in forms_of(d, mappings):
                ingested_by_form[(d.project, form)].add(d.accession)
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for d in rows:
        if d.state != EXTERNAL:
            continue
        found: set[str] = set()
        for form in forms_of(d, mappings):
            found |= ingested_by_form.get((d.project, form), set())
        found.discard(d.accession)
        out[(d.project, d.accession)] = tuple(sorted(found))
    return out


def _rank(state: str, stages: Sequence[str]) -> tuple[int, int]:
    own = stages.index(state) if state in stages else -1
    default = domain.STAGES.index(state) if state in domain.STAGES else -1
    return own, default


def _ahead(stages: Sequence[str]) -> Callable[[DatasetFacts], tuple[int, int, str]]:
    """Sorts the dataset further along first: higher stage, then the earlier accession."""

    def key(d: DatasetFacts) -> tuple[int, int, str]:
        rank = _rank(d.state, stages)
        return -rank[0], -rank[1], d.accession

    return key


def accession_links(
    datasets: Iterable[DatasetFacts],
    mappings: Sequence[AccessionMapping] = DEFAULT_MAPPINGS,
    stages: Sequence[str] = domain.STAGES,
) -> list[AccessionLink]:
    """Every pair of datasets of one project sharing an accession form, as the crawl flags
    them (withdrawn datasets left out); ``stages`` is the crawl config's order."""
    by_project: dict[str, dict[str, DatasetFacts]] = defaultdict(dict)
    for d in datasets:
        if d.state != domain.WITHDRAWN:
            by_project[d.project][d.accession] = d
    out: list[AccessionLink] = []
    for project, rows in sorted(by_project.items()):
        pairs = _pairs(((a, d.secondary_accessions) for a, d in rows.items()), mappings)
        for pair in pairs:
            first, second = sorted((rows[pair.first], rows[pair.second]), key=_ahead(stages))
            link = AccessionLink(project, second.accession, first.accession, pair.via, pair.reason)
            out.append(link)
    return sorted(out, key=lambda x: (x.project, x.dataset, x.other))
