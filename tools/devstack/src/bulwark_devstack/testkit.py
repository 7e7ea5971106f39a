"""Small helpers the e2e tests and the benchmarks share."""

from __future__ import annotations

import secrets
import uuid


def random_ip() -> str:
    """A client address for X-Forwarded-For, so per-IP limits stay per test."""
    b = secrets.token_bytes(3)
    return f"10.{b[0]}.{b[1]}.{max(1, b[2])}"


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def strong_password() -> str:
    return "pw-" + secrets.token_urlsafe(16)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
