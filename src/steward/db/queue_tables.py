"""Tables of the job runner, the outbox and the worker's schedule.

Declared on the same ``Base`` as every other table (``db/models.py`` imports this module at
its end), so migrations, the schema-drift test and ``create_all`` see them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from steward.db.models import Base


class Action(Base):
    """The outbox: one effect on the outside world (run a job, call a webhook…).

    Written in the same transaction as the event that caused it, so an effect is never lost
    when the process dies after the commit, nor sent for an event that was rolled back. The
    unique idempotency key makes a repeated request the same row, never a second effect.
    """

    __tablename__ = "actions"
    __table_args__ = (
        # The relay's question: what is due now (pending and past its next try, or held by
        # a worker whose lease ran out)?
        Index("ix_actions_due", "state", "next_try_at"),
        Index("ix_actions_subject", "subject_kind", "subject_id"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(40))
    project_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    """pending, running, done, failed (gave up or refused for good) or cancelled."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_try_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    """When the relay last handed the row to the queue (so it is not handed over twice)."""
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class JobProgress(Base):
    """How far a long job on a subject is, written by its heartbeat, readable by anyone.

    One row per subject (a package's build, a share's push): a resumed job continues it.
    """

    __tablename__ = "job_progress"
    subject_kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    items_done: Mapped[int] = mapped_column(Integer, default=0)
    items_total: Mapped[int | None] = mapped_column(Integer)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64))


class Schedule(Base):
    """A periodic task's turn: who runs it now (a lease, so a killed worker does not keep
    it forever) and when it is next due. Two workers never run the same task at once."""

    __tablename__ = "schedules"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime]
    owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    runs: Mapped[int] = mapped_column(Integer, default=0)
