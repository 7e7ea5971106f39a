"""Signing keys kept in Vault (KV v2), picked up by running servers without a restart.

Two KV entries under the deployment's prefix:
- `auth/signing-keys`: `current`, `previous` and `next` private keys (PEM). Only auth
  reads it; only the `auth-keys` operator role writes it (`bulwark-auth rotate-keys`).
- `auth/jwks`: the public keys of the same set, for users' own token checks (users must
  not see private keys).

Rotation is two-phase so that no verifier ever meets a `kid` it cannot know: (1) the new
key becomes `next`, which every auth replica publishes but none signs with; (2) after the
publish delay it becomes `current`, the old current becomes `previous` (still verifying
the tokens it signed until they expire)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import hvac.exceptions

from bulwark_auth.keys import Keyring, SigningKey, SigningKeyError, generate_pem

log = logging.getLogger("bulwark.auth.keys")

SIGNING_KEYS_PATH = "auth/signing-keys"
JWKS_PATH = "auth/jwks"
FIELDS = ("current", "previous", "next")


class KeyStore(Protocol):
    """The part of `bulwark_common.vault.Vault` this module uses."""

    def kv_read(self, path: str) -> dict[str, Any] | None: ...

    def kv_metadata_version(self, path: str) -> int: ...

    def kv_write(self, path: str, data: dict[str, Any], cas: int | None = None) -> int: ...


def keyring_from_kv(data: dict[str, Any] | None) -> Keyring:
    if not data or not data.get("current"):
        raise SigningKeyError(
            f"no signing key in Vault at {SIGNING_KEYS_PATH}: provision one with "
            "`bulwark-auth rotate-keys` (auth-keys role)"
        )
    pems = {f: str(data[f]).encode() if data.get(f) else None for f in FIELDS}
    try:
        return Keyring.from_pems(pems["current"] or b"", pems["previous"], pems["next"])
    except SigningKeyError as exc:
        raise SigningKeyError(f"unusable signing key in Vault: {exc}") from None


def _version(store: KeyStore) -> int:
    """The KV version of the signing keys; 0 when none were ever written."""
    try:
        return store.kv_metadata_version(SIGNING_KEYS_PATH)
    except hvac.exceptions.InvalidPath:
        return 0


def load(store: KeyStore) -> tuple[Keyring, int]:
    """The key set and its KV version."""
    version = _version(store)
    if version == 0:
        raise SigningKeyError(
            f"no signing key in Vault at {SIGNING_KEYS_PATH}: provision one with "
            "`bulwark-auth rotate-keys --if-missing` (auth-keys role)"
        )
    return keyring_from_kv(store.kv_read(SIGNING_KEYS_PATH)), version


class KeyWatcher:
    """Polls the KV version and swaps a newer key set into the live Keyring. Vault being
    unreachable keeps the keys in hand (they do not expire) and is logged once per
    outage."""

    def __init__(self, store: KeyStore, keyring: Keyring, version: int, interval: float) -> None:
        self._store = store
        self._keyring = keyring
        self.version = version
        self._interval = interval
        self._stop = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="signing-keys", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def poll_once(self) -> bool:
        """Reload when the version changed; True when the keys were replaced."""
        try:
            version = _version(self._store)
            if version == self.version:
                self._set_failing(False)
                return False
            fresh = keyring_from_kv(self._store.kv_read(SIGNING_KEYS_PATH))
        except SigningKeyError as exc:
            log.error("signing keys in Vault unusable; keeping the current ones: %s", exc)
            return False
        except Exception as exc:
            self._set_failing(True, type(exc).__name__)
            return False
        self._set_failing(False)
        old = self._keyring.current.kid
        self._keyring.replace(fresh)
        self.version = version
        log.info(
            "signing keys reloaded",
            extra={
                "kid": fresh.current.kid,
                "previous_kid": old,
                "next_kid": fresh.next.kid if fresh.next else None,
            },
        )
        return True

    def _set_failing(self, failing: bool, error: str = "") -> None:
        if failing and not self._failing:
            log.warning("cannot read signing keys from Vault; keeping the current ones: %s", error)
        elif not failing and self._failing:
            log.info("signing keys readable from Vault again")
        self._failing = failing

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll_once()


def _pem(key: SigningKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _write(store: KeyStore, keyring: Keyring, cas: int) -> int:
    data = {"current": _pem(keyring.current)}
    if keyring.previous is not None:
        data["previous"] = _pem(keyring.previous)
    if keyring.next is not None:
        data["next"] = _pem(keyring.next)
    # Public keys first: a verifier may learn a key before auth signs with it, never after.
    store.kv_write(JWKS_PATH, {"keys": keyring.jwks()})
    return store.kv_write(SIGNING_KEYS_PATH, data, cas=cas)


def rotate(
    store: KeyStore,
    publish_seconds: float,
    *,
    only_if_missing: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> Keyring:
    """Provision the first key, or rotate in two phases. Check-and-set on the KV version
    makes two operators rotating at once fail loudly instead of losing a key."""
    version = _version(store)
    data = store.kv_read(SIGNING_KEYS_PATH) if version else None
    if not data or not data.get("current"):
        first = Keyring(SigningKey.from_pem(generate_pem()))
        _write(store, first, cas=version)
        log.info("first signing key provisioned", extra={"kid": first.current.kid})
        return first
    old = keyring_from_kv(data)
    if only_if_missing:
        log.info("signing keys already provisioned", extra={"kid": old.current.kid})
        return old
    fresh = SigningKey.from_pem(generate_pem())
    # Phase 1: publish the new key as `next`; every replica picks it up within its poll.
    version = _write(store, Keyring(old.current, old.previous, fresh), cas=version)
    log.info("next signing key published", extra={"kid": fresh.kid, "wait": publish_seconds})
    sleep(publish_seconds)
    # Phase 2: sign with it; the old current keeps verifying as previous.
    rotated = Keyring(fresh, old.current)
    _write(store, rotated, cas=version)
    log.info("signing keys rotated", extra={"kid": fresh.kid, "previous_kid": old.current.kid})
    return rotated
