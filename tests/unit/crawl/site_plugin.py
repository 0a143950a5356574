"""A site's own extractor, as a package would ship it (loaded through an entry point in tests)."""

from __future__ import annotations

from steward.crawl.extractors.base import Extraction, Extractor


class GeoSoft(Extractor):
    """Reads ``!Series_title = …`` lines of a GEO SOFT file."""

    name = "geo-soft"
    globs = ("*.soft",)

    def extract(self, text: str, *, path: str) -> Extraction:
        fields = {}
        for line in text.splitlines():
            if line.startswith("!Series_title"):
                fields["title"] = line.partition("=")[2].strip()
        return Extraction(fields)


class Misnamed(GeoSoft):
    name = "geo-soft-2"


class Crashing(Extractor):
    """A plugin with a bug: the crawl must record it and go on."""

    name = "crashing"
    globs = ("*.idf.txt",)

    def extract(self, text: str, *, path: str) -> Extraction:
        raise ZeroDivisionError("a plugin bug")
