"""What a crawl tells people at its end, and while it runs.

The summary counts what changed — new datasets, state changes, missing, reappeared,
duplicates, unreadable or undecodable files, failed sources — each with its first examples,
and the crawl's throughput; it is stored on the crawl's row and shown by ``steward crawl``
and ``steward crawl show``. Everything in it comes from locations (masked by the crawl
package) and problem messages (redacted there), so no secret reaches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

EXAMPLES = 10
"""How many examples each count keeps."""

COUNTS = (
    "new",
    "state_changes",
    "missing",
    "reappeared",
    "duplicates",
    "unreadable_files",
    "fallback_files",
    "failed_sources",
    "locations_added",
    "locations_removed",
    "metadata_changed",
    "problems_changed",
    "unknown",
    "withdrawn_found",
)
"""Every count a summary has, in the order people read them."""


class SourceSummary(BaseModel):
    name: str
    project: str
    stage: str
    url: str
    """Without credentials (masked)."""
    status: str
    found: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0
    unknown: int = 0
    retries: int = 0
    files: int = 0
    metadata_files_read: int = 0
    problems: list[dict[str, Any]] = Field(default_factory=list)
    problem_count: int = 0


class Count(BaseModel):
    count: int = 0
    examples: list[str] = Field(default_factory=list)

    def add(self, example: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(example)


class CrawlSummary(BaseModel):
    id: str | None
    """The crawl's id (``crl_…``); ``None`` for a dry run, which stores nothing."""
    status: str
    """``ok``, ``partial`` (some source failed), ``failed`` (every source failed) or
    ``dry-run``; ``running``/``interrupted`` only on stored rows."""
    dry_run: bool = False
    started_at: datetime
    finished_at: datetime | None = None
    started_by: str
    sources: list[SourceSummary] = Field(default_factory=list)
    counts: dict[str, Count] = Field(default_factory=lambda: {n: Count() for n in COUNTS})
    datasets: int = 0
    """Datasets seen (found in at least one source)."""
    files: int = 0
    """Files listed."""
    events: int = 0
    """Events appended (for a dry run: that would be)."""
    seconds: float = 0.0
    error: str | None = None
    """Why the crawl stopped, when it failed (redacted)."""

    def count(self, name: str, example: str) -> None:
        self.counts[name].add(example)

    @property
    def datasets_per_second(self) -> float:
        return self.datasets / self.seconds if self.seconds > 0 else 0.0

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["datasets_per_second"] = round(self.datasets_per_second, 1)
        out["files_per_second"] = round(self.files_per_second, 1)
        return out


@dataclass(frozen=True)
class Progress:
    """Where a crawl is: ``phase`` (``listing``, ``writing``, ``committed``, ``done``), the
    source being listed, and how far (``total`` None: not known in advance)."""

    phase: str
    source: str | None = None
    done: int = 0
    total: int | None = None


ProgressHook = Callable[[Progress], None]
