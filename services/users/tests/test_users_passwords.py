"""Unit tests: password policy, argon2id hashing, input normalisation and settings."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import ValidationError

from bulwark_common.settings import load_settings
from bulwark_users.accounts import (
    FieldError,
    normalize_email,
    normalize_roles,
    normalize_username,
    parse_id,
)
from bulwark_users.passwords import Passwords, PolicyError, check_policy, common_passwords
from bulwark_users.settings import UsersSettings, available_cpus

GOOD = "violet-kettle-orbit-42"


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    # The real defaults (OWASP minimum): what production runs.
    return Passwords(time_cost=2, memory_cost_kib=19456, parallelism=1, max_concurrent=2)


def test_policy_accepts_a_long_uncommon_password() -> None:
    check_policy(GOOD)
    check_policy("x" * 11 + "y")  # exactly 12, no composition rules
    check_policy("z" * 128)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "at least 12"),
        ("short-pass1", "at least 12"),
        ("z" * 129, "at most 128"),
        ("password123456", "too common"),
        ("PassWord123456", "too common"),  # compared lower-cased
        ("qwertyuiopas", "too common"),
        ("123456789012", "too common"),
        ("P@ssw0rd1234", "too common"),
    ],
)
def test_policy_rejects(password: str, reason: str) -> None:
    with pytest.raises(PolicyError, match=reason) as info:
        check_policy(password)
    if password:
        assert password not in str(info.value)  # the message never quotes the password


def test_policy_rejects_the_username_or_email_as_password() -> None:
    with pytest.raises(PolicyError, match="username or email"):
        check_policy("Alice.Example", context=("alice.example", "a@example.com"))


def test_common_list_is_bundled_and_big_enough() -> None:
    entries = common_passwords()
    assert len(entries) >= 1000
    assert all(e == e.lower() and len(e) >= 12 for e in entries)


def test_hash_is_argon2id_with_configured_parameters(passwords: Passwords) -> None:
    h = passwords.hash(GOOD)
    assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert GOOD not in h
    assert passwords.verify(h, GOOD)
    assert not passwords.verify(h, GOOD + "x")
    assert not passwords.verify("not-a-hash", GOOD)
    assert not passwords.needs_rehash(h)


def test_unicode_is_normalised_before_hashing(passwords: Passwords) -> None:
    composed = "caf\u00e9-terrace-nights"
    decomposed = "cafe\u0301-terrace-nights"
    assert passwords.verify(passwords.hash(composed), decomposed)


def test_needs_rehash_when_parameters_change(passwords: Passwords) -> None:
    weak = Passwords(time_cost=1, memory_cost_kib=8192, parallelism=1, max_concurrent=2)
    old = weak.hash(GOOD)
    # Old hashes still verify under the new parameters, and are flagged for upgrade.
    assert passwords.verify(old, GOOD)
    assert passwords.needs_rehash(old)
    stronger = Passwords(time_cost=3, memory_cost_kib=19456, parallelism=1, max_concurrent=2)
    assert stronger.needs_rehash(passwords.hash(GOOD))
    assert passwords.needs_rehash("garbage")


def test_unknown_user_costs_a_real_verification(passwords: Passwords) -> None:
    h = passwords.hash(GOOD)

    def best_of_three(stored: str | None) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            assert not passwords.verify(stored, "wrong-password-guess")
            times.append(time.perf_counter() - start)
        return min(times)

    real, dummy = best_of_three(h), best_of_three(None)
    assert dummy > real * 0.5, (real, dummy)
    # Whatever is guessed, the dummy never matches.
    assert not passwords.verify(None, GOOD)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Alice", "alice"), ("bob.smith_2-x", "bob.smith_2-x"), ("ABC", "abc"), ("a" * 32, "a" * 32)],
)
def test_username_normalised(raw: str, expected: str) -> None:
    assert normalize_username(raw) == expected


@pytest.mark.parametrize(
    "raw", ["ab", "a" * 33, "al ice", "alice!", "ålice", "alice\n", "", "K\u212aelvin"]
)
def test_username_rejected(raw: str) -> None:
    with pytest.raises(FieldError, match=r"^username: "):
        normalize_username(raw)


def test_email_normalised_and_validated() -> None:
    assert normalize_email("Alice@Example.COM") == "alice@example.com"
    for bad in ["", "alice", "alice@", "@example.com", "a b@example.com"]:
        with pytest.raises(FieldError, match=r"^email: "):
            normalize_email(bad)


def test_roles() -> None:
    assert normalize_roles([], default=("user",)) == ["user"]
    assert normalize_roles(["user", "admin", "user"]) == ["admin", "user"]
    with pytest.raises(FieldError, match=r"^roles: unknown role 'root'"):
        normalize_roles(["root"])
    with pytest.raises(FieldError, match=r"^roles: must name at least one"):
        normalize_roles([])


def test_parse_id() -> None:
    uid = "0b6f1c7e-6a53-4c3e-9d0e-0d5a3c1e2f10"
    assert parse_id(uid) == uid
    assert parse_id(uid.upper()) == uid
    for bad in ["", "nope", uid[:-1], "{" + uid[1:-1] + "}", uid.replace("-", "") + "xxxx"]:
        assert parse_id(bad) is None


def test_settings_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    s = UsersSettings()
    assert (s.host, s.port, s.max_workers) == ("127.0.0.1", 50052, 16)
    assert (s.argon2_time_cost, s.argon2_memory_cost_kib, s.argon2_parallelism) == (2, 19456, 1)
    monkeypatch.setenv("USERS_PORT", "6000")
    monkeypatch.setenv("USERS_ARGON2_MEMORY_COST_KIB", "65536")
    monkeypatch.setenv("DATABASE_URL", "postgresql://shared/db")
    s = UsersSettings()
    assert (s.port, s.argon2_memory_cost_kib, s.database_url) == (
        6000,
        65536,
        "postgresql://shared/db",
    )
    monkeypatch.setenv("USERS_DATABASE_URL", "postgresql://own/db")
    assert UsersSettings().database_url == "postgresql://own/db"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USERS_ARGON2_TIME_COST", "1"),
        ("USERS_ARGON2_MEMORY_COST_KIB", "19455"),
        ("USERS_ARGON2_PARALLELISM", "0"),
    ],
)
def test_settings_refuse_weaker_than_owasp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        UsersSettings()
    with pytest.raises(SystemExit) as info:
        load_settings(UsersSettings, "bulwark-users")
    assert info.value.code == 2
    assert name in capsys.readouterr().err


def test_argon2_concurrency_is_capped_and_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """More callers than slots: they wait their turn (none fails), never more at once."""
    capped = Passwords(time_cost=2, memory_cost_kib=19456, parallelism=1, max_concurrent=2)
    stored = capped.hash(GOOD)
    active, peak, lock = 0, 0, threading.Lock()
    real = capped._hasher

    class Counting:  # argon2's PasswordHasher has slots: wrap it rather than patch it
        def verify(self, hash_: str, password: str) -> bool:
            return counting_verify(hash_, password)

    def counting_verify(hash_: str, password: str) -> bool:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            time.sleep(0.02)  # hold the slot long enough for the other callers to pile up
            return real.verify(hash_, password)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(capped, "_hasher", Counting())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: capped.verify(stored, GOOD), range(16)))
    assert results == [True] * 16
    assert peak == 2


def _rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_argon2_memory_stays_at_the_cap_whatever_the_callers_threads() -> None:
    """16 caller threads verifying in turn hold at most `max_concurrent` argon2 buffers
    (19 MiB each): the computations run on threads of their own. When each caller thread
    computed itself, glibc kept one freed buffer per thread: ~+285 MiB here."""
    capped = Passwords(time_cost=1, memory_cost_kib=19456, parallelism=1, max_concurrent=2)
    stored = capped.hash(GOOD)
    before = _rss_mib()
    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(lambda _: capped.verify(stored, GOOD), range(48)))
    grown = _rss_mib() - before
    assert grown < 4 * 19, f"RSS grew by {grown:.0f} MiB"


def test_argon2_cap_defaults_to_the_cpus_and_refuses_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert UsersSettings().argon2_max_concurrent == available_cpus()
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("USERS_ARGON2_MAX_CONCURRENT", "0")
    with pytest.raises(ValidationError):
        UsersSettings()


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("150000 100000\n", 2),  # a 1.5-CPU limit: two computations at once
        ("50000 100000\n", 1),  # below one CPU: still one
        ("max 100000\n", None),  # no limit: the affinity mask
        ("garbage", None),
    ],
)
def test_available_cpus_honours_a_cgroup_cpu_limit(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    mask = len(os.sched_getaffinity(0))
    assert available_cpus(path) == (min(mask, expected) if expected else mask)
    assert available_cpus(tmp_path / "missing") == mask
