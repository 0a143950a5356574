"""Collecting config problems: every one kept, every value masked before it is shown.

Shared by the checks of the crawl table (:mod:`steward.crawl.config`) and of each source
(:mod:`steward.crawl.config_source`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from steward.crawl.config_model import SourceKind
from steward.crawl.inline_secrets import mask, secret_kind
from steward.errors import Detail
from steward.redact import MASK


def shown(value: Any) -> str:
    """A value as a problem may show it: as text, with anything secret-looking masked."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return mask(text)


class Problems:
    """Collects every problem; a secret is reported once per field and never shown."""

    def __init__(self) -> None:
        self.details: list[Detail] = []
        self._secret_fields: set[str] = set()

    def add(self, message: str, field: str, value: Any = None, accepted: str | None = None) -> None:
        text = None if value is None else shown(value)
        self.details.append(Detail(message, field=field, value=text, accepted=accepted))

    def secret(
        self, field: str, kind: str, value: Any, accepted: str, *, whole: bool = False
    ) -> None:
        """A secret at ``field``; ``whole``: the entire value is the secret (never shown)."""
        if field in self._secret_fields:
            return
        self._secret_fields.add(field)
        shown_value = MASK if whole else value
        self.add(f"looks like {kind} written into the config", field, shown_value, accepted)

    def scan(self, value: Any, field: str, accepted: str) -> None:
        """Report secret-looking text anywhere inside ``value``."""
        if isinstance(value, str):
            kind = secret_kind(value)
            if kind:
                self.secret(field, kind, value, accepted)
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                self.scan(inner, f"{field}.{key}", accepted)
        elif isinstance(value, list | tuple):
            for i, inner in enumerate(value):
                self.scan(inner, f"{field}[{i}]", accepted)


def secret_advice(kind: SourceKind | None) -> str:
    if kind == "s3":
        return (
            'the name of an environment variable: access_key_env = "MY_KEY_ID" and secret_key_env'
        )
    if kind == "endpoint":
        return 'the name of an environment variable: token_env = "MY_TOKEN"'
    return "the name of an environment variable (access_key_env, secret_key_env, token_env)"


def str_list(raw: Any, field: str, problems: Problems, accepted: str) -> tuple[str, ...] | None:
    """A list of texts (one text is taken as a list of one); None after a problem."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
        problems.add("must be a list of non-empty texts", field, raw, accepted)
        return None
    return tuple(v.strip() for v in raw)


def text(
    entry: Mapping[str, Any], key: str, field: str, problems: Problems, accepted: str
) -> str | None:
    raw = entry.get(key)
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        problems.add("must be a non-empty text", f"{field}.{key}", raw, accepted)
        return None
    return raw.strip()
