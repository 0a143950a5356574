"""A crawl's first phase: list every source and read the metadata of what changed.

Each source is listed from its previous listing state; a source that fails ends its own
listing (its datasets are unknown this crawl) and the next one is listed all the same.
Metadata files are read only for places whose digest differs from the one stored in the
database — so an unchanged re-crawl reads none, and neither does a re-run after an
interruption for what the interrupted run already committed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from steward.crawl.config_model import CrawlConfig, SourceConfig
from steward.crawl.extract import MAX_METADATA_BYTES, DatasetMetadata, FileStatus, extract_metadata
from steward.crawl.extractors.base import any_wants
from steward.crawl.extractors.registry import get_extractor
from steward.crawl.listing import Source, open_source
from steward.crawl.model import FoundDataset, ListingOutcome
from steward.services.crawl_expected import Comparison, compare, take_manifests
from steward.services.crawl_plan import Found, Problem, SourceResult
from steward.services.crawl_spool import Spool
from steward.services.crawl_summary import Progress, ProgressHook

PROBLEM_FILES = {
    FileStatus.UNDECODABLE,
    FileStatus.UNREADABLE,
    FileStatus.TOO_LARGE,
    FileStatus.INVALID,
}


@dataclass
class FileNote:
    """A metadata file that needed a fallback encoding or gave nothing, for the summary."""

    accession: str
    location: str
    path: str
    status: str


@dataclass
class Listed:
    found: list[Found] = field(default_factory=list)
    results: dict[str, SourceResult] = field(default_factory=dict)
    outcomes: dict[str, ListingOutcome] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)
    notes: list[FileNote] = field(default_factory=list)
    spool: Spool = field(default_factory=Spool)
    """Where the found places' files wait for the write (removed with this object)."""


StoredDigests = Mapping[tuple[str, str, str], tuple[str, str]]
"""(project, source, key) → (accession, digest) of every stored place."""


def _file_problems(metadata: DatasetMetadata) -> list[Problem]:
    out: list[Problem] = []
    for r in metadata.files:
        if r.status in PROBLEM_FILES or r.status is FileStatus.FALLBACK:
            problem = {"kind": str(r.status), "path": r.path, "extractor": r.extractor}
            if r.encoding:
                problem["encoding"] = r.encoding
            if r.message:
                problem["message"] = r.message
            out.append(problem)
    return out


def _read(
    source: Source, config: SourceConfig, found: FoundDataset
) -> tuple[dict[str, Any], list[Problem], DatasetMetadata | None]:
    """The metadata of one place: its record (endpoints) or its files through the source's
    extractors; with the problems it had."""
    problems: list[Problem] = []
    if not found.complete:
        problems.append({"kind": "incomplete", "message": "part of its folder could not be read"})
    if found.record is not None:
        return dict(found.record), problems, None
    extractors = [get_extractor(name) for name in config.extractors]
    if not extractors or not found.files:
        return {}, problems, None
    metadata = extract_metadata(
        found.files,
        extractors,
        lambda f: source.read(found, f, limit=MAX_METADATA_BYTES),
        fallback=config.fallback_encoding,
    )
    return metadata.fields, problems + _file_problems(metadata), metadata


def _expected(
    found: FoundDataset, fields: dict[str, Any], is_metadata: Callable[[str], bool]
) -> Comparison | None:
    """The place's files against its manifests (taken out of ``fields``), if it has any."""
    manifests = take_manifests(fields)
    if manifests is None or found.files is None:
        return None
    return compare(found.files, manifests, is_metadata)


def list_sources(
    config: CrawlConfig,
    previous: Mapping[str, Mapping[str, Any] | None],
    stored: StoredDigests,
    *,
    environ: Mapping[str, str] | None = None,
    progress: ProgressHook | None = None,
    full: bool = False,
) -> Listed:
    """Every source of ``config`` listed, each from its ``previous`` listing state.

    Folder sources trust their folders' times unless ``full`` (see
    :mod:`steward.crawl.sources_fs`): the metadata files the source's extractors read are
    examined every time, the data files only when their folder changed."""
    out = Listed()
    try:
        _list_each(config, previous, stored, environ, progress, full, out)
    except BaseException:
        out.spool.close()  # the caller never gets it to close
        raise
    return out


def _list_each(
    config: CrawlConfig,
    previous: Mapping[str, Mapping[str, Any] | None],
    stored: StoredDigests,
    environ: Mapping[str, str] | None,
    progress: ProgressHook | None,
    full: bool,
    out: Listed,
) -> None:
    for cfg in config.sources:
        watch = any_wants([get_extractor(name) for name in cfg.extractors])
        source = open_source(cfg, environ=environ, quick=not full, watch=watch)
        listing = source.list(previous.get(cfg.name))
        files = reads = 0
        for n, found in enumerate(listing, 1):
            files += len(found.files or ())
            known = stored.get((cfg.project, cfg.name, found.key))
            fields: dict[str, Any] | None = None
            problems: list[Problem] = []
            fresh = known != (found.accession, found.digest)
            missing: tuple[tuple[str, int | None, str | None], ...] | None = None
            if fresh and (found.files is not None or found.record is not None):
                fields, problems, metadata = _read(source, cfg, found)
                checked = _expected(found, fields, watch)
                if checked is not None:
                    problems += checked.problems
                    missing = tuple(checked.missing)
                if metadata is not None:
                    reads += len({r.path for r in metadata.files})
                    for r in metadata.files:
                        if r.status in PROBLEM_FILES or r.status is FileStatus.FALLBACK:
                            out.notes.append(
                                FileNote(found.accession, found.location, r.path, str(r.status))
                            )
            out.found.append(
                Found(
                    project=cfg.project,
                    accession=found.accession,
                    source=cfg.name,
                    stage=cfg.stage,
                    technologies=cfg.tech,
                    key=found.key,
                    base=found.base,
                    location=found.location,
                    digest=found.digest,
                    complete=found.complete,
                    # Files are kept only where they will be written (the place changed).
                    files=(
                        out.spool.put(found.files)
                        if fields is not None and found.files is not None
                        else None
                    ),
                    fields=fields,
                    problems=tuple(problems),
                    missing=missing,
                )
            )
            if progress is not None and n % 100 == 0:
                progress(Progress("listing", cfg.name, n))
        outcome = listing.outcome
        out.outcomes[cfg.name] = outcome
        out.results[cfg.name] = SourceResult(
            outcome.status,
            unknown=frozenset(r.key for r in outcome.unknown),
            removed=frozenset(r.key for r in outcome.removed),
        )
        out.files[cfg.name] = files
        out.reads[cfg.name] = reads
        if progress is not None:
            progress(Progress("listing", cfg.name, outcome.found, outcome.found))
