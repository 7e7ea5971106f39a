"""Backoff, error descriptions and the background-worker shape every Vault renewer shares."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

import hvac.exceptions
import requests

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
