"""Backoff, error descriptions and the background-worker shape every Vault renewer shares."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import hvac.exceptions
import requests

if TYPE_CHECKING:
    from bulwark_common.vault.client import Vault

log = logging.getLogger("bulwark.vault")


class VaultUnavailable(RuntimeError):
    """Vault could not be used before the caller gave up (stop was set)."""


class Backoff:
    """Exponential, capped, with jitter so replicas that lost Vault together do not return
    in lockstep."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0) -> None:
        self.initial = initial
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        base = min(self.cap, self.initial * 2**self.attempt)
        self.attempt += 1
        return float(base * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret

    def reset(self) -> None:
        self.attempt = 0


def describe(exc: BaseException, addr: str) -> str:
    """One line for logs and readiness. Never the request or response body: they can carry
    tokens, secret ids and passwords."""
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return f"vault unreachable at {addr}"
    if isinstance(exc, hvac.exceptions.VaultDown):
        return f"vault at {addr} is sealed or down"
    if isinstance(exc, hvac.exceptions.Forbidden):
        return f"vault at {addr} refused the request (permission denied)"
    if isinstance(exc, hvac.exceptions.VaultError):
        return f"vault at {addr} answered {type(exc).__name__}"
    if isinstance(exc, ValueError):
        return f"vault login not configured: {exc}"  # our own message, no secret in it
    if isinstance(exc, OSError):
        return f"vault login material unreadable ({type(exc).__name__}: {exc.strerror})"
    return f"vault call failed ({type(exc).__name__})"


def retry(
    what: str,
    call: Callable[[], None],
    *,
    addr: str,
    stop: threading.Event,
    on_error: Callable[[str], None],
    backoff: Backoff | None = None,
) -> None:
    """Run `call` until it succeeds, logging one line per failed attempt. Raises
    VaultUnavailable when `stop` is set first."""
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            call()
            return
        except Exception as exc:
            reason = describe(exc, addr)
            delay = backoff.next()
            on_error(reason)
            log.warning("%s: %s: retrying in %.1fs", what, reason, delay)
            if stop.wait(delay):
                break
    raise VaultUnavailable(f"{what}: stopped before Vault answered")


def start_worker(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class _Renewer:
    """A secret kept valid by a background thread: sleep until renewal is due (a re-login or
    close wakes it to look again), renew, and on failure report to the Vault session and back
    off. Subclasses set their own state, then call this __init__: it issues the first secret
    (retried until it succeeds or Vault closes) and starts the thread."""

    def __init__(self, vault: Vault, component: str, thread: str) -> None:
        self._vault = vault
        self._component = component
        self._lock = threading.Lock()
        self._wake = vault.waker()
        retry(
            f"vault {component}",
            self._issue,
            addr=vault.addr,
            stop=vault.stopping,
            on_error=lambda reason: vault.report(component, reason),
        )
        vault.spawn(thread, self._run)

    def _issue(self) -> None:
        raise NotImplementedError

    def _schedule(self) -> tuple[float | None, float]:
        """Seconds until the next renewal (None: now, not waiting) and when the current expires."""
        raise NotImplementedError

    def _refresh(self) -> None:
        self._issue()

    def _run(self) -> None:
        vault = self._vault
        backoff = Backoff()
        while not vault.stopping.is_set():
            due, expires = self._schedule()
            if due is not None and self._wake.wait(max(0.0, due)):
                self._wake.clear()
                continue  # woken: look again
            try:
                self._refresh()
                backoff.reset()
            except Exception as exc:
                vault.renew_failed(self._component, exc, expires, backoff, self._wake)
