"""What a service process takes from its environment at start-up, the same way in all three:
the safety checks, a Vault session, and from it the database and Redis credentials and the
mTLS identity. Without Vault (dev only) each piece is None and the old local defaults apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio as aioredis
from sqlalchemy.engine import URL

from bulwark_common import db, kv, safety
from bulwark_common.settings import ServiceSettings
from bulwark_common.tls import CertSource
from bulwark_common.vault import DatabaseCredentials, Vault

log = logging.getLogger("bulwark.runtime")


@dataclass
class Runtime:
    service: str
    settings: ServiceSettings
    vault: Vault | None = None
    tls: CertSource | None = None
    _credentials: dict[str, DatabaseCredentials] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        settings: ServiceSettings,
        *,
        service: str,
        program: str,
        database_url: str | None,
        identity: bool = True,
    ) -> Runtime:
        """Refuse unsafe production settings (exit 2), then log in to Vault, retrying with
        backoff while it is unreachable (the process is not ready meanwhile). `identity`:
        issue this service's mTLS certificate (servers; not one-off commands)."""
        safety.refuse_unsafe(settings, program=program, service=service, database_url=database_url)
        if not settings.vault_addr:
            return cls(service, settings)
        vault = Vault.connect(settings, service)
        return cls(service, settings, vault, vault.certificates(service) if identity else None)

    @property
    def prefix(self) -> str:
        return self.settings.vault_prefix

    def credentials(self, kind: str = "") -> DatabaseCredentials | None:
        """Dynamic credentials of this service's Vault role `<prefix>-<service><kind>`
        (kind: "" runtime DML, "-migrate" schema owner, "-redis" Redis ACL user)."""
        if self.vault is None:
            return None
        if kind not in self._credentials:
            role = f"{self.prefix}-{self.service}{kind}"
            self._credentials[kind] = self.vault.database_credentials(role)
        return self._credentials[kind]

    def database(self, url: str | None, data_dir: Path) -> db.Database:
        parsed = db.database_url(url, data_dir, self.service)
        return db.Database(parsed, credentials=self._db_credentials(parsed))

    def _db_credentials(self, url: URL) -> DatabaseCredentials | None:
        return self.credentials() if url.get_backend_name() == "postgresql" else None

    def migrate(self, script_location: Path, url: str | None, data_dir: Path) -> None:
        """Apply migrations; with Vault as the migrate role, owned by `<db>_owner`."""
        parsed = db.database_url(url, data_dir, self.service)
        if self.vault is None or parsed.get_backend_name() != "postgresql":
            db.upgrade(script_location, parsed)
            return
        db.upgrade(
            script_location,
            parsed,
            owner_role=db.owner_role(parsed),
            credentials=self.credentials("-migrate"),
        )

    def redis(self, url: str) -> redis.Redis:
        return kv.client(url, credentials=self.credentials("-redis"))

    def aio_redis(self, url: str) -> aioredis.Redis:
        return kv.aio_client(url, credentials=self.credentials("-redis"))

    def vault_check(self) -> None:
        """A health check: raises while Vault-held secrets are unusable."""
        if self.vault is not None and (reason := self.vault.readiness()):
            raise RuntimeError(reason)

    def vault_warnings(self) -> list[str]:
        """Renewals failing while what they renew still serves: not a reason to be unready,
        but what an operator wants to see before it becomes one."""
        return [] if self.vault is None else self.vault.warnings()

    def close(self) -> None:
        if self.vault is not None:
            self.vault.close()
