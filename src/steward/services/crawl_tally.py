"""Filling a crawl's summary: per source from the listings, per dataset from the plans that
were committed (or, in a dry run, would be)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from steward.crawl.config_model import CrawlConfig
from steward.crawl.model import SourceStatus
from steward.domain import datasets as domain
from steward.services.crawl_listing import Listed
from steward.services.crawl_plan import Found, Plan, Shape
from steward.services.crawl_summary import EXAMPLES, CrawlSummary, SourceSummary

_DUPLICATE_KINDS = ("duplicate", "duplicate-location")


def count_sources(summary: CrawlSummary, config: CrawlConfig, listed: Listed) -> None:
    for cfg in config.sources:
        outcome = listed.outcomes[cfg.name]
        problems = [p.as_dict() for p in outcome.problems]
        summary.sources.append(
            SourceSummary(
                name=cfg.name,
                project=cfg.project,
                stage=cfg.stage,
                url=cfg.display_url,
                status=str(outcome.status),
                found=outcome.found,
                new=outcome.new,
                changed=outcome.changed,
                removed=len(outcome.removed),
                unknown=len(outcome.unknown),
                retries=outcome.retries,
                files=listed.files.get(cfg.name, 0),
                metadata_files_read=listed.reads.get(cfg.name, 0),
                problems=problems[: EXAMPLES * 2],
                problem_count=len(problems),
            )
        )
        if outcome.status is not SourceStatus.OK:
            why = next((p.message for p in outcome.problems if p.hides_data), "")
            summary.count("failed_sources", f"{cfg.name}: {outcome.status}: {why}".rstrip(": "))
    for note in listed.notes:
        name = "fallback_files" if note.status == "decoded-with-fallback" else "unreadable_files"
        summary.count(name, f"{note.accession}: {note.path} ({note.status})")


def count_plan(summary: CrawlSummary, p: Plan, listed: Listed) -> None:
    shape, stored = p.shape, p.shape.stored
    accession = shape.accession
    if p.discovery is not None:
        summary.count("new", f"{accession} in {shape.stage}")
    for command, data in p.events:
        if command.startswith("move-to-"):
            state = stored.state if stored else "?"
            summary.count("state_changes", f"{accession}: {state} → {shape.stage}")
        elif command.startswith("reappear-in-"):
            summary.count("reappeared", f"{accession} in {shape.stage}")
        elif command == domain.VANISH:
            summary.count("missing", f"{accession} (was {stored.state if stored else '?'})")
        elif command == domain.ADD_LOCATION:
            summary.count("locations_added", f"{accession}: {data['location']}")
        elif command == domain.REMOVE_LOCATION:
            summary.count("locations_removed", f"{accession}: {data['location']}")
        elif command == domain.CHANGE_METADATA:
            changed = ", ".join([*data["changed"], *(["technologies"] * ("technologies" in data))])
            summary.count("metadata_changed", f"{accession}: {changed}")
        elif command in (domain.RECORD_PROBLEMS, domain.CLEAR_PROBLEMS):
            summary.count("problems_changed", f"{accession}: {len(p.problems)} problem(s)")
    seen = any(x.seen for x in shape.places)
    if seen and stored is not None and stored.state == domain.WITHDRAWN:
        summary.count("withdrawn_found", f"{accession} at {_first_seen(shape.places)}")
    duplicate = next((q for q in p.problems if q["kind"] in _DUPLICATE_KINDS), None)
    if seen and duplicate is not None:
        if duplicate["kind"] == "duplicate":
            summary.count(
                "duplicates", f"{accession} = {duplicate['other']} ({duplicate['reason']})"
            )
        else:
            summary.count("duplicates", f"{accession} twice in {duplicate['stage']}")


def count_unknown(summary: CrawlSummary, shapes: Iterable[Shape], listed: Listed) -> None:
    """Datasets kept where a source could not be (fully) listed: unknown this crawl."""
    for shape in shapes:
        for x in shape.places:
            result = listed.results.get(x.source)
            if x.present and not x.seen and result and result.status is not SourceStatus.OK:
                summary.count("unknown", f"{shape.accession} ({x.source}: {result.status})")
                break


def _first_seen(places: Sequence[object]) -> str:
    for x in places:
        if getattr(x, "seen", False):
            return str(getattr(x, "location", ""))
    return ""


def count_seen(summary: CrawlSummary, found: Mapping[Any, list[Found]], listed: Listed) -> None:
    summary.datasets = len(found)
    summary.files = sum(listed.files.values())
