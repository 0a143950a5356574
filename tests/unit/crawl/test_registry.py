"""Extractors by name: the built-in ones and a site's own, through the entry point group."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from steward.crawl.config import parse_crawl_config
from steward.crawl.extractors import ENTRY_POINT_GROUP, Registry, extractor_names
from steward.crawl.extractors.magetab import IdfExtractor
from steward.errors import ValidationFailed
from tests.unit.crawl.site_plugin import GeoSoft


def point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_the_builtin_extractors_are_registered() -> None:
    assert set(extractor_names()) >= {
        "mage-tab-idf",
        "mage-tab-sdrf",
        "sidecar-json",
        "sidecar-yaml",
        "tsv",
    }


def test_a_site_extractor_comes_in_through_an_entry_point() -> None:
    registry = Registry()
    registry.load_plugins([point("geo-soft", "tests.unit.crawl.site_plugin:GeoSoft")])
    assert isinstance(registry.get("geo-soft"), GeoSoft)
    assert "geo-soft" in registry.names()
    assert registry.plugin_problems() == ()
    # and a config may then choose it by name
    entry = {
        "url": "/d",
        "project": "p1",
        "stage": "loading",
        "pattern": "^GSE",
        "extractors": ["geo-soft"],
    }
    config = parse_crawl_config({"sources": [entry]}, extractor_names=registry.names())
    assert config.sources[0].extractors == ("geo-soft",)


def test_a_broken_or_misnamed_plugin_is_reported_not_fatal() -> None:
    registry = Registry()
    registry.load_plugins(
        [
            point("missing", "tests.unit.crawl.no_such_module:X"),
            point("geo-soft", "tests.unit.crawl.site_plugin:Misnamed"),
            point("not-one", "tests.unit.crawl.site_plugin:point"),
        ]
    )
    problems = registry.plugin_problems()
    assert len(problems) == 3
    assert "ModuleNotFoundError" in problems[0]
    assert "registers itself as 'geo-soft-2'" in problems[1]
    assert "could not be loaded" in problems[2]
    assert "missing" not in registry.names()
    with pytest.raises(KeyError):
        registry.get("missing")
    with pytest.raises(ValidationFailed, match="1 problem"):
        parse_crawl_config(
            {
                "sources": [
                    {
                        "url": "/d",
                        "project": "p1",
                        "stage": "loading",
                        "pattern": "^E",
                        "extractors": ["missing"],
                    }
                ]
            },
            extractor_names=registry.names(),
        )


def test_names_are_unique() -> None:
    registry = Registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(IdfExtractor)
    registry.register(GeoSoft)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(GeoSoft())
