"""One entry point for listing any source: ``open_source(config).list(previous_state)``.

Every kind of source has the same two operations, so the crawl service never asks what it is
talking to::

    source = open_source(config)                 # nothing is contacted yet
    listing = source.list(previous_state)        # previous_state: last outcome's state, or None
    for found in listing:                        # FoundDataset, one at a time
        if found.change is not Change.UNCHANGED:
            metadata = extract_metadata(found.files or (), extractors,
                                        lambda f: source.read(found, f, limit=MAX),
                                        fallback=config.fallback_encoding)
    outcome = listing.outcome                    # status, removed, unknown, problems, state

Credentials are read when the listing starts (a missing variable fails that source, not the
config); a source that cannot be listed ends its iteration early with a ``failed`` outcome
rather than raising, so one broken location never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from steward.crawl.config_model import SourceConfig
from steward.crawl.model import FoundDataset, FoundFile
from steward.crawl.tracking import Listing


class Source(Protocol):
    """What every kind of source offers (folders, S3, endpoints)."""

    config: SourceConfig

    def list(self, previous: Mapping[str, Any] | None = None) -> Listing:
        """List the source, comparing with ``previous`` (the last outcome's ``state``)."""
        ...

    def read(self, dataset: FoundDataset, file: FoundFile, *, limit: int | None = None) -> bytes:
        """A file of a found dataset (at most ``limit`` + 1 bytes); Steward errors on failure."""
        ...


def open_source(
    config: SourceConfig,
    *,
    environ: Mapping[str, str] | None = None,
    quick: bool = False,
    watch: Callable[[str], bool] | None = None,
) -> Source:
    """The lister for ``config``'s kind. ``environ`` replaces ``os.environ`` for credentials;
    ``quick`` lets folder sources trust directory times but for the files ``watch`` names
    (see :mod:`.sources_fs`)."""
    if config.kind == "folder":
        from steward.crawl.sources_fs import FolderSource

        return FolderSource(config, quick=quick, watch=watch)
    if config.kind == "s3":
        from steward.crawl.sources_s3 import S3Source

        return S3Source(config, environ=environ)
    from steward.crawl.sources_http import EndpointSource

    return EndpointSource(config, environ=environ)
