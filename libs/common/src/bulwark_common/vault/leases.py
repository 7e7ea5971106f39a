"""Dynamic credentials (PostgreSQL, Redis) from the database secrets engine, kept valid in the
background: the lease is renewed at 2/3 of its life, and a fresh credential is issued once
renewal is capped by the role's max TTL (or the token that owns the lease was replaced), while
the old credential still has a third of its life for connections in flight."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import hvac.exceptions
import redis

from bulwark_common import metrics
from bulwark_common.vault._retry import _Renewer, log

if TYPE_CHECKING:
    from bulwark_common.vault.client import Vault


# reissue(): how often a refused credential may be replaced (Vault makes a user each time).
REISSUE_INTERVAL = 2.0


@dataclass(frozen=True)
class _Lease:
    username: str
    password: str = field(repr=False)
    lease_id: str = field(repr=False)
    duration: float
    expires: float
    token_generation: int


class DatabaseCredentials(_Renewer):
    """`current()` never blocks. `generation` changes with every new credential, so pools
    can retire connections opened with an older one."""

    def __init__(self, vault: Vault, role: str) -> None:
        self.role = role
        self._lease: _Lease | None = None
        self._generation = 0
        self._subscribers: list[Callable[[], None]] = []
        self._reissue_after = 0.0  # time.monotonic() of the last reissue() honoured
        self._reissue = False
        super().__init__(vault, f"credentials {role}", f"vault-lease-{role}")
        metrics.track_lease(role, self.seconds_to_expiry)

    def _now_lease(self) -> _Lease:
        lease = self._lease
        assert lease is not None  # issued in __init__
        return lease

    def current(self) -> tuple[str, str]:
        lease = self._now_lease()
        return lease.username, lease.password

    @property
    def generation(self) -> int:
        return self._generation

    def seconds_to_expiry(self) -> float:
        return self._now_lease().expires - time.time()

    def lease_duration(self) -> float:
        return self._now_lease().duration

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Called (from the renewer thread) after each new credential."""
        self._subscribers.append(callback)

    def reissue(self) -> None:
        """The server refused the current credential although its lease is valid (a Redis
        restarted without its ACL users: Vault's are not saved): issue a fresh one now, at
        most every REISSUE_INTERVAL seconds, however many connections report it."""
        now = time.monotonic()
        with self._lock:
            if now < self._reissue_after:
                return
            self._reissue_after = now + REISSUE_INTERVAL
            self._reissue = True
        log.warning("vault: %s refused by its server: issuing a fresh one", self._component)
        self._wake.set()

    def _issue(self) -> None:
        vault = self._vault
        resp = vault.client.secrets.database.generate_credentials(
            self.role, mount_point=vault.settings.vault_db_mount
        )
        duration = float(resp["lease_duration"])
        lease = _Lease(
            username=resp["data"]["username"],
            password=resp["data"]["password"],
            lease_id=resp["lease_id"],
            duration=duration,
            expires=time.time() + duration,
            token_generation=vault.token_generation,
        )
        with self._lock:
            self._lease = lease
            self._generation += 1
        vault.report(self._component, None)
        log.info(
            "vault: new credentials from %s (user %s, lease %ss)",
            self.role,
            lease.username,
            duration,
        )
        for callback in list(self._subscribers):
            callback()

    def _renew(self, lease: _Lease) -> bool:
        """False when only a fresh credential will do."""
        if lease.token_generation != self._vault.token_generation:
            return False
        try:
            resp = self._vault.client.sys.renew_lease(lease.lease_id, increment=int(lease.duration))
        except hvac.exceptions.InvalidRequest:
            return False  # the lease is gone (revoked, or Vault lost it)
        granted = float(resp["lease_duration"])
        if granted < lease.duration * 0.9:
            return False  # capped by max_ttl: issue the next one now
        with self._lock:
            self._lease = _Lease(
                lease.username,
                lease.password,
                lease.lease_id,
                lease.duration,
                time.time() + granted,
                lease.token_generation,
            )
        return True

    def _schedule(self) -> tuple[float | None, float]:
        lease = self._now_lease()
        if self._reissue or lease.token_generation != self._vault.token_generation:
            return None, lease.expires  # refused, or the token that owns it was replaced
        return lease.expires - lease.duration / 3 - time.time(), lease.expires

    def _refresh(self) -> None:
        if self._reissue:
            self._reissue = False
            self._issue()
        elif not self._renew(self._now_lease()):
            self._issue()
        self._vault.report(self._component, None)


class RedisCredentials(redis.CredentialProvider):
    """redis-py asks this for the username and password of every new connection. Vault
    deletes the old ACL user (and Redis closes its connections) when its lease ends, so
    callers drop idle pooled connections on each new credential (`subscribe`)."""

    def __init__(self, credentials: DatabaseCredentials) -> None:
        self.credentials = credentials

    def get_credentials(self) -> tuple[str, str]:
        return self.credentials.current()

    async def get_credentials_async(self) -> tuple[str, str]:
        # In memory, never a network call: the renewer thread fetched it already.
        return self.credentials.current()
