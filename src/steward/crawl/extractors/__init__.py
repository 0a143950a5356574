"""Metadata extractors: a small plugin interface and the built-in readers.

Built in: ``mage-tab-idf``, ``mage-tab-sdrf`` (:mod:`.magetab`), ``sidecar-json``,
``sidecar-yaml`` (:mod:`.sidecars`) and ``tsv`` (:mod:`.tsv`). A site adds its own through the
``steward.extractors`` entry point group (see :mod:`.registry`); a source's config chooses
extractors by name. The runner that reads, decodes and records every file's outcome is
:mod:`steward.crawl.extract`.
"""

from steward.crawl.extractors.base import Extraction, ExtractionFailed, Extractor
from steward.crawl.extractors.registry import (
    ENTRY_POINT_GROUP,
    REGISTRY,
    Registry,
    extractor_names,
    get_extractor,
    plugin_problems,
    register,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "Extraction",
    "ExtractionFailed",
    "Extractor",
    "Registry",
    "extractor_names",
    "get_extractor",
    "plugin_problems",
    "register",
]
