"""JSON and YAML sidecars: a mapping of fields written next to the data by a pipeline or a person.

The top-level keys become fields as they are; YAML's dates and other non-JSON scalars become
ISO text so every extractor's result can be stored and compared as JSON. A sidecar that is not a
mapping (a list, a bare string) or does not parse is reported as broken, with the line.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from steward.crawl.extractors.base import Extraction, ExtractionFailed, Extractor


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def read_yaml(text: str) -> tuple[Any, str | None]:
    """The document, or what is wrong with it: where and what, from PyYAML's parts (its
    ``str()`` quotes the offending line, which may hold anything — a secret pasted in the
    wrong place). PyYAML is imported here: most commands never read YAML."""
    import yaml

    try:
        return yaml.safe_load(text), None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        return None, where + what
    except yaml.YAMLError:
        return None, "not valid YAML"


def _as_fields(document: Any) -> Extraction:
    if not isinstance(document, Mapping):
        kind = "empty" if document is None else type(document).__name__
        raise ExtractionFailed(f"the sidecar is {kind}, not a mapping of fields")
    return Extraction(_plain(document))


class JsonSidecar(Extractor):
    name = "sidecar-json"
    globs = ("*.json",)
    description = "JSON sidecar: its top-level fields"

    def extract(self, text: str, *, path: str) -> Extraction:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExtractionFailed(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        return _as_fields(document)


class YamlSidecar(Extractor):
    name = "sidecar-yaml"
    globs = ("*.yaml", "*.yml")
    description = "YAML sidecar: its top-level fields"

    def extract(self, text: str, *, path: str) -> Extraction:
        document, problem = read_yaml(text)
        if problem is not None:
            raise ExtractionFailed(problem)
        return _as_fields(document)
