"""Datasets as a registered kind: who sees them, how lists filter them, and one dataset in
full (metadata, places, files, problems, history) by its accession.

Datasets are written by the crawl (:mod:`steward.services.crawl`); people read them and
comment, and staff may withdraw one that is gone for good. The generic ``get``/``list``/
``history``/``act`` (:mod:`steward.services.subjects`) and the API's ``/api/v1/datasets``
come from the declaration below.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, Text, cast, exists, func, select
from sqlalchemy.orm import Session

from steward.db.models import Dataset, DatasetFile, DatasetLocation, User
from steward.db.session import Database
from steward.domain import datasets as domain
from steward.errors import Detail, ValidationFailed
from steward.ids import looks_like_id
from steward.services import subjects
from steward.services.access import not_found, require_user, require_visible_project
from steward.services.kinds import (
    COMMENT,
    REASON,
    Command,
    CommentText,
    Condition,
    FilterSpec,
    Kind,
    NoPayload,
    Payload,
    Policy,
    as_data,
    register,
)
from steward.services.timeline import History

YES_NO = ("yes", "no")


class DatasetView(BaseModel):
    id: str
    project_id: str
    accession: str
    state: str
    title: str
    experiment_type: str
    organism: list[str]
    curator: str
    technologies: list[str]
    secondary_accessions: list[str]
    duplicate_of: str | None
    problem_count: int
    problems: list[dict[str, Any]]
    fields: dict[str, Any]
    last_seen_at: datetime | None
    missing_since: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    state_since: datetime


class LocationView(BaseModel):
    source: str
    key: str
    location: str
    stage: str
    present: bool
    complete: bool
    technologies: list[str]
    problems: list[dict[str, Any]]
    first_seen_at: datetime
    last_seen_at: datetime


class FileView(BaseModel):
    source: str
    path: str
    size: int
    checksum: str | None
    etag: str | None
    outcome: str
    first_seen_at: datetime
    last_seen_at: datetime


class DatasetDetail(BaseModel):
    dataset: DatasetView
    locations: list[LocationView]
    files: list[FileView]
    files_total: int
    history: History
    available_actions: list[str]


# ---- payloads of the crawl's commands (internal: Steward issues them) -------------------------
class Place(Payload):
    source: str
    key: str
    location: str
    stage: str


class Discovered(Payload):
    accession: str
    stage: str
    locations: list[Place]
    fields: dict[str, Any]
    technologies: list[str]
    problems: list[dict[str, Any]]
    duplicate_of: str | None = None


class Moved(Payload):
    found_in: list[str]


class Vanished(Payload):
    last_locations: list[str]


class MetadataChanged(Payload):
    changed: dict[str, dict[str, Any]]
    technologies: dict[str, list[str]] | None = None


class ProblemsFound(Payload):
    problems: list[dict[str, Any]]
    duplicate_of: str | None = None


class Verified(Payload):
    """What ``dataset verify`` found: counts, and the first mismatches and problems (the
    counts are the totals; the lists stop at :data:`VERIFY_LISTED` each)."""

    checked: int
    """Sidecars read and compared with their data file."""
    matched: int
    mismatched: int
    missing: int
    """Sidecars whose data file is not there."""
    bad_sidecars: int
    """Sidecars that could not be read, or hold no checksum of their data file."""
    unreadable: int
    """Data files with a sidecar that could not be read."""
    without_sidecar: int
    """Data files with no sidecar (not checked)."""
    bytes_read: int
    mismatches: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    skipped_sources: list[dict[str, str]] = Field(default_factory=list)


VERIFY_LISTED = 100
"""How many mismatches (and, apart, other problems) an event lists; the counts say how many
there were in all."""


def _internal(payload: type[Payload]) -> Command:
    return Command(payload, as_data, internal=True)


def _listed(column: Any, value: str, *, whole: bool) -> ColumnElement[bool]:
    """``value`` in a JSON list column, as the database keeps its text (``json.dumps``):
    ``whole``, one element equal to it; otherwise part of an element, in any case."""
    text = json.dumps(value)
    if whole:
        return cast(column, Text).contains(text, autoescape=True)
    return func.lower(cast(column, Text)).contains(text[1:-1].lower(), autoescape=True)


def _in_source(value: str) -> ColumnElement[bool]:
    return exists().where(
        DatasetLocation.dataset_id == Dataset.id,
        DatasetLocation.source == value,
        DatasetLocation.present.is_(True),
    )


def _in_stage(value: str) -> ColumnElement[bool]:
    """Found in ``value`` now: any present place of that stage, whichever stage won (a dataset
    loading and still in incoming is found in both; ``state`` names only the winner)."""
    return exists().where(
        DatasetLocation.dataset_id == Dataset.id,
        DatasetLocation.stage == value,
        DatasetLocation.present.is_(True),
    )


def _flag(column: ColumnElement[bool], value: str) -> ColumnElement[bool]:
    return column if value == "yes" else ~column


DATASET = register(
    Kind(
        workflow=domain.WORKFLOW,
        model=Dataset,
        project=domain.project,
        label="dataset",
        id_field="dataset",
        prefix="ds",
        view=DatasetView,
        policy=Policy(readers=domain.READERS),
        filters=FilterSpec(
            equals={"accession": "accession"},
            contains={"title": "title", "curator": "curator"},
            ranges={"changed": "updated_at"},
            conditions={
                "source": Condition(_in_source, description="found in this crawl source now"),
                "stage": Condition(
                    _in_stage,
                    accepted=domain.STAGES,
                    description="found in a place of this stage now (state: the highest one)",
                ),
                "tech": Condition(
                    lambda v: _listed(Dataset.technologies, v, whole=True),
                    description="tagged with this technology",
                ),
                "organism": Condition(
                    lambda v: _listed(Dataset.organism, v, whole=False),
                    description="an organism containing this text",
                ),
                "duplicates": Condition(
                    lambda v: _flag(Dataset.duplicate_of.is_not(None), v),
                    accepted=YES_NO,
                    description="yes: only duplicates of another dataset; no: none",
                ),
                "problems": Condition(
                    lambda v: _flag(Dataset.problem_count > 0, v),
                    accepted=YES_NO,
                    description="yes: only datasets with problems; no: none",
                ),
            },
        ),
        commands={
            **{domain.move_command(s): _internal(Moved) for s in domain.STAGES},
            **{domain.reappear_command(s): _internal(Moved) for s in domain.STAGES},
            domain.VANISH: _internal(Vanished),
            domain.ADD_LOCATION: _internal(Place),
            domain.REMOVE_LOCATION: _internal(Place),
            domain.CHANGE_METADATA: _internal(MetadataChanged),
            domain.RECORD_PROBLEMS: _internal(ProblemsFound),
            domain.CLEAR_PROBLEMS: _internal(NoPayload),
            domain.VERIFY: _internal(Verified),
            "withdraw": REASON,
            "comment": COMMENT,
        },
        docs="datasets.md",
    )
)
KIND = DATASET


def payload(command: str, data: dict[str, Any]) -> dict[str, Any]:
    """The event data of one of the crawl's commands (or its discovery), checked against its
    payload model: the crawl writes through the ledger directly, where people's commands pass
    ``act``."""
    model = Discovered if command == domain.DISCOVER else DATASET.commands[command].payload
    return dict(model.model_validate(data).model_dump(mode="json", exclude_none=True))


# ---- finding one by accession -----------------------------------------------------------------
def resolve(s: Session, actor: str | None, ref: str, *, project: str | None = None) -> str:
    """The id of the dataset ``ref`` names: its id, or its accession (in ``project`` when two
    projects hold the same accession). Datasets the caller may not see are not found."""
    if looks_like_id(ref):
        return ref
    user = require_user(s, actor)
    q = select(Dataset.id, Dataset.project_id).where(Dataset.accession == ref)
    rule = DATASET.policy.visible(Dataset, user)
    if rule is not None:
        q = q.where(rule)
    if project:
        q = q.where(Dataset.project_id == project)
    found = s.execute(q.order_by(Dataset.project_id)).all()
    if not found:
        raise not_found("dataset", "dataset", ref)
    if len(found) > 1:
        projects = ", ".join(p for _, p in found)
        raise ValidationFailed(
            f"{ref} is a dataset of several projects ({projects}): name one with --project, "
            "or give the dataset's id",
            [Detail("ambiguous accession", field="dataset", value=ref, accepted=projects)],
        )
    return str(found[0][0])


def _extra(limit: int | None) -> Any:
    def read(s: Session, row: Dataset) -> tuple[list[LocationView], list[FileView], int]:
        locations = s.scalars(
            select(DatasetLocation)
            .where(DatasetLocation.dataset_id == row.id)
            .order_by(DatasetLocation.present.desc(), DatasetLocation.source, DatasetLocation.key)
        )
        q = (
            select(DatasetFile)
            .where(DatasetFile.dataset_id == row.id)
            .order_by(DatasetFile.source, DatasetFile.path)
        )
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        files = s.scalars(q.limit(limit) if limit else q)
        return (
            [LocationView.model_validate(x, from_attributes=True) for x in locations],
            [FileView.model_validate(x, from_attributes=True) for x in files],
            int(total),
        )

    return read


def detail(
    db: Database,
    *,
    actor: str | None,
    dataset: str,
    project: str | None = None,
    files: int | None = 200,
) -> DatasetDetail:
    """A dataset in full, by id or accession: metadata, places, files (the first ``files``;
    ``None``: all), problems, history and what the caller may do now."""
    with db.read() as s:
        subject_id = resolve(s, actor, dataset, project=project)
    found = subjects.get(db, DATASET, actor=actor, subject_id=subject_id, extra=_extra(files))
    locations, file_views, total = found.extra
    return DatasetDetail(
        dataset=DatasetView.model_validate(found.row, from_attributes=True),
        locations=locations,
        files=file_views,
        files_total=total,
        history=found.history,
        available_actions=found.allowed_actions,
    )


def history(
    db: Database, *, actor: str | None, dataset: str, project: str | None = None
) -> History:
    """A dataset's timeline with the time it spent in each stage, by id or accession."""
    with db.read() as s:
        subject_id = resolve(s, actor, dataset, project=project)
    return subjects.history_of(db, DATASET, actor=actor, subject_id=subject_id)


def comment(
    db: Database, *, actor: str | None, dataset: str, text: str, project: str | None = None
) -> DatasetView:
    with db.read() as s:
        subject_id = resolve(s, actor, dataset, project=project)
    view: DatasetView = subjects.act(
        db,
        DATASET,
        actor=actor,
        subject_id=subject_id,
        command="comment",
        payload=CommentText(text=text),
    )
    return view


def current(s: Session, user: User, project: str | None, *columns: Any) -> Select[Any]:
    """``columns`` of the datasets ``user`` may see that are still tracked (withdrawn ones
    aside), of ``project`` when named (an unknown or hidden one is "no such project")."""
    q = select(*columns).where(Dataset.state != domain.WITHDRAWN)
    rule = DATASET.policy.visible(Dataset, user)
    if rule is not None:
        q = q.where(rule)
    if project:
        require_visible_project(s, user, project)
        q = q.where(Dataset.project_id == project)
    return q
