"""actions (the outbox), job_progress and schedules: jobs, effects and the worker

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 22:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import steward.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, steward.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        _when("next_try_at", False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        _when("lease_until", True),
        _when("queued_at", True),
        sa.Column("cancel_requested_by", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        _when("created_at", False),
        _when("updated_at", False),
        _when("finished_at", True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_actions_idempotency_key")),
    )
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.create_index("ix_actions_due", ["state", "next_try_at"], unique=False)
        batch_op.create_index("ix_actions_subject", ["subject_kind", "subject_id"], unique=False)
    op.create_table(
        "job_progress",
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        _when("started_at", False),
        _when("updated_at", False),
        _when("finished_at", True),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=True),
        sa.Column("items_done", sa.Integer(), nullable=False),
        sa.Column("items_total", sa.Integer(), nullable=True),
        sa.Column("cancel_requested_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("subject_kind", "subject_id", name=op.f("pk_job_progress")),
    )
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(length=64), nullable=False),
        _when("next_run_at", False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        _when("lease_until", True),
        _when("last_run_at", True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_schedules")),
    )


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_table("job_progress")
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.drop_index("ix_actions_subject")
        batch_op.drop_index("ix_actions_due")
    op.drop_table("actions")
