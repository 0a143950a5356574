"""Incremental listing shared by every kind of source: what changed since last time, and what
could not be looked at.

A lister walks its storage and reports each dataset it finds to a :class:`Tracker`, which
compares it with the previous listing's state (a digest per dataset) and builds the next state.
The listing is a :class:`Listing`: an iterator of found datasets (one at a time, so a source of
a million files never sits in memory) whose :attr:`~Listing.outcome` — status, removed and
unknown datasets, problems, the new state — is known once it is exhausted.

The state (JSON-ready, stored by the caller between crawls)::

    {
      "format": "steward.crawl.listing/1",
      "kind": "folder" | "s3" | "endpoint",
      "source": "<digest of what decides the listing: URL, pattern, globs, pagination>",
      "datasets": {
        "<key>": {"accession": "E-MTAB-1", "location": "/nfs/…/E-MTAB-1",
                  "digest": "sha256:…", "files": 12, "bytes": 34567,
                  "dirs": {"": 1712345678901234567, "raw": …},      # folders only
                  "watched": {"E-MTAB-1.idf.txt": [812, 17123…]}}   # metadata files' size, time
      },
      "extra": {…}                                                   # per kind (endpoint pages)
    }

A dataset's digest covers each file's path, size and ETag (objects) or modification time
(files), or the whole JSON record (endpoints), so "unchanged" means no metadata file needs to
be read again. A state written for another URL, pattern or set of globs is not trusted (a
``state-reset`` problem says so) and everything is listed as new. Datasets of the previous
state that a failed or partial listing could not see are carried into the new state unchanged
and reported ``unknown`` — never ``removed`` — so a network blip cannot make them vanish.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict
from typing import Any

from steward.crawl.config_model import SourceConfig
from steward.crawl.model import (
    Change,
    DatasetRef,
    FoundDataset,
    FoundFile,
    ListingOutcome,
    Problem,
    ProblemKind,
    SourceStatus,
)
from steward.errors import StewardError
from steward.redact import redact

FORMAT = "steward.crawl.listing/1"
_HIDING = {
    ProblemKind.PERMISSION_DENIED,
    ProblemKind.UNREADABLE,
    ProblemKind.BAD_NAME,
    ProblemKind.SOURCE_FAILED,
    ProblemKind.PAGE_FAILED,
    ProblemKind.BAD_PAGE,
}


def source_fingerprint(source: SourceConfig) -> str:
    """What decides which datasets a listing finds; a state made under another is not reused."""
    rule = source.accession
    decisive = {
        "kind": source.kind,
        "url": source.url,
        "pattern": rule.pattern.pattern,
        "found_in": rule.found_in,
        "file": rule.file_glob,
        "field": rule.field,
        "include": source.include,
        "exclude": source.exclude,
        "items_field": source.items_field,
        "pagination": asdict(source.pagination),
    }
    text = json.dumps(decisive, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def files_digest(files: Iterable[FoundFile]) -> str:
    digest = hashlib.sha256()
    for signature in sorted(f.signature() for f in files):
        digest.update(signature.encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
    return f"sha256:{digest.hexdigest()}"


def record_digest(record: Mapping[str, Any]) -> str:
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def _under(key: str, prefix: str) -> bool:
    return not prefix or key == prefix or key.startswith(prefix + "/")


class Tracker:
    """Compares what a lister finds with the previous state and builds the next one."""

    def __init__(self, source: SourceConfig, previous: Mapping[str, Any] | None) -> None:
        self.source = source
        self.fingerprint = source_fingerprint(source)
        self.problems: list[Problem] = []
        self.retries = 0
        self.hiding = 0
        """How many problems so far hid data (a lister compares it before and after a dataset)."""
        self.extra: dict[str, Any] = {}
        """Per-kind state to keep for the next listing (endpoint pages)."""
        self.previous_extra: Mapping[str, Any] = {}
        self._previous: dict[str, dict[str, Any]] = {}
        self._current: dict[str, dict[str, Any]] = {}
        self._hidden: list[str] = []
        self._failed = False
        self._new = self._changed = 0
        if previous is not None:
            if self._usable(previous):
                self._previous = {str(k): dict(v) for k, v in previous["datasets"].items()}
                self.previous_extra = previous.get("extra") or {}
            else:
                self.problem(
                    ProblemKind.STATE_RESET,
                    source.display_url,
                    "the previous listing state belongs to another configuration of this source "
                    "(or is damaged); every dataset is listed as new",
                )

    def _usable(self, state: Mapping[str, Any]) -> bool:
        datasets = state.get("datasets")
        return (
            state.get("format") == FORMAT
            and state.get("kind") == self.source.kind
            and state.get("source") == self.fingerprint
            and isinstance(datasets, Mapping)
            and all(
                isinstance(v, Mapping) and {"accession", "digest", "location"} <= set(v)
                for v in datasets.values()
            )
        )

    # -- what the lister reports ------------------------------------------------------------
    def previous(self, key: str) -> Mapping[str, Any] | None:
        return self._previous.get(key)

    def found(
        self,
        *,
        accession: str,
        key: str,
        base: str,
        location: str,
        files: tuple[FoundFile, ...],
        digest: str | None = None,
        record: Mapping[str, Any] | None = None,
        complete: bool = True,
        dirs: Mapping[str, int] | None = None,
        watched: Mapping[str, list[int]] | None = None,
    ) -> FoundDataset:
        """A dataset listed now; its change is decided against the previous state."""
        digest = digest or files_digest(files)
        before = self._previous.get(key)
        if before is None:
            change = Change.NEW
        elif before["digest"] != digest or before["accession"] != accession:
            change = Change.CHANGED
        else:
            change = Change.UNCHANGED
        entry: dict[str, Any] = {
            "accession": accession,
            "location": location,
            "digest": digest,
            "files": len(files),
            "bytes": sum(f.size for f in files),
        }
        if dirs is not None:
            entry["dirs"] = dict(dirs)
        if watched is not None:
            entry["watched"] = dict(watched)
        if not complete and before is not None:
            # the next complete listing must compare with what was last seen whole
            entry = {**before, "accession": accession, "location": location}
        self._record(key, entry, change)
        return FoundDataset(
            source=self.source.name,
            accession=accession,
            key=key,
            base=base,
            location=location,
            change=change,
            digest=digest,
            files=files,
            record=record,
            complete=complete,
        )

    def carry(self, key: str, *, base: str) -> FoundDataset:
        """A dataset of the previous state known unchanged without listing its files again."""
        before = self._previous[key]
        self._record(key, dict(before), Change.UNCHANGED)
        return FoundDataset(
            source=self.source.name,
            accession=before["accession"],
            key=key,
            base=base,
            location=before["location"],
            change=Change.UNCHANGED,
            digest=before["digest"],
            files=None,
        )

    def _record(self, key: str, entry: dict[str, Any], change: Change) -> None:
        if key in self._current:
            raise ValueError(f"dataset key {key!r} reported twice")  # a lister's bug
        self._current[key] = entry
        self._new += change is Change.NEW
        self._changed += change is Change.CHANGED

    def seen(self, key: str) -> bool:
        return key in self._current

    def problem(
        self, kind: ProblemKind, where: str, message: str, *, hides_data: bool | None = None
    ) -> None:
        hides = kind in _HIDING if hides_data is None else hides_data
        self.problems.append(Problem(kind, redact(where), redact(message), hides))
        self.hiding += hides

    def hide(self, prefix: str) -> None:
        """Part of the source (keys below ``prefix``; all with "") could not be looked at."""
        self._hidden.append(prefix)

    def fail(
        self, where: str, message: str, *, kind: ProblemKind = ProblemKind.SOURCE_FAILED
    ) -> None:
        """The listing cannot go on: every dataset not seen yet is unknown this crawl."""
        self.problem(kind, where, message, hides_data=True)
        self._failed = True

    # -- the end ----------------------------------------------------------------------------
    def outcome(self) -> ListingOutcome:
        removed: list[DatasetRef] = []
        unknown: list[DatasetRef] = []
        datasets = dict(self._current)
        for key, entry in self._previous.items():
            if key in self._current:
                continue
            ref = DatasetRef(entry["accession"], key, entry["location"])
            if self._failed or any(_under(key, prefix) for prefix in self._hidden):
                unknown.append(ref)
                datasets[key] = entry
            else:
                removed.append(ref)
        if self._failed:
            status = SourceStatus.FAILED
        elif any(p.hides_data for p in self.problems):
            status = SourceStatus.PARTIAL
        else:
            status = SourceStatus.OK
        state = {
            "format": FORMAT,
            "kind": self.source.kind,
            "source": self.fingerprint,
            "datasets": datasets,
            "extra": self.extra,
        }
        return ListingOutcome(
            source=self.source.name,
            status=status,
            state=state,
            found=len(self._current),
            new=self._new,
            changed=self._changed,
            removed=tuple(removed),
            unknown=tuple(unknown),
            problems=tuple(self.problems),
            retries=self.retries,
        )


class Listing(Iterator[FoundDataset]):
    """One pass over one source: iterate the found datasets, then read :attr:`outcome`.

    A Steward error raised by the lister (unreachable, refused, a page that kept failing) ends
    the iteration quietly and becomes the outcome's ``failed`` status and problem; anything
    else is a bug and propagates.
    """

    def __init__(self, tracker: Tracker, walk: Iterator[FoundDataset]) -> None:
        self._tracker = tracker
        self._walk = walk
        self._outcome: ListingOutcome | None = None

    def __iter__(self) -> Listing:
        return self

    def __next__(self) -> FoundDataset:
        if self._outcome is not None:
            raise StopIteration
        try:
            return next(self._walk)
        except StopIteration:
            pass
        except StewardError as exc:
            self._tracker.fail(self._tracker.source.display_url, str(exc))
        self._outcome = self._tracker.outcome()
        raise StopIteration

    @property
    def outcome(self) -> ListingOutcome:
        if self._outcome is None:
            raise RuntimeError("the listing has not been read to its end yet")
        return self._outcome

    def collect(self) -> tuple[list[FoundDataset], ListingOutcome]:
        """Every found dataset and the outcome (small sources and tests)."""
        found = list(self)
        return found, self.outcome
