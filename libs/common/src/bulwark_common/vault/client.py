"""The Vault session of one service: login (AppRole or Kubernetes), token renewal, KV v2,
and the readiness every renewer reports into."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import hvac
import hvac.exceptions

from bulwark_common.settings import VaultConfig
from bulwark_common.vault._retry import (
    Backoff,
    VaultUnavailable,
    describe,
    log,
    retry,
    start_worker,
)

if TYPE_CHECKING:
    from bulwark_common.vault.leases import DatabaseCredentials
    from bulwark_common.vault.pki import PkiCertificates

REQUEST_TIMEOUT = 5.0


class Vault:
    """Use `Vault.connect(...)`. Thread-safe; every background renewer stops on `close()`."""

    def __init__(self, settings: VaultConfig, service: str) -> None:
        if not settings.vault_addr:
            raise ValueError("VAULT_ADDR is not set")
        self.settings = settings
        self.service = service
        self.addr = settings.vault_addr
        self.prefix = settings.vault_prefix
        self._verify: bool | str = str(settings.vault_cacert) if settings.vault_cacert else True
        self._lock = threading.Lock()
        self._client: hvac.Client | None = None
        self._token_expires = 0.0
        self._token_ttl = 0.0
        self._token_renewable = False
        self._problems: dict[str, str] = {"token": "vault: not logged in yet"}
        self._closing = threading.Event()
        self._wakers: list[threading.Event] = []
        # Bumped on every login: leases live only as long as the token that created them.
        self.token_generation = 0
        self._threads: list[threading.Thread] = []

    @classmethod
    def connect(
        cls, settings: VaultConfig, service: str, stop: threading.Event | None = None
    ) -> Vault:
        """Log in (retrying while Vault is unreachable or refuses) and keep the token alive.
        Raises VaultUnavailable if `stop` is set before a login succeeds."""
        vault = cls(settings, service)
        vault.login(stop)
        vault.spawn("vault-token", vault._renew_token_forever)
        return vault

    # -- state shared with the renewers ---------------------------------------------------

    @property
    def client(self) -> hvac.Client:
        client = self._client
        if client is None:
            raise VaultUnavailable("not logged in to Vault")
        return client

    def report(self, component: str, problem: str | None) -> None:
        with self._lock:
            if problem is None:
                self._problems.pop(component, None)
            else:
                self._problems[component] = problem

    def readiness(self) -> str | None:
        """Why this service cannot work right now (None: it can). Vault being unreachable
        is not a reason while the current token, leases and certificates are still valid:
        those keep serving until they expire (see `warnings()`)."""
        with self._lock:
            blocking = [p for p in self._problems.values() if not p.startswith("degraded:")]
        return "; ".join(sorted(blocking)) or None

    def warnings(self) -> list[str]:
        """Renewals currently failing while what they renew is still valid."""
        with self._lock:
            return sorted(p for p in self._problems.values() if p.startswith("degraded:"))

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        self._threads.append(start_worker(f"{name}-{self.service}", target))

    def waker(self) -> threading.Event:
        """An event a renewer sleeps on: set on re-login (leases of the previous token end
        with it) and on close()."""
        event = threading.Event()
        with self._lock:
            self._wakers.append(event)
        return event

    def _wake_all(self) -> None:
        with self._lock:
            for event in self._wakers:
                event.set()

    @property
    def stopping(self) -> threading.Event:
        return self._closing

    # -- login and token renewal -----------------------------------------------------------

    def login(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._closing
        retry(
            "vault login",
            self._login_once,
            addr=self.addr,
            stop=stop,
            on_error=lambda reason: self.report("token", f"vault login failing: {reason}"),
        )

    def _new_client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token, verify=self._verify, timeout=REQUEST_TIMEOUT)

    def _login_once(self) -> None:
        s = self.settings
        anon = self._new_client()
        if s.vault_auth == "kubernetes":
            jwt = s.vault_k8s_token_file.read_text().strip()
            role = s.vault_k8s_role or f"{self.prefix}-{self.service}"
            resp = anon.auth.kubernetes.login(
                role, jwt, use_token=False, mount_point=s.vault_k8s_mount
            )
        else:
            if not s.vault_role_id or not s.vault_secret_id_file:
                raise ValueError(
                    "BULWARK_VAULT_ROLE_ID and BULWARK_VAULT_SECRET_ID_FILE are required"
                )
            secret_id = s.vault_secret_id_file.read_text().strip()
            resp = anon.auth.approle.login(s.vault_role_id, secret_id, use_token=False)
        auth = resp["auth"]
        with self._lock:
            first = self._client is None
            self._client = self._new_client(auth["client_token"])
            self._token_ttl = float(auth["lease_duration"])
            self._token_renewable = bool(auth.get("renewable"))
            self._token_expires = time.time() + self._token_ttl
            self.token_generation += 1
        self.report("token", None)
        log.info(
            "vault: logged in as %s-%s (token ttl %ss)",
            self.prefix,
            self.service,
            auth["lease_duration"],
        )
        if not first:
            self._wake_all()

    @property
    def token_expires_at(self) -> float:
        """Unix time the current token expires (it is renewed well before)."""
        return self._token_expires

    def _renew_token_forever(self) -> None:
        backoff = Backoff()
        while not self._closing.is_set():
            remaining = self._token_expires - time.time()
            # Renew once two thirds of the current life are gone.
            if self._closing.wait(max(0.0, remaining - self._token_ttl / 3)):
                return
            try:
                if not self._renew_token():
                    # Capped by the max TTL, expired or revoked: a fresh login. When capped,
                    # the old token still has a third of its life for anything in flight.
                    self._login_once()
                self.report("token", None)
                backoff.reset()
            except Exception as exc:
                self.renew_failed("token", exc, self._token_expires, backoff, self._closing)

    def _renew_token(self) -> bool:
        """False when only a new login will do."""
        if not self._token_renewable or time.time() >= self._token_expires:
            return False
        try:
            auth = self.client.auth.token.renew_self(increment=int(self._token_ttl))["auth"]
        except hvac.exceptions.Forbidden:
            return False  # revoked or expired on Vault's side
        granted = float(auth["lease_duration"])
        if granted < self._token_ttl * 0.9:
            return False
        self._token_expires = time.time() + granted
        return True

    def renew_failed(
        self,
        component: str,
        exc: Exception,
        expires: float,
        backoff: Backoff,
        sleep_on: threading.Event,
    ) -> None:
        """Report and log a failed renewal, then back off (never past half the time left).
        Until `expires` the current secret keeps serving."""
        reason = describe(exc, self.addr)
        delay = min(backoff.next(), max(0.5, (expires - time.time()) / 2))
        left = expires - time.time()
        if left > 0:
            self.report(
                component,
                f"degraded: {component} renewal failing ({reason}); valid {left:.0f}s more",
            )
        else:
            self.report(component, f"{component} expired: {reason}")
        log.warning("vault %s renewal: %s: retrying in %.1fs", component, reason, delay)
        # A wake-up (re-login) only shortens the pause; the caller re-checks its state.
        if sleep_on.wait(delay) and not self._closing.is_set():
            sleep_on.clear()

    # -- KV v2 under <kv mount>/<prefix>/ --------------------------------------------------

    def _kv_path(self, path: str) -> str:
        return f"{self.prefix}/{path.lstrip('/')}"

    def kv_read(self, path: str) -> dict[str, Any]:
        resp = self.client.secrets.kv.v2.read_secret_version(
            self._kv_path(path),
            mount_point=self.settings.vault_kv_mount,
            raise_on_deleted_version=True,
        )
        return dict(resp["data"]["data"])

    def kv_metadata_version(self, path: str) -> int:
        resp = self.client.secrets.kv.v2.read_secret_metadata(
            self._kv_path(path), mount_point=self.settings.vault_kv_mount
        )
        return int(resp["data"]["current_version"])

    def kv_write(self, path: str, data: dict[str, Any], cas: int | None = None) -> int:
        """Write a new version (check-and-set when `cas` is given: 0 = must not exist yet).
        Returns the new version."""
        resp = self.client.secrets.kv.v2.create_or_update_secret(
            self._kv_path(path), secret=data, cas=cas, mount_point=self.settings.vault_kv_mount
        )
        return int(resp["data"]["version"])

    # -- dynamic secrets -------------------------------------------------------------------

    def database_credentials(self, role: str | None = None) -> DatabaseCredentials:
        from bulwark_common.vault.leases import DatabaseCredentials

        return DatabaseCredentials(self, role or f"{self.prefix}-{self.service}")

    def certificates(
        self,
        service: str | None = None,
        namespace: str | None = None,
        ttl_seconds: int | None = None,
    ) -> PkiCertificates:
        from bulwark_common.vault.pki import PkiCertificates

        return PkiCertificates(
            self,
            service or self.service,
            namespace or self.settings.namespace,
            ttl_seconds or self.settings.tls_cert_ttl_seconds,
        )

    def close(self, revoke: bool = False) -> None:
        """Stop the renewers. `revoke=True` also revokes the token, and with it every lease
        it created (Vault drops those database and Redis users now rather than at their
        max TTL): only once nothing uses them any more."""
        self._closing.set()
        self._wake_all()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT + 1)
        if revoke and self._client is not None:
            try:
                self._client.auth.token.revoke_self()
            except Exception as exc:
                log.warning("vault: could not revoke the token: %s", describe(exc, self.addr))
