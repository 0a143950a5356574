"""crawl_locks (one lease row per source, so crawls of overlapping sources never overlap) and
crawl_schedules (periodic crawls the worker queues, their sources kept without secrets)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import steward.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, steward.db.types.UTCDateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int | None = None, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    kind = sa.Text() if length is None else sa.String(length=length)
    return sa.Column(name, kind, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "crawl_locks",
        _text("source", 200),
        _text("holder", 200, nullable=True),
        _when("lease_until", True),
        _text("crawl_id", 40, nullable=True),
        _when("started_at", True),
        _text("started_by", 64, nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_crawl_locks")),
    )
    op.create_table(
        "crawl_schedules",
        _text("name", 64),
        sa.Column("every_seconds", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        _text("origin"),
        _text("created_by", 64),
        _when("created_at", False),
        _text("last_crawl_id", 40, nullable=True),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_crawl_schedules")),
    )


def downgrade() -> None:
    op.drop_table("crawl_schedules")
    op.drop_table("crawl_locks")
