"""argon2id hashing and the password policy (NIST SP 800-63B style: length and a blocklist,
no composition rules)."""

from __future__ import annotations

import secrets
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import resources
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from bulwark_common.metrics import ARGON2_DURATION, ARGON2_QUEUE, ARGON2_WAIT, Observer

_HASH_TIME, _VERIFY_TIME = ARGON2_DURATION.labels("hash"), ARGON2_DURATION.labels("verify")
T = TypeVar("T")

MIN_LENGTH = 12
MAX_LENGTH = 128


class PolicyError(ValueError):
    """The password breaks the policy; the message is safe to show (it never quotes it)."""


def normalize(password: str) -> str:
    # NFKC, so the same password typed on different keyboards / input methods hashes the
    # same. Applied before hashing *and* verifying: never change it without a rehash plan.
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("bulwark_users").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def check_policy(password: str, *, context: tuple[str, ...] = ()) -> None:
    """Raise PolicyError unless `password` is acceptable. `context` holds values the password
    must not simply repeat (username, email)."""
    pw = normalize(password)
    if len(pw) < MIN_LENGTH:
        raise PolicyError(f"must be at least {MIN_LENGTH} characters")
    if len(pw) > MAX_LENGTH:
        raise PolicyError(f"must be at most {MAX_LENGTH} characters")
    lowered = pw.lower()
    if lowered in common_passwords():
        raise PolicyError("is too common; choose another")
    if any(lowered == c.lower() for c in context if c):
        raise PolicyError("must not be the username or email")


class Passwords:
    """argon2id with fixed parameters. Hashes made with other parameters still verify and
    are reported by `needs_rehash`, so raising the cost upgrades hashes at the next login.

    Computations run on `max_concurrent` threads of their own; callers wait their turn.
    - With more hashes at once than cores, each one only gets slower (measured: 4 threads on
      2 cores verify fewer per second than 2).
    - Memory stays at max_concurrent x memory_cost: glibc keeps a freed 19 MiB buffer in the
      arena of the thread that used it, so when every gRPC worker thread hashed in turn
      (a semaphore, before), users' RSS grew to one buffer per worker thread (measured:
      131 -> 440 MiB under login load; with 16 threads hashing in turn, 32 -> 317 MiB).
      Returning the buffers to the kernel instead (a fixed mmap threshold) cost 40 % more
      CPU per verify in page faults."""

    def __init__(
        self, *, time_cost: int, memory_cost_kib: int, parallelism: int, max_concurrent: int
    ) -> None:
        self._threads = ThreadPoolExecutor(max_concurrent, thread_name_prefix="argon2")
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Verified against when the username is unknown, so that answer costs one argon2
        # computation with the current parameters, like a real one.
        self._dummy_hash = self._run(_HASH_TIME, self._hasher.hash, secrets.token_urlsafe(32))

    def _run(self, duration: Observer, compute: Callable[..., T], *args: str) -> T:
        """`compute(*args)` on an argon2 thread; the wait for one and the work are measured."""
        queued = time.perf_counter()
        ARGON2_QUEUE.inc()

        def job() -> T:
            started = time.perf_counter()
            ARGON2_QUEUE.dec()
            ARGON2_WAIT.observe(started - queued)
            try:
                return compute(*args)
            finally:
                duration.observe(time.perf_counter() - started)

        return self._threads.submit(job).result()

    def hash(self, password: str) -> str:
        return self._run(_HASH_TIME, self._hasher.hash, normalize(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches. `None` (no such user) burns a dummy verification
        and is always False."""
        target = self._dummy_hash if password_hash is None else password_hash
        try:
            ok = self._run(_VERIFY_TIME, self._hasher.verify, target, normalize(password))
        except (VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
