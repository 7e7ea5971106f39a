"""auth settings: environment variables with the AUTH_ prefix, built once at startup."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bulwark_common.settings import ServiceSettings, env

DAY = 24 * 3600


class AuthSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(50051, ge=1, le=65535)
    # Plaintext grpc.health.v1 only, for probes that present no certificate (None: off).
    health_port: int | None = Field(
        51051, ge=0, le=65535, validation_alias=env("AUTH_HEALTH_PORT", "BULWARK_HEALTH_PORT")
    )
    # Prometheus /metrics over plain HTTP, on the same host (0: off). Never the gRPC port.
    metrics_port: int = Field(9051, ge=0, le=65535)
    database_url: str | None = Field(
        None, validation_alias=env("AUTH_DATABASE_URL", "DATABASE_URL")
    )
    users_target: str = "127.0.0.1:50052"
    issuer: str = Field(
        "http://127.0.0.1:8080", validation_alias=env("AUTH_ISSUER", "BULWARK_ISSUER")
    )
    audience: str = Field("bulwark-api", validation_alias=env("AUTH_AUDIENCE", "BULWARK_AUDIENCE"))
    # Short-lived: revocation of access tokens relies on api's Redis deny-list meanwhile.
    # Down to 5 s so tests can watch a token expire (the browser-session refresh test).
    access_token_ttl_seconds: int = Field(900, ge=5, le=3600)
    # At most 30 days: the per-user revocation marker in Redis lives 31 (revocation.py).
    refresh_token_ttl_seconds: int = Field(30 * DAY, ge=60, le=30 * DAY)
    # None: <data_dir>/auth-keys. Only without Vault (dev); with Vault keys live in KV.
    signing_key_dir: Path | None = None
    # How often running servers look for rotated keys in Vault.
    signing_keys_poll_seconds: float = Field(10.0, gt=0, le=3600)
    # Login throttling per account: exponential, capped, never a permanent lockout.
    backoff_base_seconds: float = Field(1.0, gt=0, le=60)
    backoff_max_seconds: float = Field(300.0, gt=0, le=3600)
    backoff_free_failures: int = Field(3, ge=1, le=100)
    failure_window_seconds: int = Field(900, ge=1, le=DAY)
    # Failures from all sources in the window after which every source gets one free try.
    backoff_account_free_failures: int = Field(20, ge=1, le=10_000)
    # Backoff is kept per source: IPv6 clients by this prefix (a host owns a whole /64).
    ipv6_bucket_prefix: int = Field(64, ge=32, le=128)
    # client_credentials tokens one OAuth2 client may get per minute (clientgrant.py).
    client_tokens_per_minute: int = Field(60, ge=1, le=100_000)
    max_workers: int = Field(16, ge=1, le=256)

    @property
    def key_dir(self) -> Path:
        return (
            self.signing_key_dir
            if self.signing_key_dir is not None
            else (self.data_dir / "auth-keys")
        )
