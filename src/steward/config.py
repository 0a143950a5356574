"""Settings: one object, built explicitly and passed down; nothing reads the environment later.

Sources, strongest first: keyword arguments, ``STEWARD_*`` environment variables, then
``steward.toml`` (in the working directory, or the file named by ``STEWARD_CONFIG``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


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
        """The URL with any password hidden, for messages and logs."""
        from sqlalchemy.engine import make_url

        return make_url(self.resolved_database_url).render_as_string(hide_password=True)


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
