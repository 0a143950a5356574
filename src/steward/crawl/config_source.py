"""Checking one ``[[crawl.sources]]`` entry, collecting every problem instead of stopping.

Used by :mod:`steward.crawl.config`; kept apart so each rule (URL, accession, kind-specific
fields, secrets) reads on its own. Every value put into a problem goes through
:func:`~steward.crawl.inline_secrets.mask` first, so a secret never reaches a message even when
it sits in a field nobody expected it in.
"""

from __future__ import annotations

import codecs
import difflib
import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from steward.adapters.storage import parse_destination
from steward.crawl.accessions import FOUND_IN, AccessionRule, FoundIn
from steward.crawl.config_model import Pagination, SourceConfig, SourceKind
from steward.crawl.config_problems import Problems, secret_advice, str_list, text
from steward.crawl.globs import GlobError, compile_glob
from steward.crawl.inline_secrets import (
    env_name_ok,
    mask,
    secret_field_name,
    secret_kind,
    url_secret,
)
from steward.errors import ValidationFailed

COMMON_FIELDS = frozenset(
    {
        "name",
        "project",
        "url",
        "stage",
        "tech",
        "pattern",
        "found_in",
        "extractors",
        "include",
        "exclude",
        "fallback_encoding",
        "timeout",
        "retries",
    }
)
KIND_FIELDS: dict[SourceKind, frozenset[str]] = {
    "folder": frozenset({"file"}),
    "s3": frozenset({"file", "endpoint", "region", "access_key_env", "secret_key_env"}),
    "endpoint": frozenset({"field", "items_field", "token_env", "pagination"}),
}
ALL_FIELDS = COMMON_FIELDS.union(*KIND_FIELDS.values())
_FOUND_IN_BY_KIND: dict[SourceKind, tuple[FoundIn, ...]] = {
    "folder": ("dir", "file"),
    "s3": ("dir", "file"),
    "endpoint": ("field",),
}
_PAGINATION_FIELDS = frozenset({"style", "next_field", "cursor_field", "cursor_param"})
_DOTTED = re.compile(r"^[^.\s]+(?:\.[^.\s]+)*$")
_URL_ACCEPTED = "an absolute folder, file:///folder, s3://bucket/prefix or https://host/path"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
"""How project ids are written (``steward project create``)."""


def kind_of(url: str) -> SourceKind | None:
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "s3":
        return "s3"
    if scheme in ("http", "https"):
        return "endpoint"
    if scheme == "file" or (not scheme and url.startswith("/")):
        return "folder"
    return None


def _fields(
    entry: Mapping[str, Any], field: str, kind: SourceKind | None, problems: Problems
) -> None:
    """Unknown fields (with the nearest known name) and fields of another kind of source."""
    for key, value in entry.items():
        where = f"{field}.{key}"
        if not isinstance(key, str):
            problems.add("field names must be texts", where)
        elif key not in ALL_FIELDS:
            if secret_field_name(key):
                problems.secret(where, "a secret", value, secret_advice(kind), whole=True)
                continue
            near = difflib.get_close_matches(key, sorted(ALL_FIELDS), n=1)
            problems.add(
                "unknown field" + (f"; did you mean {near[0]!r}?" if near else ""),
                where,
                accepted=", ".join(
                    sorted(COMMON_FIELDS | KIND_FIELDS[kind] if kind else ALL_FIELDS)
                ),
            )
        elif kind is not None and key not in COMMON_FIELDS and key not in KIND_FIELDS[kind]:
            owners = [k for k, names in KIND_FIELDS.items() if key in names]
            problems.add(
                f"only for {' and '.join(owners)} sources; this URL makes it a {kind} source",
                where,
            )
        if isinstance(key, str) and key != "url":
            problems.scan(value, where, secret_advice(kind))


def _url(raw: Any, field: str, problems: Problems) -> tuple[str | None, SourceKind | None]:
    where = f"{field}.url"
    if not isinstance(raw, str) or not raw.strip():
        problems.add("a URL or folder is required", where, raw, _URL_ACCEPTED)
        return None, None
    url = raw.strip()
    found = url_secret(url) or ("" if "://" in url else secret_kind(url))
    if found:
        problems.secret(
            where, found, url, "a URL without credentials; " + secret_advice(kind_of(url))
        )
        return None, kind_of(url)
    kind = kind_of(url)
    if kind is None:
        problems.add("not a location a crawl can read", where, url, _URL_ACCEPTED)
        return None, None
    if kind == "endpoint":
        parts = urlsplit(url)
        if not parts.hostname:
            problems.add("no host after the scheme", where, url, _URL_ACCEPTED)
            return None, kind
        return url, kind
    try:
        return parse_destination(url, field=where), kind
    except ValidationFailed as exc:
        for detail in exc.details:
            problems.add(detail.message, where, url, detail.accepted or _URL_ACCEPTED)
        return None, kind


def _pattern(raw: Any, field: str, problems: Problems) -> re.Pattern[str] | None:
    where = f"{field}.pattern"
    accepted = "a regular expression such as ^E-[A-Z]{4}-\\d+$"
    if not isinstance(raw, str) or not raw:
        problems.add("an accession pattern is required", where, raw, accepted)
        return None
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        problems.add(f"not a valid regular expression: {exc}", where, raw, accepted)
        return None
    if pattern.groups > 1 and "accession" not in pattern.groupindex:
        problems.add(
            "with several groups, name the accession's: (?P<accession>…)", where, raw, accepted
        )
        return None
    if pattern.search("") is not None:
        problems.add("matches an empty name, so it would match everything", where, raw, accepted)
        return None
    return pattern


def _accession(
    entry: Mapping[str, Any], field: str, kind: SourceKind | None, problems: Problems
) -> AccessionRule | None:
    pattern = _pattern(entry.get("pattern"), field, problems)
    allowed = _FOUND_IN_BY_KIND[kind] if kind else FOUND_IN
    raw = entry.get("found_in", allowed[0])
    if raw not in allowed:
        problems.add(
            "not where this kind of source keeps accessions",
            f"{field}.found_in",
            raw,
            " or ".join(allowed),
        )
        return None
    found_in: FoundIn = raw
    glob = text(entry, "file", field, problems, "a file-name glob such as *.idf.txt")
    if found_in == "file" and glob is None and "file" not in entry:
        problems.add(
            'found_in = "file" needs the glob of the files that carry the accession',
            f"{field}.file",
            accepted="a file-name glob such as *.idf.txt",
        )
    elif found_in != "file" and glob is not None:
        problems.add('used only with found_in = "file"', f"{field}.file", glob)
    elif glob is not None:
        try:
            compile_glob(glob)
        except GlobError as exc:
            problems.add(str(exc), f"{field}.file", glob)
    path = text(entry, "field", field, problems, "a dotted path such as accession or meta.acc")
    if path is not None and not _DOTTED.match(path):
        problems.add("not a dotted path", f"{field}.field", path, "accession or meta.acc")
    if pattern is None:
        return None
    return AccessionRule(
        pattern, found_in, glob, path or ("accession" if kind == "endpoint" else None)
    )


def _globs(
    entry: Mapping[str, Any], field: str, problems: Problems
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for key in ("include", "exclude"):
        globs = str_list(entry.get(key), f"{field}.{key}", problems, "globs such as **/*.txt") or ()
        for i, glob in enumerate(globs):
            try:
                compile_glob(glob)
            except GlobError as exc:
                problems.add(str(exc), f"{field}.{key}[{i}]", glob)
        found.append(globs)
    return found[0], found[1]


def _env_names(
    entry: Mapping[str, Any], field: str, kind: SourceKind | None, problems: Problems
) -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    for key in ("access_key_env", "secret_key_env", "token_env"):
        raw = entry.get(key)
        names[key] = None
        if raw is None:
            continue
        where = f"{field}.{key}"
        if not isinstance(raw, str) or not env_name_ok(raw):
            # not a name: quite possibly the secret itself, so it is never shown
            problems.secret(
                where,
                "a secret rather than the name of an environment variable",
                raw,
                secret_advice(kind),
                whole=True,
            )
            continue
        names[key] = raw
    if bool(entry.get("access_key_env")) != bool(entry.get("secret_key_env")) and kind == "s3":
        problems.add(
            "access_key_env and secret_key_env go together: give both or neither "
            "(neither: the standard AWS_* variables)",
            f"{field}.{'secret_key_env' if entry.get('access_key_env') else 'access_key_env'}",
        )
    return names


def _pagination(raw: Any, field: str, problems: Problems) -> Pagination:
    where = f"{field}.pagination"
    if raw is None:
        return Pagination()
    if isinstance(raw, str):
        raw = {"style": raw}
    if not isinstance(raw, Mapping):
        problems.add(
            "must be a table",
            where,
            raw,
            '{ style = "link" } or { style = "cursor", cursor_field = "next" }',
        )
        return Pagination()
    for key in raw:
        if key not in _PAGINATION_FIELDS:
            problems.add(
                "unknown field", f"{where}.{key}", accepted=", ".join(sorted(_PAGINATION_FIELDS))
            )
    style = raw.get("style", "none")
    if style not in ("none", "link", "cursor"):
        problems.add("unknown pagination style", f"{where}.style", style, "none, link or cursor")
        return Pagination()
    paths = {}
    for key in ("next_field", "cursor_field", "cursor_param"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not _DOTTED.match(value)):
            problems.add("must be a field name or dotted path", f"{where}.{key}", value)
            value = None
        paths[key] = value
    if style == "cursor" and not paths["cursor_field"]:
        problems.add(
            'style = "cursor" needs cursor_field (where the next cursor is)',
            f"{where}.cursor_field",
        )
    return Pagination(
        style=style,
        next_field=paths["next_field"],
        cursor_field=paths["cursor_field"],
        cursor_param=paths["cursor_param"] or "cursor",
    )


def _number(
    entry: Mapping[str, Any],
    key: str,
    field: str,
    problems: Problems,
    low: float,
    high: float,
    default: float,
    integer: bool,
) -> float:
    raw = entry.get(key)
    if raw is None:
        return default
    ok_type = isinstance(raw, int) if integer else isinstance(raw, int | float)
    if isinstance(raw, bool) or not ok_type or not low <= raw <= high:
        kind = "a whole number" if integer else "a number"
        problems.add(f"must be {kind} from {low:g} to {high:g}", f"{field}.{key}", raw)
        return default
    return float(raw)


def _project(raw: Any, field: str, problems: Problems) -> str | None:
    """Which project the source's datasets belong to: required (whether it exists is the
    crawl's to check, against the database)."""
    accepted = "the id of a Steward project, such as atlas (`steward project list`)"
    if raw is None:
        problems.add("a project is required", f"{field}.project", accepted=accepted)
        return None
    if not isinstance(raw, str) or not _PROJECT.match(raw.strip()):
        problems.add("not a project id", f"{field}.project", raw, accepted)
        return None
    return raw.strip()


def parse_source(
    entry: Any,
    field: str,
    *,
    stages: Collection[str],
    extractor_names: Collection[str],
    problems: Problems,
) -> SourceConfig | None:
    """One entry as a :class:`SourceConfig`, or None after recording its problems."""
    if not isinstance(entry, Mapping):
        problems.add("each source must be a table of fields", field, None, "url, stage, pattern, …")
        return None
    before = len(problems.details)
    url, kind = _url(entry.get("url"), field, problems)
    _fields(entry, field, kind, problems)
    stage = entry.get("stage")
    if stage not in stages:
        problems.add(
            "unknown stage" if stage is not None else "a stage is required",
            f"{field}.stage",
            stage,
            ", ".join(stages),
        )
    project = _project(entry.get("project"), field, problems)
    rule = _accession(entry, field, kind, problems)
    extractors = (
        str_list(
            entry.get("extractors"),
            f"{field}.extractors",
            problems,
            ", ".join(sorted(extractor_names)),
        )
        or ()
    )
    for i, name in enumerate(extractors):
        if name not in extractor_names:
            problems.add(
                "unknown extractor",
                f"{field}.extractors[{i}]",
                name,
                ", ".join(sorted(extractor_names)),
            )
    if extractors and kind == "endpoint":
        problems.add(
            "an endpoint's records have no files to extract from",
            f"{field}.extractors",
            list(extractors),
        )
    tech = (
        str_list(
            entry.get("tech"), f"{field}.tech", problems, 'technology tags such as ["rna-seq"]'
        )
        or ()
    )
    include, exclude = _globs(entry, field, problems)
    fallback = text(
        entry, "fallback_encoding", field, problems, "an encoding such as latin-1 or cp1252"
    )
    if fallback is not None:
        try:
            fallback = codecs.lookup(fallback).name
        except LookupError:
            problems.add(
                "unknown encoding", f"{field}.fallback_encoding", fallback, "latin-1, cp1252, …"
            )
    env = _env_names(entry, field, kind, problems)
    parts = urlsplit(url) if url is not None else None
    if (
        kind == "endpoint"
        and env["token_env"]
        and parts is not None
        and parts.scheme == "http"
        and (parts.hostname or "") not in _LOOPBACK
    ):
        problems.add("a token would travel unencrypted: use https://", f"{field}.url", url)
    endpoint = text(entry, "endpoint", field, problems, "http(s)://host:port of the S3 service")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        problems.add("not an http(s) URL", f"{field}.endpoint", endpoint, "https://s3.example.org")
    name = entry.get("name", mask(url) if url else None)
    if "name" in entry and (not isinstance(name, str) or not name.strip()):
        problems.add("must be a non-empty text", f"{field}.name", name)
    timeout = _number(entry, "timeout", field, problems, 0.01, 3600, 30.0, integer=False)
    retries = int(_number(entry, "retries", field, problems, 1, 20, 3, integer=True))
    region = text(entry, "region", field, problems, "an S3 region such as eu-west-1")
    items_field = text(entry, "items_field", field, problems, "a dotted path such as items")
    if items_field is not None and not _DOTTED.match(items_field):
        problems.add(
            "not a dotted path", f"{field}.items_field", items_field, "items or data.results"
        )
    pagination = _pagination(entry.get("pagination"), field, problems)
    if len(problems.details) > before or url is None or kind is None or rule is None:
        return None
    return SourceConfig(
        name=str(name).strip(),
        url=url,
        kind=kind,
        stage=str(stage),
        accession=rule,
        project=project or "",
        field=field,
        tech=tech,
        extractors=extractors,
        include=include,
        exclude=exclude,
        fallback_encoding=fallback,
        endpoint=endpoint,
        region=region,
        access_key_env=env["access_key_env"],
        secret_key_env=env["secret_key_env"],
        token_env=env["token_env"],
        items_field=items_field,
        pagination=pagination,
        timeout=timeout,
        retries=retries,
    )
