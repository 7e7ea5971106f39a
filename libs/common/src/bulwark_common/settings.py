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


class VaultConfig(BaseSettings):
    """Where this deployment's secrets live and how a service logs in to Vault (names and
    defaults: docs/identity-and-secrets.md). `vault_addr` unset means no Vault (dev only)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    vault_addr: str | None = Field(None, validation_alias=env("VAULT_ADDR"))
    vault_cacert: Path | None = Field(None, validation_alias=env("VAULT_CACERT"))
    vault_auth: Literal["approle", "kubernetes"] = Field(
        "approle", validation_alias=env("BULWARK_VAULT_AUTH")
    )
    vault_role_id: str | None = Field(None, validation_alias=env("BULWARK_VAULT_ROLE_ID"))
    vault_secret_id_file: Path | None = Field(
        None, validation_alias=env("BULWARK_VAULT_SECRET_ID_FILE")
    )
    # None: `<prefix>-<service>`.
    vault_k8s_role: str | None = Field(None, validation_alias=env("BULWARK_VAULT_K8S_ROLE"))
    vault_k8s_mount: str = Field("kubernetes", validation_alias=env("BULWARK_VAULT_K8S_MOUNT"))
    vault_k8s_token_file: Path = Field(
        Path("/var/run/secrets/vault/token"), validation_alias=env("BULWARK_VAULT_K8S_TOKEN_FILE")
    )
    vault_prefix: str = Field("bulwark", validation_alias=env("BULWARK_VAULT_PREFIX"))
    vault_kv_mount: str = Field("secret", validation_alias=env("BULWARK_VAULT_KV_MOUNT"))
    vault_pki_mount: str = Field("pki", validation_alias=env("BULWARK_VAULT_PKI_MOUNT"))
    vault_db_mount: str = Field("database", validation_alias=env("BULWARK_VAULT_DB_MOUNT"))
    namespace: str = Field("default", validation_alias=env("BULWARK_NAMESPACE"))
    tls_cert_ttl_seconds: int = Field(
        86400, ge=2, validation_alias=env("BULWARK_TLS_CERT_TTL_SECONDS")
    )


class ServiceSettings(VaultConfig):
    """What every service reads. Subclasses set `env_prefix` and add their own fields."""

    # Production unless said otherwise: forgetting the setting must not relax anything.
    environment: Environment = Field("production", validation_alias=env("BULWARK_ENV"))
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
    # gRPC servers: grpc.channelz.v1 (per-server call counts, sockets) on the plaintext
    # health-only port as well. Debug data, no secrets; off unless asked for.
    grpc_channelz: bool = Field(False, validation_alias=env("BULWARK_GRPC_CHANNELZ"))

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
