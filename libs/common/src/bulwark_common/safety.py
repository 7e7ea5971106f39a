"""Fail closed: production refuses to start with a setting that would make it unsafe.

`BULWARK_ENV` defaults to production, so an operator who forgets it gets the strict checks,
not dev conveniences (generated keys, SQLite, /docs, reflection, migrations at start-up,
plaintext gRPC). The refusal is one line on stderr that names every problem, never a value.
"""

from __future__ import annotations

import logging
import sys

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bulwark_common.settings import ServiceSettings

log = logging.getLogger("bulwark.safety")


def problems(settings: ServiceSettings, *, service: str, database_url: str | None) -> list[str]:
    """What production would refuse, in the words of the setting to fix."""
    found: list[str] = []
    if not settings.vault_addr:
        found.append("VAULT_ADDR is not set (every secret comes from Vault in production)")
    db_setting = f"{service.upper()}_DATABASE_URL"
    if not database_url:
        found.append(f"{db_setting} is not set (PostgreSQL is required)")
    else:
        try:
            backend = make_url(database_url).get_backend_name()
        except ArgumentError:
            backend = "unparseable"
        if backend != "postgresql":
            found.append(f"{db_setting} must be a PostgreSQL URL, not {backend}")
    if settings.migrate_on_startup:
        found.append("BULWARK_MIGRATE_ON_STARTUP=true (run `bulwark-<svc> migrate` as a job)")
    return found


def refuse_unsafe(
    settings: ServiceSettings, *, program: str, service: str, database_url: str | None
) -> None:
    """Exit 2 in production when anything is unsafe; in dev, warn about running without
    Vault (plaintext gRPC, local key files)."""
    if settings.environment != "production":
        if not settings.vault_addr:
            log.warning(
                "dev mode without Vault: plaintext gRPC, no caller identities, local secrets"
            )
        return
    found = problems(settings, service=service, database_url=database_url)
    if found:
        print(f"{program}: refusing to start in production: {'; '.join(found)}", file=sys.stderr)
        raise SystemExit(2)
