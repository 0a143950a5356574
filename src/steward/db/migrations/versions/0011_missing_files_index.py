"""An index of the files recorded as missing only: a re-crawl that trusted its folders' times
moves on the seen-time of those alone, and without it looked at every file of every place
found (200,000 rows to update none)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_MISSING = sa.text("outcome = 'missing'")


def upgrade() -> None:
    op.create_index(
        "ix_dataset_files_missing",
        "dataset_files",
        ["source", "dataset_id"],
        sqlite_where=_MISSING,
        postgresql_where=_MISSING,
    )


def downgrade() -> None:
    op.drop_index("ix_dataset_files_missing", table_name="dataset_files")
