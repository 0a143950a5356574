"""packages, their files, shares and the share registry

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import steward.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("layout", sa.String(length=500), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("manifest_digest", sa.String(length=64), nullable=False),
        sa.Column("libraries", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_size", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("builder", sa.String(length=200), nullable=True),
        sa.Column("lease_until", steward.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", steward.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", steward.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state_since", steward.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", steward.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("keep_until", steward.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("files_removed_at", steward.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_packages_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packages")),
        sa.UniqueConstraint("project_id", "name", name="uq_packages_project_name"),
    )
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.create_index("ix_packages_project_state", ["project_id", "state"], unique=False)

    op.create_table(
        "package_files",
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("relpath", sa.String(length=1024), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("storage_class", sa.String(length=32), nullable=True),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("sample_id", sa.String(length=200), nullable=False),
        sa.Column("library_id", sa.String(length=200), nullable=False),
        sa.Column("subject_id", sa.String(length=200), nullable=False),
        sa.Column("project_code", sa.String(length=200), nullable=False),
        sa.Column("data_type", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=200), nullable=False),
        sa.Column("lane", sa.String(length=32), nullable=True),
        sa.Column("workflow_name", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["package_id"], ["packages.id"], name=op.f("fk_package_files_package_id_packages")
        ),
        sa.PrimaryKeyConstraint("package_id", "relpath", name=op.f("pk_package_files")),
    )
    op.create_table(
        "shares",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=200), nullable=True),
        sa.Column("lease_until", steward.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("object_count", sa.Integer(), nullable=True),
        sa.Column("bytes_total", sa.BigInteger(), nullable=True),
        sa.Column("links_expire_at", steward.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("script_path", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", steward.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", steward.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state_since", steward.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", steward.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["package_id"], ["packages.id"], name=op.f("fk_shares_package_id_packages")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_shares_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shares")),
    )
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.create_index("ix_shares_project_state", ["project_id", "state"], unique=False)

    op.create_table(
        "share_objects",
        sa.Column("share_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("package_id", sa.String(length=40), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("etag", sa.String(length=80), nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("verified_at", steward.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_id"], ["shares.id"], name=op.f("fk_share_objects_share_id_shares")
        ),
        sa.PrimaryKeyConstraint("share_id", "key", name=op.f("pk_share_objects")),
    )
    with op.batch_alter_table("share_objects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_share_objects_package_id"), ["package_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("share_objects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_share_objects_package_id"))

    op.drop_table("share_objects")
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.drop_index("ix_shares_project_state")

    op.drop_table("shares")
    op.drop_table("package_files")
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_index("ix_packages_project_state")

    op.drop_table("packages")
