"""Settings: one pydantic-settings object per service, built at startup (never at import)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "production"]


def env(name: str, *fallbacks: str) -> AliasChoices:
    """Read a field from its prefixed name first, then from shared unprefixed names."""
    return AliasChoices(name, *fallbacks)


class ServiceSettings(BaseSettings):
    """What every service reads. Subclasses set `env_prefix` and add their own fields."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    environment: Environment = Field("dev", validation_alias=env("BULWARK_ENV"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=env("LOG_LEVEL")
    )
    # Embedded default: SQLite files under here when no DATABASE_URL is given.
    data_dir: Path = Field(Path(".data"), validation_alias=env("BULWARK_DATA_DIR"))
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=env("REDIS_URL"))
    # Every Redis key this deployment writes starts with this, so suites can share one server.
    redis_prefix: str = Field("bulwark:", validation_alias=env("BULWARK_REDIS_PREFIX"))
    # Deadline applied to every outgoing gRPC call that does not set a shorter one.
    grpc_deadline_seconds: float = Field(
        2.0, gt=0, le=60, validation_alias=env("BULWARK_GRPC_DEADLINE_SECONDS")
    )
    migrate_on_startup: bool | None = Field(
        None, validation_alias=env("BULWARK_MIGRATE_ON_STARTUP")
    )

    @property
    def run_migrations_on_startup(self) -> bool:
        # Dev applies migrations itself; production runs `bulwark-<svc> migrate` as a job.
        if self.migrate_on_startup is not None:
            return self.migrate_on_startup
        return self.environment == "dev"


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], program: str) -> S:
    """Build settings or stop with one line that names the bad setting."""
    try:
        return cls()
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "?"
        names = _env_names(cls, loc)
        # Never echo the value: it may be a secret.
        print(f"{program}: invalid setting {names}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def _env_names(cls: type[BaseSettings], field: str) -> str:
    info = cls.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return " / ".join(str(c) for c in info.validation_alias.choices)
    prefix = str(cls.model_config.get("env_prefix", ""))
    return (prefix + field).upper()
