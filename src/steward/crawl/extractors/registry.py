"""Extractors by name: the built-in ones, and a site's own through a package entry point.

A site adds an extractor by installing a package that declares it in the entry point group
``steward.extractors``; nothing in Steward's config names Python code to import, so a sources
file (which may be edited by more people than the deployment) can only *choose* among installed
extractors, never load new code::

    # the site package's pyproject.toml
    [project.entry-points."steward.extractors"]
    geo-soft = "atlas_steward.geo:GeoSoftExtractor"

The entry point names an :class:`~steward.crawl.extractors.base.Extractor` subclass (built
without arguments) or an instance; it is registered under its ``name`` attribute, and the entry
point's own name must match it so that ``pip show`` and the config agree. Plugins are loaded
once, on first use; one that fails to load is reported by :func:`plugin_problems` (and the
config then calls its name unknown) instead of stopping every crawl.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib import metadata

from steward.crawl.extractors.base import Extractor
from steward.crawl.extractors.expected import ExpectedFilesExtractor
from steward.crawl.extractors.magetab import IdfExtractor, SdrfExtractor
from steward.crawl.extractors.sidecars import JsonSidecar, YamlSidecar
from steward.crawl.extractors.tsv import TsvExtractor

ENTRY_POINT_GROUP = "steward.extractors"
BUILTIN: tuple[type[Extractor], ...] = (
    IdfExtractor,
    SdrfExtractor,
    JsonSidecar,
    YamlSidecar,
    TsvExtractor,
    ExpectedFilesExtractor,
)


class Registry:
    """Name → extractor. :data:`REGISTRY` is the process's; tests build their own."""

    def __init__(self, builtin: Iterable[type[Extractor] | Extractor] = BUILTIN) -> None:
        self._items: dict[str, Extractor] = {}
        self._lock = threading.Lock()
        self._plugins_loaded = False
        self._problems: list[str] = []
        for item in builtin:
            self.register(item)

    def register(self, extractor: type[Extractor] | Extractor) -> Extractor:
        """Add an extractor (a class is instantiated); a name already taken is refused."""
        instance = extractor() if isinstance(extractor, type) else extractor
        if not isinstance(instance, Extractor):
            raise TypeError(f"{extractor!r} is not an Extractor")
        name = getattr(instance, "name", "")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{extractor!r} has no name")
        if not getattr(instance, "globs", ()):
            raise ValueError(f"extractor {name!r} names no files (globs is empty)")
        with self._lock:
            if name in self._items and self._items[name] is not instance:
                raise ValueError(f"an extractor named {name!r} is already registered")
            self._items[name] = instance
        return instance

    def load_plugins(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Register the ``steward.extractors`` entry points (once; pass some to test)."""
        with self._lock:
            if self._plugins_loaded and entry_points is None:
                return
            self._plugins_loaded = True
        found = (
            metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
        )
        for point in found:
            try:
                loaded = point.load()
                instance = self.register(loaded)
            except Exception as exc:  # a broken plugin must not stop every crawl
                self._problems.append(
                    f"extractor plugin {point.name!r} ({point.value}) could not be loaded: "
                    f"{type(exc).__name__}: {exc}"
                )
                continue
            if instance.name != point.name:
                self._problems.append(
                    f"extractor plugin {point.name!r} registers itself as {instance.name!r}; "
                    "the entry point's name should match"
                )

    def get(self, name: str) -> Extractor:
        """The extractor registered as ``name``; KeyError when there is none."""
        self.load_plugins()
        return self._items[name]

    def names(self) -> tuple[str, ...]:
        self.load_plugins()
        return tuple(sorted(self._items))

    def plugin_problems(self) -> tuple[str, ...]:
        self.load_plugins()
        return tuple(self._problems)


REGISTRY = Registry()


def register(extractor: type[Extractor] | Extractor) -> Extractor:
    """Register a site extractor in-process (tests, embedding); sites use the entry point."""
    return REGISTRY.register(extractor)


def get_extractor(name: str) -> Extractor:
    return REGISTRY.get(name)


def extractor_names() -> tuple[str, ...]:
    return REGISTRY.names()


def plugin_problems() -> tuple[str, ...]:
    return REGISTRY.plugin_problems()
