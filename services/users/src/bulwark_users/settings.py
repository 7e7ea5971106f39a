"""users settings: environment variables with the USERS_ prefix (USERS_PORT, ...)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bulwark_common.settings import ServiceSettings, env

# OWASP Password Storage Cheat Sheet: argon2id with at least m=19 MiB, t=2, p=1. We refuse
# anything weaker per parameter rather than accepting the cheat sheet's memory/time
# trade-offs, so one rule is easy to audit.
MIN_TIME_COST = 2
MIN_MEMORY_COST_KIB = 19 * 1024
MIN_PARALLELISM = 1


def available_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The CPUs this process may use: its affinity mask, further limited by a cgroup v2 CPU
    quota (a Kubernetes CPU limit), which the affinity mask does not show."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit readable: the mask is all we know
    return cpus


class UsersSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="USERS_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(50052, ge=1, le=65535)
    # Plaintext grpc.health.v1 only, for probes that present no certificate (None: off).
    health_port: int | None = Field(
        51052, ge=0, le=65535, validation_alias=env("USERS_HEALTH_PORT", "BULWARK_HEALTH_PORT")
    )
    # The access tokens api forwards are checked against these, like api does.
    issuer: str = Field(
        "http://127.0.0.1:8080", validation_alias=env("USERS_ISSUER", "BULWARK_ISSUER")
    )
    audience: str = Field("bulwark-api", validation_alias=env("USERS_AUDIENCE", "BULWARK_AUDIENCE"))
    # Prometheus /metrics over plain HTTP, on the same host (0: off). Never the gRPC port.
    metrics_port: int = Field(9052, ge=0, le=65535)
    database_url: str | None = Field(
        None, validation_alias=env("USERS_DATABASE_URL", "DATABASE_URL")
    )
    argon2_time_cost: int = Field(MIN_TIME_COST, ge=MIN_TIME_COST, le=64)
    # Upper bound keeps a typo from turning every login into an out-of-memory kill.
    argon2_memory_cost_kib: int = Field(MIN_MEMORY_COST_KIB, ge=MIN_MEMORY_COST_KIB, le=4 << 20)
    argon2_parallelism: int = Field(MIN_PARALLELISM, ge=MIN_PARALLELISM, le=64)
    # argon2 computations at once (others queue): bounds memory to this x memory_cost.
    argon2_max_concurrent: int = Field(default_factory=available_cpus, ge=1, le=256)
    # Each worker may hold one argon2 computation (memory_cost) at a time.
    max_workers: int = Field(16, ge=1, le=256)
