"""The crawl sources config: where datasets live, what each place means, how to read it.

One entry per location, in ``steward.toml`` or a YAML/JSON file given to ``steward crawl
--sources FILE``::

    [crawl]
    stages = ["external", "incoming", "loading", "analysing", "processed", "published"]
    accession_mappings = [{ left = "E-GEOD-{n}", right = "GSE{n}" }]

    [[crawl.sources]]
    name = "atlas-loading"              # unique; default: the URL
    project = "atlas"                   # the project its datasets belong to
    url = "/nfs/atlas/loading"          # a folder (or file:///…), s3://bucket/prefix, https://…
    stage = "loading"                   # one of crawl.stages
    tech = ["rna-seq"]
    pattern = '^E-[A-Z]{4}-\\d+$'       # what an accession looks like
    found_in = "dir"                    # dir | file (with file = "*.idf.txt") | field (endpoints)
    extractors = ["mage-tab-idf", "mage-tab-sdrf"]
    include = ["**"]                    # globs below the root (see steward.crawl.globs)
    exclude = ["**/tmp/**"]
    fallback_encoding = "latin-1"       # when a metadata file is not UTF-8
    # s3:// sources: endpoint, region, access_key_env, secret_key_env (names of variables)
    # https:// sources: field = "accession", items_field = "items", token_env = "ATLAS_TOKEN",
    #   pagination = { style = "link", next_field = "links.next" }   (no next_field: Link header)
    #   pagination = { style = "cursor", cursor_field = "next", cursor_param = "cursor" }
    # any source: timeout = 30 (seconds per request), retries = 3 (attempts per request)

Validation reports every problem at once (:class:`~steward.errors.ValidationFailed`, one
:class:`~steward.errors.Detail` each, with paths such as ``crawl.sources[2].pattern``): unknown
fields (with the nearest known name), stages that are not the dataset workflow's (the order is
the config's to choose, the names are :data:`steward.domain.datasets.STAGES`), a missing or
malformed ``project``, unknown stages and extractors, bad expressions and globs,
fields that do not fit the kind of source, and secrets written into the config (a key, token or
password, credentials in a URL, AWS key shapes) — shown masked, with the ``*_env`` field to use
instead. With ``environ``, unset variables are reported as
:class:`~steward.crawl.credentials.MissingEnv` details, which are problems of the environment
rather than the file. Whether each location answers is :func:`steward.crawl.reach.reachable`.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from steward.crawl.accessions import DEFAULT_MAPPINGS, AccessionMapping, MappingError
from steward.crawl.config_model import (
    DEFAULT_STAGES,
    CrawlConfig,
    Pagination,
    SourceConfig,
    SourceKind,
)
from steward.crawl.config_problems import Problems
from steward.crawl.config_source import parse_source
from steward.crawl.credentials import MissingEnv, missing_env
from steward.crawl.extractors.registry import extractor_names as registered_extractors
from steward.crawl.extractors.sidecars import read_yaml
from steward.errors import Detail, NotFound, ValidationFailed

__all__ = [
    "DEFAULT_STAGES",
    "CrawlConfig",
    "MissingEnv",
    "Pagination",
    "SourceConfig",
    "SourceKind",
    "load_crawl_config",
    "parse_crawl_config",
]

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_CRAWL_FIELDS = ("sources", "stages", "accession_mappings")
_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def _stages(raw: Any, field: str, problems: Problems) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_STAGES
    accepted = "a list of stage names, lowest first, such as " + ", ".join(DEFAULT_STAGES)
    if not isinstance(raw, list) or not raw:
        problems.add("must be a non-empty list", field, raw, accepted)
        return DEFAULT_STAGES
    stages: list[str] = []
    for i, stage in enumerate(raw):
        if not isinstance(stage, str) or not _STAGE_NAME.match(stage):
            problems.add("not a stage name", f"{field}[{i}]", stage, ", ".join(DEFAULT_STAGES))
        elif stage not in DEFAULT_STAGES:
            problems.add(
                "not one of the dataset stages (the order is yours, the names are Steward's)",
                f"{field}[{i}]",
                stage,
                ", ".join(DEFAULT_STAGES),
            )
        elif stage in stages:
            problems.add("appears twice", f"{field}[{i}]", stage)
        else:
            stages.append(stage)
    return tuple(stages) or DEFAULT_STAGES


def _mappings(raw: Any, field: str, problems: Problems) -> tuple[AccessionMapping, ...]:
    if raw is None:
        return DEFAULT_MAPPINGS
    accepted = '[{ left = "E-GEOD-{n}", right = "GSE{n}" }]'
    if not isinstance(raw, list):
        problems.add("must be a list of { left, right } tables", field, raw, accepted)
        return DEFAULT_MAPPINGS
    found: list[AccessionMapping] = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"left", "right"}:
            problems.add("must be a table with left and right", where, item, accepted)
            continue
        if not all(isinstance(item[k], str) and item[k] for k in ("left", "right")):
            problems.add("left and right must be non-empty texts", where, item, accepted)
            continue
        try:
            found.append(AccessionMapping(item["left"], item["right"]))
        except MappingError as exc:
            problems.add(str(exc), where, accepted=accepted)
    return tuple(found)


def _crawl_table(document: Any) -> tuple[Any, str]:
    """The crawl table and its path: ``crawl`` in a steward.toml, or a file that is the table
    itself, or a bare list of sources."""
    if isinstance(document, list):
        return {"sources": document}, ""
    if isinstance(document, Mapping) and "crawl" in document:
        return document["crawl"], "crawl"
    return document, ""


def parse_crawl_config(
    document: Any,
    *,
    origin: str = "steward.toml",
    environ: Mapping[str, str] | None = None,
    extractor_names: Iterable[str] | None = None,
) -> CrawlConfig:
    """The crawl config in ``document`` (a parsed TOML/YAML/JSON document), checked whole.

    ``document`` is a steward.toml mapping (its ``crawl`` table is read, other settings are not
    this function's business), a mapping that is the crawl table itself (``sources``,
    ``stages``, ``accession_mappings``), or a bare list of sources. Raises
    :class:`~steward.errors.ValidationFailed` listing every problem; with ``environ``, unset
    credential variables are included as :class:`MissingEnv` details.
    """
    names = tuple(extractor_names) if extractor_names is not None else registered_extractors()
    problems = Problems()
    table, prefix = _crawl_table(document)

    def at(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    if not isinstance(table, Mapping):
        problems.add("must be a table with sources", prefix or "crawl", None, "[[crawl.sources]]")
        raise _failed(origin, problems)
    for key in table:
        if key not in _CRAWL_FIELDS:
            problems.add("unknown field", at(str(key)), accepted=", ".join(_CRAWL_FIELDS))
            problems.scan(table[key], at(str(key)), "the name of an environment variable")
    stages = _stages(table.get("stages"), at("stages"), problems)
    mappings = _mappings(table.get("accession_mappings"), at("accession_mappings"), problems)
    raw_sources = table.get("sources")
    sources: list[SourceConfig] = []
    if not isinstance(raw_sources, list):
        problems.add(
            "a list of sources is required", at("sources"), None, "[[crawl.sources]] tables"
        )
        raw_sources = []
    for i, entry in enumerate(raw_sources):
        source = parse_source(
            entry, f"{at('sources')}[{i}]", stages=stages, extractor_names=names, problems=problems
        )
        if source is not None:
            sources.append(source)
    seen: dict[str, str] = {}
    for source in sources:
        if source.name in seen:
            problems.add(
                f"the same name as {seen[source.name]}: give each source its own name",
                f"{source.field}.name",
                source.name,
            )
        seen.setdefault(source.name, source.field)
    if environ is not None:
        for source in sources:
            problems.details.extend(missing_env(source, environ))
    if problems.details:
        raise _failed(origin, problems)
    return CrawlConfig(tuple(sources), stages, mappings, origin)


def _failed(origin: str, problems: Problems) -> ValidationFailed:
    count = len(problems.details)
    return ValidationFailed(
        f"{origin}: the crawl sources have {count} problem{'s' if count != 1 else ''}",
        list(problems.details),
    )


def _read_document(path: Path) -> Any:
    """The file parsed by its suffix; syntax errors name the line, never quote it (the line
    may hold a secret)."""
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValidationFailed(
            f"{name}: not a sources file",
            [Detail("unknown file type", field=name, value=suffix, accepted=", ".join(_SUFFIXES))],
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"the sources file {name} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            f"{name}: not UTF-8 text", [Detail(f"byte {exc.start} is not UTF-8", field=name)]
        ) from None
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        document, message = read_yaml(text)
        if message is None:
            return document
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
    except json.JSONDecodeError as exc:
        message = f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
    raise ValidationFailed(f"{name}: cannot be read", [Detail(message, field=name)])


def load_crawl_config(
    path: Path | str,
    *,
    environ: Mapping[str, str] | None = None,
    extractor_names: Iterable[str] | None = None,
) -> CrawlConfig:
    """A sources file (``.toml``, ``.yaml``/``.yml`` or ``.json``) parsed and checked whole."""
    path = Path(path)
    return parse_crawl_config(
        _read_document(path), origin=str(path), environ=environ, extractor_names=extractor_names
    )
