"""The dataset tracker's views and exports: the spreadsheet the seed kept, done right.

One place decides which datasets a view holds and with which columns, as a
:class:`steward.tables.Table`, so ``steward dataset list``, ``steward dataset export`` and any
other surface show the same rows:

- the plain list (no view): what ``steward dataset list`` has always shown;
- ``track``: the ingested datasets (every state but ``external``, ``missing`` included), with
  where each is found now, stage by stage — for following ingest;
- ``discover``: the ``external`` datasets, each with the ingested datasets of its project that
  are the same experiment (its accession or a secondary one, directly or through an accession
  mapping such as ``E-GEOD-n`` ↔ ``GSEn``): "already ingested", as
  :func:`steward.services.dataset_links.already_ingested` decides it.

Exports are written whole or not at all: a local file through a temporary file and a rename
(:mod:`steward.outfiles`), an S3 object with one PUT of the finished bytes. Nothing here
carries a secret: the rows are the datasets' own columns and the places the crawl recorded
(whose URLs the crawl config may not hold credentials in), and S3 keys stay in the store.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import select

from steward.adapters.storage import S3Config, normalize_key, open_store
from steward.config import Settings
from steward.crawl.accessions import DEFAULT_MAPPINGS, AccessionMapping
from steward.db.bulk import in_chunks
from steward.db.models import Dataset, DatasetLocation
from steward.db.session import Database
from steward.domain import datasets as domain
from steward.errors import Detail, ValidationFailed
from steward.outfiles import open_output
from steward.services import dataset_links as links
from steward.services import places, subjects
from steward.services.access import require_user
from steward.services.datasets import DATASET, DatasetView
from steward.services.kinds import Filter
from steward.tables import Column, Table, check_format, is_binary, write_table

VIEWS = ("track", "discover")
TRACKED = tuple(s for s in (*domain.STAGES, domain.MISSING, domain.WITHDRAWN) if s != "external")
"""The states of the ``track`` view: every state a dataset reaches once ingested."""
EXTENSIONS = {".csv": "csv", ".json": "json", ".xlsx": "xlsx"}
DESTINATIONS = "a file (overview.xlsx, file:///srv/overview.xlsx) or s3://bucket/overview.xlsx"


# ---- the plain list -----------------------------------------------------------------------
def plain_table(views: Sequence[DatasetView]) -> Table:
    """``steward dataset list`` without a view: from the views alone, so it is the same
    whether the rows came from the database or through the API."""
    return Table(
        "datasets",
        [
            Column("accession"),
            Column("project"),
            Column("state"),
            Column("since", "time"),
            Column("title"),
            Column("organism", "list"),
            Column("tech", "list"),
            Column("problems", "int"),
            Column("duplicate_of", title="duplicate of"),
            Column("last_seen", "time", title="last seen"),
        ],
        [
            (
                v.accession,
                v.project_id,
                v.state,
                v.state_since,
                v.title,
                v.organism,
                v.technologies,
                v.problem_count,
                v.duplicate_of,
                v.last_seen_at,
            )
            for v in views
        ],
    )


# ---- "already ingested" ---------------------------------------------------------------
def configured_mappings(settings: Settings) -> tuple[AccessionMapping, ...]:
    """The accession mappings of steward.toml's ``[crawl]`` table (the crawl's own), else the
    default ``E-GEOD-{n}`` ↔ ``GSE{n}``. Only the mappings are read: a problem in a source
    is the crawl's business, not the list's."""
    raw = (settings.crawl or {}).get("accession_mappings")
    if raw is None:
        return DEFAULT_MAPPINGS
    from steward.crawl.config import parse_crawl_config

    config = parse_crawl_config({"accession_mappings": raw, "sources": []}, origin="steward.toml")
    return config.mappings


# ---- the views ----------------------------------------------------------------------------
def check_view(view: str) -> None:
    if view not in VIEWS:
        raise ValidationFailed(
            f"no view {view!r}",
            [Detail("unknown view", field="view", value=view, accepted=", ".join(VIEWS))],
        )


def view_filter(flt: Filter, view: str) -> Filter:
    """``flt`` narrowed to the view's states; states asked for outside them are refused, not
    silently dropped (``--view track --state external`` would show nothing)."""
    check_view(view)
    allowed = TRACKED if view == "track" else ("external",)
    outside = [s for s in flt.states if s not in allowed]
    if outside:
        raise ValidationFailed(
            f"the {view} view holds no {', '.join(outside)} datasets",
            [
                Detail(
                    f"not a state of the {view} view",
                    field="state",
                    value=s,
                    accepted=", ".join(allowed),
                )
                for s in outside
            ],
        )
    return replace(flt, states=tuple(flt.states) or allowed)


def _places(db: Database, ids: Sequence[str]) -> dict[str, list[str]]:
    """Where each dataset is found now, ``stage: location``, lowest stage first."""
    rank = {s: i for i, s in enumerate(domain.STAGES)}
    found: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    with db.read() as s:
        for part in in_chunks(ids):
            rows = s.execute(
                select(DatasetLocation.dataset_id, DatasetLocation.stage, DatasetLocation.location)
                .where(DatasetLocation.dataset_id.in_(part))
                .where(DatasetLocation.present.is_(True))
            )
            for dataset_id, stage, location in rows:
                found[dataset_id].append((rank.get(stage, len(rank)), stage, location))
    return {k: [f"{stage}: {loc}" for _, stage, loc in sorted(v)] for k, v in found.items()}


def _ingested(db: Database, actor: str | None, projects: Iterable[str]) -> list[links.DatasetFacts]:
    """The projects' ingested datasets (as :mod:`~steward.services.dataset_links` counts
    them), as the caller may see them: what an external dataset may already be."""
    wanted = sorted(set(projects))
    if not wanted:
        return []
    with db.read() as s:
        user = require_user(s, actor)
        q = select(
            Dataset.project_id, Dataset.accession, Dataset.state, Dataset.secondary_accessions
        ).where(Dataset.project_id.in_(wanted), Dataset.state.in_(links.INGESTED_STATES))
        rule = DATASET.policy.visible(Dataset, user)
        if rule is not None:
            q = q.where(rule)
        return [
            links.DatasetFacts(project, accession, state, tuple(secondary or ()))
            for project, accession, state, secondary in s.execute(q)
        ]


COLUMNS: dict[str, list[Column]] = {
    "track": [
        Column("accession"),
        Column("project"),
        Column("state"),
        Column("since", "time"),
        Column("found_in", "list", title="found in"),
        Column("title"),
        Column("organism", "list"),
        Column("tech", "list"),
        Column("curator"),
        Column("problems", "int"),
        Column("duplicate_of", title="duplicate of"),
        Column("last_seen", "time", title="last seen"),
        Column("missing_since", "time", title="missing since"),
    ],
    "discover": [
        Column("accession"),
        Column("project"),
        Column("already_ingested", "list", title="already ingested"),
        Column("since", "time"),
        Column("found_in", "list", title="found in"),
        Column("title"),
        Column("organism", "list"),
        Column("tech", "list"),
        Column("secondary_accessions", "list", title="secondary accessions"),
        Column("problems", "int"),
        Column("last_seen", "time", title="last seen"),
    ],
}
"""Each view's columns: the same here and through the API (whose rows are rebuilt on them)."""
BRIEF: dict[str, tuple[str, ...]] = {
    "track": ("accession", "state", "since", "found_in", "title", "problems", "last_seen"),
    "discover": ("accession", "already_ingested", "since", "title", "organism", "last_seen"),
}


def view_title(view: str) -> str:
    return f"datasets ({view})"


def _track(db: Database, views: Sequence[DatasetView]) -> Table:
    where = _places(db, [v.id for v in views])
    return Table(
        view_title("track"),
        list(COLUMNS["track"]),
        [
            (
                v.accession,
                v.project_id,
                v.state,
                v.state_since,
                where.get(v.id, []),
                v.title,
                v.organism,
                v.technologies,
                v.curator,
                v.problem_count,
                v.duplicate_of,
                v.last_seen_at,
                v.missing_since,
            )
            for v in views
        ],
        brief=BRIEF["track"],
    )


def _discover(
    db: Database,
    actor: str | None,
    views: Sequence[DatasetView],
    mappings: Sequence[AccessionMapping],
) -> Table:
    where = _places(db, [v.id for v in views])
    ingested = _ingested(db, actor, (v.project_id for v in views))
    state = {(d.project, d.accession): d.state for d in ingested}
    facts = [
        links.DatasetFacts(v.project_id, v.accession, v.state, tuple(v.secondary_accessions))
        for v in views
    ]
    found = links.already_ingested([*facts, *ingested], mappings)
    rows: list[Sequence[Any]] = [
        (
            v.accession,
            v.project_id,
            [
                f"{other} ({state[(v.project_id, other)]})"
                for other in found.get((v.project_id, v.accession), ())
            ],
            v.state_since,
            where.get(v.id, []),
            v.title,
            v.organism,
            v.technologies,
            v.secondary_accessions,
            v.problem_count,
            v.last_seen_at,
        )
        for v in views
    ]
    return Table(
        view_title("discover"),
        list(COLUMNS["discover"]),
        rows,
        brief=BRIEF["discover"],
    )


def view_table(
    db: Database,
    *,
    actor: str | None,
    view: str,
    flt: Filter,
    sort: str = "created",
    mappings: Sequence[AccessionMapping] = DEFAULT_MAPPINGS,
) -> Table:
    """The ``track`` or ``discover`` view of the datasets ``actor`` may see that match ``flt``
    (every list filter applies; states only within the view's)."""
    narrowed = view_filter(flt, view)
    views: list[DatasetView] = subjects.list_(db, DATASET, actor=actor, flt=narrowed, sort=sort)
    if view == "track":
        return _track(db, views)
    return _discover(db, actor, views, mappings)


# ---- exports ------------------------------------------------------------------------------
def format_of(destination: str, given: str | None) -> str:
    """The format asked for, else the one the destination's extension names."""
    if given is not None:
        check_format(given)
        return given
    suffix = Path(urlsplit(destination).path if "://" in destination else destination).suffix
    fmt = EXTENSIONS.get(suffix.lower())
    if fmt is None:
        raise ValidationFailed(
            f"cannot tell the format of {destination}: name it with --format",
            [
                Detail(
                    "no known extension",
                    field="to",
                    value=destination,
                    accepted="a name ending in .csv, .json or .xlsx, or --format csv|json|xlsx",
                )
            ],
        )
    return fmt


def _s3_target(destination: str) -> tuple[str, str]:
    """``s3://bucket/key.xlsx`` → the bucket's URL and the key; a key is required."""
    parts = urlsplit(destination)
    key = unquote(parts.path).lstrip("/")
    if not key or key.endswith("/"):
        raise ValidationFailed(
            f"{destination} names no object",
            [
                Detail(
                    "an object key is needed",
                    field="to",
                    value=destination,
                    accepted="s3://bucket/folder/overview.xlsx",
                )
            ],
        )
    return f"s3://{parts.netloc}", normalize_key(key, field="to")


def export(
    table: Table,
    destination: str,
    *,
    fmt: str,
    tz: ZoneInfo,
    settings: Settings,
    force: bool = False,
    endpoint_url: str | None = None,
) -> str:
    """Write ``table`` to ``destination`` (a file, or ``s3://bucket/key``) whole or not at
    all; an existing file or object is kept unless ``force``. Returns where it went.

    S3: the endpoint and keys of the settings (``s3_*``, else the standard ``AWS_*``
    variables), the endpoint replaced by ``endpoint_url`` when given; one HEAD (is the name
    taken?), then one PUT of the finished bytes, so the object appears whole or not at all
    (past the store's part size, 16 MiB, a multipart upload, which appears only when complete).
    """
    check_format(fmt)
    scheme = urlsplit(destination).scheme.lower() if "://" in destination else ""
    if scheme not in ("", "file", "s3"):
        raise ValidationFailed(
            f"cannot export to {scheme}:// URLs",
            [Detail("unknown destination", field="to", value=destination, accepted=DESTINATIONS)],
        )
    if scheme != "s3":
        path = Path(destination.removeprefix("file://"))
        places.refuse_steward_file(settings, path, field="to")
        with open_output(path, binary=is_binary(fmt), overwrite=force, field="to") as out:
            write_table(table, fmt, out, tz)
        return str(path)
    root, key = _s3_target(destination)
    cfg: S3Config = settings.s3_config()
    if endpoint_url:
        cfg = replace(cfg, endpoint=endpoint_url)
    store = open_store(root, cfg)
    if not force and store.exists(key):
        raise ValidationFailed(
            f"cannot write {destination}: the object already exists",
            [
                Detail(
                    "the object already exists",
                    field="to",
                    value=destination,
                    accepted="another name, or --force to replace it",
                )
            ],
        )
    data = _bytes(table, fmt, tz)
    store.write(key, data)
    return destination


def _bytes(table: Table, fmt: str, tz: ZoneInfo) -> bytes:
    """The whole export in memory: what one PUT sends."""
    if is_binary(fmt):
        raw = io.BytesIO()
        write_table(table, fmt, raw, tz)
        return raw.getvalue()
    text = io.StringIO(newline="")
    write_table(table, fmt, text, tz)
    return text.getvalue().encode("utf-8")
