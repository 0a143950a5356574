"""The models and the migrations describe the same schema.

Migrations are written by hand; the ORM models are what the code queries. If the two drift
(a column in a model that no migration creates, a changed type, a lost index or foreign key),
the first query against a real database fails in production, not here.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Float

from steward.db.models import Base
from steward.db.session import Database


def _compare_type(
    _ctx: Any, _reflected_col: Any, _declared_col: Any, reflected: Any, declared: Any
) -> bool | None:
    # A float is a float: the migration says FLOAT, the model DOUBLE, PostgreSQL reports
    # DOUBLE PRECISION — one 8-byte type under three names.
    if isinstance(reflected, Float) and isinstance(declared, Float):
        return False
    return None  # alembic's own comparison


def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": _compare_type})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
