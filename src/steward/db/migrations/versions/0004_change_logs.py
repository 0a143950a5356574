"""change_logs: each subject's change log, kept as the lines of its CSV export

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 01:40:00

The ledger keeps the table up to date from now on; the logs of the events already in the
ledger are derived here from the events, with the same code (``db/change_logs.rebuild``) that
tests use to check the kept logs against the events.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import steward.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_logs",
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("moves", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("since", steward.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_kind", "subject_id", name=op.f("pk_change_logs")),
    )
    with op.batch_alter_table("change_logs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_change_logs_project", ["project_id", "subject_kind", "subject_id"], unique=False
        )
    from steward.db import change_logs

    if change_logs.rebuild(op.get_bind()):
        op.execute("ANALYZE change_logs")  # statistics for the planner, as after an import


def downgrade() -> None:
    with op.batch_alter_table("change_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_change_logs_project")
    op.drop_table("change_logs")
