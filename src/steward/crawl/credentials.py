"""Secrets a source needs, fetched from the environment only when the source is used.

A sources config names variables (``access_key_env = "ATLAS_S3_KEY"``); the values are read here,
at the moment of listing, and registered with :func:`steward.redact.remember` so no later message
or log line can show them. A variable that is not set is a :class:`MissingEnv` problem: the config
is right but the environment is not, so ``steward crawl sources`` can say "set ATLAS_S3_KEY"
instead of "your config is invalid", and a crawl can fail that one source while the others run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from steward.adapters.s3config import S3Config
from steward.errors import ConfigurationError, Detail
from steward.redact import remember

if TYPE_CHECKING:
    from steward.crawl.config import SourceConfig

ENV_FIELDS = ("access_key_env", "secret_key_env", "token_env")


@dataclass(frozen=True)
class MissingEnv(Detail):
    """A variable the config names that is not set: a problem of the environment, not the config.

    Renders exactly as any :class:`~steward.errors.Detail`; tell it apart with ``isinstance``.
    """


def env_refs(source: SourceConfig) -> dict[str, str]:
    """Field → variable name, for the credential fields the source sets."""
    refs = {name: getattr(source, name) for name in ENV_FIELDS}
    return {k: v for k, v in refs.items() if v}


def missing_env(source: SourceConfig, environ: Mapping[str, str] | None = None) -> list[MissingEnv]:
    """One :class:`MissingEnv` per named variable that is unset or empty."""
    env = os.environ if environ is None else environ
    return [
        MissingEnv(
            f"the environment variable {name} is not set",
            field=f"{source.field}.{field}",
            value=name,
            accepted=f"set {name} in the environment the crawl runs in",
        )
        for field, name in env_refs(source).items()
        if not env.get(name)
    ]


def _require(source: SourceConfig, env: Mapping[str, str]) -> None:
    missing = missing_env(source, env)
    if missing:
        names = ", ".join(str(d.value) for d in missing)
        raise ConfigurationError(
            f"source {source.name!r} needs environment variables that are not set: {names}",
            list(missing),
        )


def s3_config(source: SourceConfig, environ: Mapping[str, str] | None = None) -> S3Config:
    """How to reach the source's bucket: its own ``endpoint``/``region`` and named keys, else
    the standard ``AWS_*`` variables (as everywhere else in Steward)."""
    env = os.environ if environ is None else environ
    _require(source, env)
    base = S3Config.from_env(dict(env))
    access = env[source.access_key_env] if source.access_key_env else base.access_key_id
    secret = env[source.secret_key_env] if source.secret_key_env else base.secret_access_key
    remember(secret)
    return S3Config(
        endpoint=source.endpoint or base.endpoint,
        region=source.region or base.region,
        access_key_id=access,
        secret_access_key=secret,
    )


def bearer_token(source: SourceConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The endpoint's token (sent as ``Authorization: Bearer …``), or None without one."""
    env = os.environ if environ is None else environ
    _require(source, env)
    if not source.token_env:
        return None
    token = env[source.token_env]
    remember(token)
    return token
