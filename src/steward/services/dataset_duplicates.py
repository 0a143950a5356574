"""``steward dataset duplicates``: pairs of datasets that are one, and why.

- ``same-stage``: one accession found in two places of the same stage (the crawl flags it as
  a ``duplicate-location`` problem); the pair names the dataset twice, the detail its places;
- ``secondary-accession``: one dataset's accession, in any form the mappings give
  (``E-GEOD-{n}`` ↔ ``GSE{n}``), is the other's own or secondary accession — ``dataset`` is
  the one behind (lower stage), ``other`` the one ahead, as the crawl's ``duplicate_of``;
- ``same-content`` (``--by-content``): data files with identical checksums
  (:mod:`steward.services.dataset_content`).

Computed from the database as it is now (places present, accessions, secondary accessions);
every reader of a project sees its pairs, and comparing content is for its staff.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from pydantic import BaseModel
from sqlalchemy import select

from steward.crawl.accessions import DEFAULT_MAPPINGS
from steward.crawl.config_model import CrawlConfig
from steward.db.bulk import in_chunks
from steward.db.models import Dataset, DatasetLocation
from steward.db.session import Database
from steward.domain import datasets as domain
from steward.services.access import require_user
from steward.services.dataset_content import ContentResult, SameFile, compare_content
from steward.services.dataset_links import DatasetFacts, accession_links
from steward.services.dataset_storage import HashProgress
from steward.services.datasets import current

REASONS = ("same-stage", "secondary-accession", "same-content")


class DuplicateView(BaseModel):
    project: str
    dataset: str
    other: str
    reason: str
    """``same-stage``, ``secondary-accession`` or ``same-content``."""
    detail: str
    files: int | None = None
    """``same-content``: how many identical data files."""
    examples: list[SameFile] = []


class DuplicatesResult(BaseModel):
    pairs: list[DuplicateView]
    content: ContentResult | None = None
    """With ``--by-content``: what the comparison read, reused and stored."""


def find_duplicates(
    db: Database,
    *,
    actor: str | None,
    project: str | None = None,
    by_content: bool = False,
    config: CrawlConfig | None = None,
    environ: Mapping[str, str] | None = None,
    progress: HashProgress | None = None,
) -> DuplicatesResult:
    """Every pair the caller may see (see the module docstring)."""
    with db.read() as s:
        user = require_user(s, actor)
        q = current(
            s,
            user,
            project,
            Dataset.id,
            Dataset.project_id,
            Dataset.accession,
            Dataset.state,
            Dataset.secondary_accessions,
        )
        rows = list(s.execute(q))
        places: dict[tuple[str, str], list[str]] = defaultdict(list)
        ids = [r.id for r in rows]
        for part in in_chunks(ids):
            for p in s.execute(
                select(DatasetLocation.dataset_id, DatasetLocation.stage, DatasetLocation.location)
                .where(
                    DatasetLocation.dataset_id.in_(part),
                    DatasetLocation.present.is_(True),
                )
                .order_by(DatasetLocation.location)
            ):
                places[(p.dataset_id, p.stage)].append(p.location)
    named = {r.id: r for r in rows}
    pairs: list[DuplicateView] = []
    for (dataset_id, stage), locations in sorted(places.items()):
        if len(locations) > 1:
            r = named[dataset_id]
            pairs.append(
                DuplicateView(
                    project=r.project_id,
                    dataset=r.accession,
                    other=r.accession,
                    reason="same-stage",
                    detail=f"{stage}: " + ", ".join(locations),
                )
            )
    facts = [
        DatasetFacts(r.project_id, r.accession, r.state, tuple(r.secondary_accessions or ()))
        for r in rows
    ]
    mappings = config.mappings if config is not None else DEFAULT_MAPPINGS
    stages = config.stages if config is not None else domain.STAGES
    for link in accession_links(facts, mappings, stages):
        how = " (through a mapping)" if link.how == "mapping" else ""
        pairs.append(
            DuplicateView(
                project=link.project,
                dataset=link.dataset,
                other=link.other,
                reason="secondary-accession",
                detail=f"share the accession {link.via}{how}",
            )
        )
    content: ContentResult | None = None
    if by_content:
        content = compare_content(
            db, actor=actor, project=project, config=config, environ=environ, progress=progress
        )
        for pair in content.pairs:
            pairs.append(
                DuplicateView(
                    project=pair.project,
                    dataset=pair.dataset,
                    other=pair.other,
                    reason="same-content",
                    detail=f"{pair.files} identical data file" + ("s" if pair.files != 1 else ""),
                    files=pair.files,
                    examples=pair.examples,
                )
            )
    pairs.sort(key=lambda p: (p.project, p.dataset, p.other, REASONS.index(p.reason)))
    return DuplicatesResult(pairs=pairs, content=content)
