"""Settings: one object, built explicitly and passed down; nothing reads the environment later.

Sources, strongest first: keyword arguments, ``STEWARD_*`` environment variables, then
``steward.toml`` (in the working directory, or the file named by ``STEWARD_CONFIG``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


@dataclass(frozen=True)
class S3Config:
    """How to reach an S3-compatible store; ``endpoint=None`` means Amazon S3 itself.

    The secret never appears in ``repr``, so a config can be logged or shown in an error.
    """

    endpoint: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> S3Config:
        """The standard ``AWS_*`` variables, so existing shell setups work unchanged."""
        env = os.environ if environ is None else environ
        return cls(
            endpoint=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        )

    @property
    def resolved_endpoint(self) -> str:
        """The base URL requests go to (no trailing slash)."""
        if self.endpoint:
            return self.endpoint.rstrip("/")
        return f"https://s3.{self.region}.amazonaws.com"

    @property
    def display_endpoint(self) -> str:
        """The endpoint for messages: scheme, host and port only, never user info."""
        parts = urlsplit(self.resolved_endpoint)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return f"{parts.scheme}://{host}"


def _root(text: str) -> str:
    """One place of ``api_source_roots``/``api_push_roots``, checked and written plainly."""
    accepted = "an absolute folder (/data/lims), file:///data/lims or s3://bucket/prefix"
    raw = text.strip()
    if raw.lower().startswith("s3://"):
        bucket, _, prefix = raw[5:].partition("/")
        parts = [p for p in prefix.split("/") if p]
        if not bucket or any(p in (".", "..") for p in parts):
            raise ValueError(f"{raw!r} is not a usable place; use {accepted}")
        return "/".join([f"s3://{bucket}", *parts])
    if raw.startswith("file://"):
        raw = raw.removeprefix("file://")
    if not raw.startswith("/") or ".." in raw.split("/"):
        raise ValueError(f"{text!r} is not a usable place; use {accepted}")
    return os.path.normpath(raw)


def _config_file() -> Path:
    return Path(os.environ.get("STEWARD_CONFIG", "steward.toml"))


class Settings(BaseSettings):
    """Everything Steward needs to know about where it runs."""

    model_config = SettingsConfigDict(env_prefix="STEWARD_", extra="forbid")

    home: Path = Field(
        default=Path(".steward"),
        description="Folder for the embedded database, reports and local storage.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL. Default: a SQLite file in STEWARD_HOME. "
            "For teams: postgresql+psycopg://user:password@host/db."
        ),
    )
    user: str | None = Field(
        default=None, description="Who the CLI acts as when --as is not given."
    )
    timezone: str = Field(
        default="UTC", description="IANA zone used to display times (storage is always UTC)."
    )
    connect_timeout: int = Field(
        default=5, description="Seconds to wait for the database before giving up."
    )
    lock_timeout: float = Field(
        default=30,
        gt=0,
        le=3600,
        description=(
            "Seconds a command waits for another process's database lock (SQLite's single "
            "writer, a PostgreSQL row or table lock) before giving up with database-busy."
        ),
    )
    packages_dir: Path | None = Field(
        default=None,
        description="Where package bags are built. Default: STEWARD_HOME/packages.",
    )
    package_keep_days: int = Field(
        default=30,
        ge=1,
        description="Days a built package is kept before `steward package expire-due` removes it.",
    )
    import_clock_skew: str = Field(
        default="5m",
        description=(
            "How far in the future an imported row may be dated (another machine's clock may "
            "run ahead), e.g. 30s, 5m, 1h; rows dated later are refused."
        ),
    )
    organisation: str = Field(
        default="Steward",
        description="Your organisation's name, written as Source-Organization in every bag.",
    )
    workers: int = Field(
        default=0,
        ge=0,
        description=(
            "Threads for hashing, copying and pushing. 0 = automatic: for builds one per CPU "
            "core (up to 8; more for S3 sources, which wait on the network); pushes send 4 "
            "objects at once."
        ),
    )

    manifest_ids: Literal["warn", "refuse"] = Field(
        default="warn",
        description=(
            "Manifest ids (library, sample, subject, project, run) that differ only in letter "
            "case or by invisible characters: warn, or refuse the manifest."
        ),
    )

    public_url: str | None = Field(
        default=None,
        description=(
            "The address people and other systems reach this Steward's server at, e.g. "
            "https://steward.example.org: the issuer of its visas and the host of its drs:// "
            "URIs. Default: the address `steward serve` listens on."
        ),
    )

    server: str | None = Field(
        default=None,
        description=(
            "A Steward server (https://steward.example.org) the CLI works against instead of "
            "the database; the same as --server."
        ),
    )
    token: SecretStr | None = Field(
        default=None,
        description=(
            "The API token (stw_…) the CLI sends to `server`; never shown. Default: the one "
            "`steward login` stored for that server."
        ),
    )

    oidc_issuer: str | None = Field(
        default=None,
        description=(
            "OpenID Connect provider people sign in with (LS Login, ELIXIR AAI, Keycloak…), "
            "its issuer URL, e.g. https://login.aai.lifescience-ri.eu/oidc/. Unset: no OIDC."
        ),
    )
    oidc_client_id: str | None = Field(
        default=None, description="Steward's client id at the OIDC provider."
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="Steward's client secret at the OIDC provider; never shown."
    )
    oidc_user_claim: str = Field(
        default="preferred_username",
        description=(
            "The ID token claim that names the Steward user (the user must exist: `steward "
            "user add`), e.g. preferred_username, email or sub."
        ),
    )

    serve_threads: int = Field(
        default=8,
        ge=1,
        le=256,
        description=(
            "Requests each `steward serve` process works on at once; its database connection "
            "pool holds as many connections, so none is opened or closed per request."
        ),
    )

    session_lifetime: str = Field(
        default="12h",
        description=(
            "How long a browser session (the API's sign-in cookie) lasts from sign-in, e.g. "
            "8h, 12h, 7d (1 minute to 30 days); then the browser signs in again."
        ),
    )

    api_source_roots: Annotated[list[str], NoDecode] = Field(
        default=[],
        description=(
            "Folders (absolute paths) and s3://bucket/prefix places that a manifest uploaded "
            "to the API (POST /api/v1/packages) may name files in, comma-separated. Empty: "
            "every file of an uploaded manifest is refused."
        ),
    )
    api_push_roots: Annotated[list[str], NoDecode] = Field(
        default=[],
        description=(
            "Folders (absolute paths) and s3://bucket/prefix places that pushes asked for "
            "over the API (POST /api/v1/shares) may go to, comma-separated. Empty: every "
            "push over the API is refused."
        ),
    )
    api_upload_mib: int = Field(
        default=64,
        ge=1,
        le=4096,
        description=(
            "Largest upload the API accepts, in MiB (2^20 bytes): a package's manifests and "
            "its form fields together (POST /api/v1/packages). Every other body is at most "
            "1 MiB."
        ),
    )

    queue_url: str | None = Field(
        default=None,
        description=(
            "Where workers take their jobs from: unset = a SQLite queue file in STEWARD_HOME "
            "(one machine); redis://[:password@]host:port/db (or rediss://) = a Redis server "
            "shared by workers on several machines."
        ),
    )

    s3_endpoint: str | None = Field(
        default=None,
        description=(
            "S3 endpoint URL, e.g. https://s3.example.org. Default: AWS_ENDPOINT_URL_S3 or "
            "AWS_ENDPOINT_URL, else Amazon S3 in s3_region."
        ),
    )
    s3_region: str | None = Field(
        default=None,
        description="S3 region. Default: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1.",
    )
    s3_access_key_id: str | None = Field(
        default=None, description="S3 access key id. Default: AWS_ACCESS_KEY_ID."
    )
    s3_secret_access_key: SecretStr | None = Field(
        default=None,
        description="S3 secret access key; never shown. Default: AWS_SECRET_ACCESS_KEY.",
    )

    crawl: dict[str, Any] | None = Field(
        default=None,
        description=(
            "The dataset crawl's sources: the [crawl] table of steward.toml (stages, "
            "accession_mappings, [[crawl.sources]]), kept as written and checked by the crawl "
            "when it runs (steward.crawl.config)."
        ),
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("use an http:// or https:// URL, e.g. https://steward.example.org")
        return value.rstrip("/") if value else None

    @field_validator("api_source_roots", "api_push_roots", mode="before")
    @classmethod
    def _roots(cls, value: Any) -> Any:
        """``/data/a,s3://bucket/prefix`` (the environment's form) or a list (TOML's); each
        an absolute folder, a file:/// URI or an s3://bucket[/prefix], without '..'."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError(
                        "not a JSON list; or write the places comma-separated"
                    ) from None
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list):
            return value
        roots = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"{item!r} is not a folder or an s3:// place")
            roots.append(_root(item))
        return roots

    @field_validator("queue_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://host:port/db, rediss://… or unix:///path/redis.sock")
        return value or None

    @field_validator("s3_endpoint")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("use an http:// or https:// URL, e.g. https://s3.example.org")
        return value

    @model_validator(mode="after")
    def _aws_fallbacks(self) -> Settings:
        """Unset S3 settings take the standard AWS_* variables, read once, here."""
        aws = S3Config.from_env()
        if self.s3_endpoint is None:
            self.s3_endpoint = aws.endpoint
        if self.s3_region is None:
            self.s3_region = aws.region
        if self.s3_access_key_id is None:
            self.s3_access_key_id = aws.access_key_id
        if self.s3_secret_access_key is None and aws.secret_access_key:
            self.s3_secret_access_key = SecretStr(aws.secret_access_key)
        return self

    def s3_config(self) -> S3Config:
        """How to reach S3, for the storage adapter (the secret stays out of reprs)."""
        secret = self.s3_secret_access_key
        return S3Config(
            endpoint=self.s3_endpoint,
            region=self.s3_region or "us-east-1",
            access_key_id=self.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )

    @property
    def resolved_packages_dir(self) -> Path:
        return (self.packages_dir or self.home / "packages").resolve()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from steward.errors import ValidationFailed
        from steward.timeutil import zone

        try:
            zone(value)
        except ValidationFailed as exc:
            raise ValueError(f"{exc.message}; use an IANA name such as Europe/Helsinki") from None
        return value

    @field_validator("import_clock_skew")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        from steward.timeutil import parse_duration

        parse_duration(value)  # its ValueError names the value and the accepted forms
        return value

    @field_validator("session_lifetime")
    @classmethod
    def _a_session_lifetime(cls, value: str) -> str:
        from steward.timeutil import parse_duration

        if not timedelta(minutes=1) <= parse_duration(value) <= timedelta(days=30):
            raise ValueError(f"{value!r} is out of range (1m to 30d)")
        return value

    @property
    def session_duration(self) -> timedelta:
        """``session_lifetime`` as a duration."""
        from steward.timeutil import parse_duration

        return parse_duration(self.session_lifetime)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml, file_secret_settings)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'steward.db').resolve()}"

    def redacted_database_url(self) -> str:
        """The URL with every credential hidden (user info, ``?password=``…), for messages.

        Works on any text, so even a URL the driver cannot parse is shown safely.
        """
        from steward.redact import redact

        return redact(self.resolved_database_url)

    @model_validator(mode="after")
    def _remember_secrets(self) -> Settings:
        """Every secret this process holds is masked wherever it appears from now on."""
        from steward.redact import remember, secrets_in

        s3 = self.s3_secret_access_key
        remember(*secrets_in(self.database_url or ""), s3.get_secret_value() if s3 else None)
        return self


def load_settings(**overrides: Any) -> Settings:
    """Build settings; wrong values become a ConfigurationError naming the setting."""
    from pydantic import ValidationError

    from steward.errors import ConfigurationError, Detail

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        details = [
            Detail(
                message=err["msg"],
                field="STEWARD_" + "_".join(str(p) for p in err["loc"]).upper(),
            )
            for err in exc.errors()
        ]
        raise ConfigurationError("the settings are not valid", details) from None
