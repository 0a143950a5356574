"""The parsed sources config: plain frozen records, built only by :mod:`steward.crawl.config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from steward.crawl.accessions import DEFAULT_MAPPINGS, AccessionMapping, AccessionRule
from steward.crawl.globs import PathFilter
from steward.crawl.inline_secrets import mask
from steward.domain.datasets import STAGES
from steward.errors import NotFound

SourceKind = Literal["folder", "s3", "endpoint"]
PaginationStyle = Literal["none", "link", "cursor"]
DEFAULT_STAGES = STAGES
"""The dataset workflow's stages; a config may rank them differently, never name others."""


@dataclass(frozen=True)
class Pagination:
    """How an endpoint's pages follow one another."""

    style: PaginationStyle = "none"
    next_field: str | None = None
    """``link``: dotted path of the next page's URL in the body; None: the ``Link`` header."""
    cursor_field: str | None = None
    """``cursor``: dotted path of the next cursor in the body (absent or empty: last page)."""
    cursor_param: str = "cursor"
    """``cursor``: the query parameter that sends the cursor back."""


@dataclass(frozen=True)
class SourceConfig:
    """One location and what it means; built only by :func:`parse_crawl_config`."""

    name: str
    url: str
    kind: SourceKind
    stage: str
    accession: AccessionRule
    project: str = ""
    """The project its datasets belong to (required in a config; empty only in records built
    by hand for listing alone)."""
    field: str = "crawl.sources[0]"
    """This entry's path in the config, for messages (``crawl.sources[2]``)."""
    tech: tuple[str, ...] = ()
    extractors: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    fallback_encoding: str | None = None
    endpoint: str | None = None
    region: str | None = None
    access_key_env: str | None = None
    secret_key_env: str | None = None
    token_env: str | None = None
    items_field: str | None = None
    pagination: Pagination = Pagination()
    timeout: float = 30.0
    retries: int = 3

    @property
    def paths(self) -> PathFilter:
        return PathFilter(self.include, self.exclude)

    @property
    def display_url(self) -> str:
        return mask(self.url)


@dataclass(frozen=True)
class CrawlConfig:
    sources: tuple[SourceConfig, ...]
    stages: tuple[str, ...] = DEFAULT_STAGES
    """Lowest rank first: a dataset found in several stages is in the last of them."""
    mappings: tuple[AccessionMapping, ...] = DEFAULT_MAPPINGS
    origin: str = "steward.toml"

    def rank(self, stage: str) -> int:
        return self.stages.index(stage)

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise NotFound(f"no crawl source is named {name!r}")
