"""api settings: environment variables with the API_ prefix (see README for the table)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from bulwark_common.settings import ServiceSettings, env

Rate = str  # a `limits` rate string, e.g. "30/minute"


class ApiSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="API_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Probes (and later metrics) with details; not for clients. 0: not served.
    management_host: str = "127.0.0.1"
    management_port: int = Field(8081, ge=0, le=65535)
    database_url: str | None = Field(None, validation_alias=env("API_DATABASE_URL", "DATABASE_URL"))
    auth_target: str = "127.0.0.1:50051"
    users_target: str = "127.0.0.1:50052"
    issuer: str = Field(
        "http://127.0.0.1:8080", validation_alias=env("API_ISSUER", "BULWARK_ISSUER")
    )
    audience: str = Field("bulwark-api", validation_alias=env("API_AUDIENCE", "BULWARK_AUDIENCE"))
    # None: on in dev, off in production.
    docs_enabled: bool | None = None
    cors_origins: list[str] = []
    # Lifetime of the browser-session refresh cookie: match AUTH_REFRESH_TOKEN_TTL_SECONDS.
    session_cookie_max_age_seconds: int = Field(30 * 24 * 3600, ge=60, le=30 * 24 * 3600)
    # Peers whose X-Forwarded-For we believe (the ingress); nobody by default.
    trusted_proxies: list[IPv4Network | IPv6Network] = []
    # Per-address limits count an IPv6 client by this prefix: a host usually owns a /64.
    ipv6_bucket_prefix: int = Field(64, ge=32, le=128)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Per-IP limits on the anonymous doors, per-user / per-IP limits on everything else.
    token_rate: Rate = "30/minute"  # noqa: S105 (a rate, not a secret)
    register_rate: Rate = "10/minute"
    user_rate: Rate = "600/minute"
    anonymous_rate: Rate = "300/minute"
    # Per OAuth2 client (its tokens), and per API key (each key its own budget).
    client_rate: Rate = "600/minute"
    api_key_rate: Rate = "600/minute"
    # Do not ask auth for keys more often than this when an unknown kid shows up.
    jwks_min_refresh_seconds: float = Field(10.0, ge=0)
    # Keys are also refetched on this timer, so a key auth publishes ahead of a rotation is
    # known before tokens carry it (rotate-keys waits longer than this).
    jwks_refresh_seconds: float = Field(10.0, gt=0, le=300)
    hsts_max_age_seconds: int = 63072000
    # Processes serving the public port (workers.py); the chart sets it (services.api.env).
    workers: int = Field(1, ge=1, le=64)

    @field_validator(
        "token_rate", "register_rate", "user_rate", "anonymous_rate", "client_rate", "api_key_rate"
    )
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        from limits import parse

        parse(value)  # raises ValueError naming the bad rate
        return value

    @property
    def docs(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else self.environment == "dev"
