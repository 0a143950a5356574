"""A demo consortium with realistic request histories, built through the normal services.

Every step carries an idempotency key and the timeline is anchored to the demo project's
creation time, so running the demo again (or after an interruption) adds nothing twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from steward.db.models import AccessRequest, Project, User
from steward.db.session import Database
from steward.domain.requests import RequestFields
from steward.services import access, catalog, requests
from steward.timeutil import utcnow

PROJECT = "demo"
REQUESTERS = ["ada", "bruno", "chen", "dana", "eero", "fatima", "gustav", "hana"]
REVIEWERS = ["rev-aino", "rev-ben"]
STEWARD = "coord-sam"
VIEWER = "viewer-vic"
INSTITUTIONS = [
    "University of Helsinki",
    "Karolinska Institutet",
    "UMC Utrecht",
    "University of Tartu",
    "Wellcome Sanger Institute",
    "Institut Pasteur",
]
TOPICS = [
    "polygenic risk of type 2 diabetes",
    "rare variant burden in cardiomyopathy",
    "ancestry-aware imputation panels",
    "pharmacogenomics of statins",
    "longitudinal BMI trajectories",
    "somatic mosaicism with age",
    "copy-number variation in neurodevelopment",
    "sleep and circadian genetics",
]
DATASETS = ["raw/wgs", "raw/wes", "phenotypes", "results/summary"]
# Final state → how many requests end there (60 in all, every state represented).
OUTCOMES = {
    "draft": 5,
    "submitted": 10,
    "returned": 6,
    "approved": 14,
    "rejected": 8,
    "cancelled": 6,
    "revoked": 5,
    "expired": 6,
}


@dataclass
class DemoResult:
    project: str
    created: int
    total: int


def _path(outcome: str, rng: random.Random) -> list[str]:
    """Commands leading from draft to ``outcome``, sometimes via a round of changes."""
    if outcome == "draft":
        return []
    if outcome == "cancelled":
        return rng.choice([["cancel"], ["submit", "cancel"], ["submit", "return", "cancel"]])
    steps = ["submit", "assign-reviewer"]
    if outcome == "returned":
        return [*steps, "return"]
    if rng.random() < 0.35:
        steps += ["return", "resubmit"]
    if outcome == "submitted":
        return steps if rng.random() < 0.7 else ["submit"]
    decision = "reject" if outcome == "rejected" else "approve"
    steps.append(decision)
    if outcome in ("revoked", "expired"):
        steps.append("revoke" if outcome == "revoked" else "expire")
    return steps


def run(
    db: Database, *, actor: str | None = None, progress: Callable[[int, int], None] | None = None
) -> DemoResult:
    access.bootstrap_admin(db, user_id=actor or "admin")
    with db.transaction() as s:
        admin = actor or s.scalars(select(User.id).where(User.is_admin).order_by(User.id)).first()
        project = s.get(Project, PROJECT)
        anchor = project.created_at if project else utcnow()
    for uid in [*REQUESTERS, *REVIEWERS, STEWARD, VIEWER]:
        access.add_user(db, actor=admin, user_id=uid, display_name=uid.replace("-", " ").title())
    access.create_project(db, actor=admin, project_id=PROJECT, title="Demo consortium")
    with db.transaction() as s:
        s.get_one(Project, PROJECT).created_at = anchor
    for uid in REQUESTERS:
        access.add_member(db, actor=admin, project_id=PROJECT, user_id=uid, role="requester")
    for uid in REVIEWERS:
        access.add_member(db, actor=admin, project_id=PROJECT, user_id=uid, role="reviewer")
    access.add_member(db, actor=admin, project_id=PROJECT, user_id=STEWARD, role="steward")
    access.add_member(db, actor=admin, project_id=PROJECT, user_id=VIEWER, role="viewer")
    catalog.add_requirement(
        db,
        actor=STEWARD,
        project=PROJECT,
        name="Controlled genomes",
        kind="controlled",
        description="Sequence data; committee review",
        folders=["raw/wgs", "raw/wes"],
    )
    catalog.add_requirement(
        db,
        actor=STEWARD,
        project=PROJECT,
        name="Phenotype terms",
        kind="click-wrap",
        description="Accept the terms of use",
        folders=["phenotypes", "results/summary"],
    )
    for path in ("raw/wgs/batch-1", "raw/wgs/batch-2", "raw/wes/batch-1", "results/figures"):
        catalog.add_folder(db, actor=STEWARD, project=PROJECT, path=path)

    rng = random.Random(20261123)
    plan = [o for o, n in OUTCOMES.items() for _ in range(n)]
    rng.shuffle(plan)
    before = _count(db)
    for i, outcome in enumerate(plan):
        _one(db, i, outcome, anchor, rng)
        if progress:
            progress(i + 1, len(plan))
    total = _count(db)
    return DemoResult(project=PROJECT, created=total - before, total=total)


def _count(db: Database) -> int:
    with db.read() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AccessRequest)
                .where(AccessRequest.project_id == PROJECT)
            )
            or 0
        )


def _one(db: Database, i: int, outcome: str, anchor: datetime, rng: random.Random) -> None:
    requester = rng.choice(REQUESTERS)
    reviewer = rng.choice(REVIEWERS)
    topic = rng.choice(TOPICS)
    start = anchor - timedelta(days=rng.uniform(2, 120))
    steps = _path(outcome, rng)
    # Gaps between steps, squeezed so the last step happens before the anchor; requests left
    # waiting for review are spread so some breach the 4-day SLA and some do not.
    gaps = [timedelta(hours=rng.uniform(2, 24 * 6)) for _ in steps]
    room = (anchor - start) * 0.95
    total = sum(gaps, timedelta())
    if total > room:
        gaps = [g * (room / total) for g in gaps]
    fields = RequestFields(
        title=f"{topic.capitalize()} ({i + 1:02d})",
        institution=rng.choice(INSTITUTIONS),
        project_lead=f"Prof. {rng.choice(['Virtanen', 'Larsen', 'Okafor', 'Silva', 'Kim'])}",
        intended_use=f"We will study {topic} using the consortium's data, under our ethics "
        "approval, and publish aggregate results only.",
        datasets=tuple(rng.sample(DATASETS, rng.randint(1, 3))),
        duo_codes=tuple(rng.sample(["GRU", "HMB", "NPU", "PUB", "IRB"], 2)),
    )
    key = f"demo:{i}"
    view = requests.create(
        db,
        actor=requester,
        project=PROJECT,
        fields=fields,
        idempotency_key=f"{key}:create",
        at=start,
    )
    at = start
    for n, (cmd, gap) in enumerate(zip(steps, gaps, strict=True)):
        at = at + gap
        who = {
            "submit": requester,
            "resubmit": requester,
            "cancel": requester,
            "assign-reviewer": STEWARD,
            "expire": STEWARD,
            "revoke": STEWARD,
        }.get(cmd, reviewer)
        requests.act(
            db,
            actor=who,
            request_id=view.id,
            command=cmd,
            at=at,
            idempotency_key=f"{key}:{n}:{cmd}",
            reviewer=reviewer,
            reason={
                "return": "Please describe the data security measures.",
                "reject": "The intended use is outside the consent.",
                "revoke": "The data access agreement was breached.",
                "expire": "The approval's expiry date passed.",
                "cancel": "No longer needed.",
            }.get(cmd),
            expires_at=at + timedelta(days=365) if cmd == "approve" else None,
        )
