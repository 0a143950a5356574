"""events.stay_seconds: the time spent in the state an event leaves

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:00:00

New events get the value from the ledger and the importer as they are written; existing
events get it here, computed in the database from their own timestamps exactly as the
ledger computes it: this event's time minus the time of the previous state-changing event of
the same subject, to the microsecond. The creation and events that change no state keep NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_MOVES = "(from_state IS NULL OR from_state <> to_state)"

# Each state change with the time its subject entered the state it leaves (the previous
# state change's time). Ordered by seq, the subject's own order of events.
_ENTERED = f"""
    SELECT id, from_state,
           lag(at) OVER (PARTITION BY subject_kind, subject_id ORDER BY seq) AS entered
    FROM events WHERE {_MOVES}
"""


def _micros_sqlite(column: str) -> str:
    """Microseconds since 1970 of SQLAlchemy's SQLite timestamp text ('YYYY-MM-DD HH:MM:SS.ffffff',
    UTC), in integers: julianday() keeps only milliseconds, and strftime('%s') of the full text
    rounds the fraction to the millisecond, which can carry into the next second."""
    return (
        f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000"
        f" + CAST(substr(substr({column}, 21) || '000000', 1, 6) AS INTEGER))"
    )


def _backfill() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        seconds = f"({_micros_sqlite('e.at')} - {_micros_sqlite('m.entered')}) / 1000000.0"
    elif dialect == "postgresql":
        # Whole microseconds (exact), then one correctly rounded division, as Python's
        # timedelta.total_seconds() does.
        micros = "round(EXTRACT(EPOCH FROM (e.at - m.entered)) * 1000000)::bigint"
        seconds = f"{micros}::float8 / 1000000::float8"
    else:  # pragma: no cover - Steward supports SQLite and PostgreSQL
        raise NotImplementedError(f"no backfill for {dialect}")
    op.execute(
        sa.text(
            f"""
            UPDATE events AS e SET stay_seconds = {seconds}
            FROM ({_ENTERED}) AS m
            WHERE e.id = m.id AND m.from_state IS NOT NULL AND m.entered IS NOT NULL
            """
        )
    )


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stay_seconds", sa.Float(), nullable=True))
    _backfill()
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_stays",
            ["subject_kind", "project_id", "from_state", "stay_seconds"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_stays")
        batch_op.drop_column("stay_seconds")
