"""What listing a source produces: found datasets, problems, and the outcome of the whole pass.

Everything here is plain data, JSON-ready through ``as_dict``, so the crawl service can store
it in events and summaries as it is. Three distinctions matter to the tracker and are kept
explicit rather than implied:

- a dataset that is *gone* (``removed``: the source listed completely and it was not there) is
  different from one that could not be looked at (``unknown``: its source failed, or the part of
  the source holding it could not be read) — only the first may ever become ``missing``;
- a source that listed everything (``ok``), one that listed but could not see some part
  (``failed-partially``: a permission-denied folder) and one whose listing failed (``failed``:
  unreachable, refused, a page that kept failing) are three states, never one "error";
- a problem says whether it hid data (``hides_data``), so a summary can tell "a symlink loop
  was skipped" from "a folder could not be read".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class SourceStatus(StrEnum):
    OK = "ok"
    PARTIAL = "failed-partially"
    FAILED = "failed"


class Change(StrEnum):
    """A found dataset compared with the previous listing of the same source."""

    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


class ProblemKind(StrEnum):
    PERMISSION_DENIED = "permission-denied"
    UNREADABLE = "unreadable"
    SYMLINK_LOOP = "symlink-loop"
    SEEN_TWICE = "seen-twice"
    BROKEN_LINK = "broken-link"
    BAD_NAME = "bad-name"
    SOURCE_FAILED = "source-failed"
    PAGE_FAILED = "page-failed"
    BAD_PAGE = "bad-page"
    BAD_RECORD = "bad-record"
    DUPLICATE_RECORD = "duplicate-record"
    STATE_RESET = "state-reset"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    where: str
    """A path below the source's root, a URL (without credentials) or an object key."""
    message: str
    hides_data: bool
    """True when part of the source could not be seen because of it."""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": str(self.kind)}


@dataclass(frozen=True, slots=True)
class FoundFile:
    path: str
    """Relative to the dataset's ``base`` folder, ``/``-separated."""
    size: int
    mtime_ns: int | None = None
    """Folders: the file's modification time (change detection)."""
    etag: str | None = None
    """Object stores: the object's ETag (change detection, later content duplicates)."""

    def signature(self) -> str:
        """What must stay equal for the file to count as unchanged."""
        return f"{self.path}\0{self.size}\0{self.etag if self.etag is not None else self.mtime_ns}"


@dataclass(frozen=True)
class FoundDataset:
    source: str
    accession: str
    key: str
    """Unique within the source (the folder or prefix below the root; the record's accession
    for endpoints): what the listing state and ``removed``/``unknown`` refer to."""
    base: str
    """The folder below the source's root that ``files`` are relative to."""
    location: str
    """Where a person finds it: a path, ``s3://`` URL or endpoint URL, never with credentials."""
    change: Change
    digest: str
    """Changes whenever a file is added, removed, resized or rewritten (or the record changes)."""
    files: tuple[FoundFile, ...] | None
    """None when the listing did not look again because nothing can have changed (a quick
    re-crawl of a folder whose directories kept their times; an endpoint page answered 304)."""
    record: Mapping[str, Any] | None = None
    """Endpoint sources: the JSON record; None for storage, or when not fetched again."""
    complete: bool = True
    """False when part of the dataset's folder could not be read (see the problems)."""

    @property
    def size(self) -> int | None:
        return None if self.files is None else sum(f.size for f in self.files)


@dataclass(frozen=True)
class DatasetRef:
    """A dataset of the previous listing, named without listing it again."""

    accession: str
    key: str
    location: str


@dataclass(frozen=True)
class ListingOutcome:
    """The end of one pass over one source; ``state`` is what the next pass needs."""

    source: str
    status: SourceStatus
    state: dict[str, Any]
    """JSON-ready; store it as is and pass it to the next ``list`` of the same source."""
    found: int
    new: int
    changed: int
    removed: tuple[DatasetRef, ...]
    unknown: tuple[DatasetRef, ...]
    problems: tuple[Problem, ...]
    retries: int = 0
    """Requests that failed and were retried (successfully or not)."""

    @property
    def failed(self) -> bool:
        return self.status is not SourceStatus.OK

    def summary(self) -> dict[str, Any]:
        """Counts and the problems, JSON-ready (the state is left out: it can be large)."""
        return {
            "source": self.source,
            "status": str(self.status),
            "found": self.found,
            "new": self.new,
            "changed": self.changed,
            "removed": [asdict(r) for r in self.removed],
            "unknown": len(self.unknown),
            "retries": self.retries,
            "problems": [p.as_dict() for p in self.problems],
        }
