"""datasets (a tracked kind) with their locations and durable per-file records; crawl_listings
(each source's listing state between crawls) and crawls (who ran one, how it ended, its summary)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import steward.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, steward.db.types.UTCDateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int | None = None, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    kind = sa.Text() if length is None else sa.String(length=length)
    return sa.Column(name, kind, nullable=nullable)


def _json(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.JSON(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "datasets",
        _text("accession", 200),
        _text("title"),
        _text("experiment_type"),
        _json("organism"),
        _text("curator"),
        _json("technologies"),
        _json("secondary_accessions"),
        _json("fields"),
        _json("problems"),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        _when("last_seen_at", True),
        _when("missing_since", True),
        _text("duplicate_of", 200, nullable=True),
        _text("id", 40),
        _text("project_id", 64),
        _text("state", 32),
        sa.Column("version", sa.Integer(), nullable=False),
        _when("created_at", False),
        _when("updated_at", False),
        _when("state_since", False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("project_id", "accession", name="uq_datasets_project_accession"),
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index("ix_datasets_project_state", ["project_id", "state"], unique=False)
    op.create_table(
        "dataset_locations",
        _text("dataset_id", 40),
        _text("source", 200),
        _text("key", 1000),
        _text("location"),
        _text("stage", 32),
        _json("technologies"),
        _json("fields"),
        _json("problems"),
        _text("digest", 80),
        sa.Column("complete", sa.Boolean(), nullable=False),
        _when("first_seen_at", False),
        _when("last_seen_at", False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_locations_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("dataset_id", "source", "key", name=op.f("pk_dataset_locations")),
    )
    with op.batch_alter_table("dataset_locations", schema=None) as batch_op:
        batch_op.create_index("ix_dataset_locations_source", ["source", "present"], unique=False)
    op.create_table(
        "dataset_files",
        _text("dataset_id", 40),
        _text("source", 200),
        _text("path", 1024),
        sa.Column("size", sa.BigInteger(), nullable=False),
        _text("checksum", 200, nullable=True),
        _text("etag", 200, nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        _when("first_seen_at", False),
        _when("last_seen_at", False),
        _text("outcome", 32),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_files_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("dataset_id", "source", "path", name=op.f("pk_dataset_files")),
    )
    op.create_table(
        "crawl_listings",
        _text("source", 200),
        _json("state"),
        _when("updated_at", False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_crawl_listings")),
    )
    op.create_table(
        "crawls",
        _text("id", 40),
        _when("started_at", False),
        _when("finished_at", True),
        _text("started_by", 64),
        _text("status", 32),
        _json("summary"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crawls")),
    )
    with op.batch_alter_table("crawls", schema=None) as batch_op:
        batch_op.create_index("ix_crawls_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("crawls", schema=None) as batch_op:
        batch_op.drop_index("ix_crawls_started_at")
    op.drop_table("crawls")
    op.drop_table("crawl_listings")
    op.drop_table("dataset_files")
    with op.batch_alter_table("dataset_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_dataset_locations_source")
    op.drop_table("dataset_locations")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_datasets_project_state")
    op.drop_table("datasets")
