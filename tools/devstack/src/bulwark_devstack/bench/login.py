"""Login benchmark: password-grant logins/s through api against the raw argon2id verify rate
at the users service's parameters, at the same concurrency, on the same machine.

argon2id is deliberately the expensive part of a login; everything else (api, the gRPC hops
to auth and users, the backoff bookkeeping in Redis, the refresh-token INSERT, signing the
ES256 token) should cost little next to it, so the ratio login/raw should stay near 1."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from bulwark_devstack.bench.cpu import CpuMeter, pinned
from bulwark_devstack.bench.loadgen import (
    LoadResult,
    median_ratio,
    median_run,
    read_response,
    round_ratios,
    run_wrk,
    summarize,
)
from bulwark_devstack.testkit import strong_password, unique_name
from bulwark_users.passwords import Passwords
from bulwark_users.settings import UsersSettings

TARGET_RATIO = 0.8
ROUNDS = 5


@dataclass(frozen=True)
class Argon2Params:
    time_cost: int
    memory_cost_kib: int
    parallelism: int
    max_concurrent: int  # users' cap on simultaneous computations; the raw side obeys it too


@dataclass(frozen=True)
class Account:
    username: str
    password: str


@dataclass(frozen=True)
class LoginResult:
    layout: str
    concurrency: int
    users: int
    argon2: Argon2Params
    raw_rounds: list[LoadResult]
    login_rounds: list[LoadResult]
    raw_cpu_ms: float  # CPU per raw verify
    cpu_ms: dict[str, float]  # CPU per login, by process (Linux; empty elsewhere)

    @property
    def raw_verify(self) -> LoadResult:
        return median_run(self.raw_rounds)

    @property
    def login(self) -> LoadResult:
        return median_run(self.login_rounds)

    @property
    def ratios(self) -> list[float]:
        return round_ratios(self.login_rounds, self.raw_rounds)

    @property
    def ratio(self) -> float:
        return median_ratio(self.login_rounds, self.raw_rounds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "concurrency": self.concurrency,
            "users": self.users,
            "argon2": asdict(self.argon2),
            "raw_verify": self.raw_verify.as_dict(),
            "login": self.login.as_dict(),
            "rounds": [
                {"raw_verify": raw.as_dict(), "login": login.as_dict(), "ratio": ratio}
                for raw, login, ratio in zip(
                    self.raw_rounds, self.login_rounds, self.ratios, strict=True
                )
            ],
            "ratio": self.ratio,
            "target_ratio": TARGET_RATIO,
            "raw_cpu_ms_per_verify": self.raw_cpu_ms,
            "cpu_ms_per_login": self.cpu_ms,
        }


def users_argon2_defaults() -> Argon2Params:
    """The parameters the users service runs with when USERS_ARGON2_* are unset (the bench
    stack never sets them), read from its settings so a change there moves the baseline."""
    fields = UsersSettings.model_fields
    return Argon2Params(
        time_cost=int(fields["argon2_time_cost"].default),
        memory_cost_kib=int(fields["argon2_memory_cost_kib"].default),
        parallelism=int(fields["argon2_parallelism"].default),
        max_concurrent=int(fields["argon2_max_concurrent"].get_default(call_default_factory=True)),
    )


def raw_verify(
    passwords: Passwords,
    stored: str,
    password: str,
    concurrency: int,
    warmup: float,
    seconds: float,
) -> tuple[LoadResult, float]:
    """Verify rate of users' own Passwords, `concurrency` threads (argon2-cffi releases the
    GIL, so threads run in parallel as the service's gRPC worker threads do), and the CPU
    milliseconds one verification takes (this process does nothing else meanwhile)."""
    cpu_before = time.process_time()
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + seconds

    stop = threading.Event()  # set on Ctrl-C, so the pool does not run out the clock

    def worker() -> tuple[list[float], int]:
        latencies, done_count = [], 0
        while (began := time.perf_counter()) < stop_at and not stop.is_set():
            if not passwords.verify(stored, password):
                raise RuntimeError("argon2id verification failed for the right password")
            done = time.perf_counter()
            done_count += 1
            if measure_from <= done <= stop_at:
                latencies.append(done - began)
        return latencies, done_count

    with ThreadPoolExecutor(concurrency, thread_name_prefix="argon2") as pool:
        futures = [pool.submit(worker) for _ in range(concurrency)]
        try:
            results = [f.result() for f in futures]
        finally:
            stop.set()
    latencies = [lat for lats, _ in results for lat in lats]
    verifies = sum(n for _, n in results)
    cpu_ms = (time.process_time() - cpu_before) * 1000 / max(verifies, 1)
    return summarize(latencies, seconds, 0), cpu_ms


def register(api_url: str, count: int) -> list[Account]:
    accounts = []
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for _ in range(count):
            name = unique_name("bench")
            account = Account(name, strong_password())
            r = client.post(
                "/v1/users",
                json={
                    "username": name,
                    "email": f"{name}@example.com",
                    "password": account.password,
                },
            )
            if r.status_code != 201:
                raise RuntimeError(f"registration failed: {r.status_code} {r.text}")
            accounts.append(account)
    return accounts


def login_request_body(account: Account) -> bytes:
    return urlencode(
        {"grant_type": "password", "username": account.username, "password": account.password}
    ).encode()


def login_request(netloc: str, account: Account) -> bytes:
    body = login_request_body(account)
    head = (
        f"POST /v1/auth/token HTTP/1.1\r\nHost: {netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def api_logins(
    api_url: str, accounts: list[Account], concurrency: int, seconds: float
) -> LoadResult:
    """`concurrency` keep-alive connections logging in back to back, rotating over the
    accounts. Raw asyncio streams, not an HTTP client library: the client shares the CPUs
    with the stack, and httpx alone would cost about 2 ms of CPU per login."""
    parts = urlsplit(api_url)
    rotation = itertools.cycle([login_request(parts.netloc, a) for a in accounts])
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while (began := time.perf_counter()) < stop_at:
                writer.write(next(rotation))
                status = await read_response(reader)
                done = time.perf_counter()
                if done <= stop_at:
                    latencies.append(done - began)
                    if status != 200:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return summarize(latencies, seconds, errors)


def wrk_script(accounts: list[Account]) -> str:
    """A wrk script that posts the accounts' password grants in turn (wrk is C; it takes
    less CPU from the machine than the asyncio client, as in the edge benchmark)."""
    # Lua long strings: a form-encoded body never contains their closing bracket.
    bodies = ",\n".join(f"[==[{login_request_body(a).decode()}]==]" for a in accounts)
    lua = f"""local bodies = {{
{bodies}
}}
local i = 0
local headers = {{["Content-Type"] = "application/x-www-form-urlencoded"}}
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/v1/auth/token", headers, bodies[i])
end
"""
    return lua


def run_login(
    api_url: str,
    accounts: list[Account],
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    wrk: str | None = None,
    meter: CpuMeter | None = None,
    layout: str = "shared",
    load_cpus: frozenset[int] | None = None,
    raw_cpus: frozenset[int] | None = None,
) -> LoginResult:
    """After a warm-up of logins, ROUNDS rounds of: logins through api, then raw verifies
    with the stack idle; `seconds` in all for each side, split over the rounds.

    `meter` reads the stack's CPU around the login rounds. `load_cpus` / `raw_cpus` place
    the load generator and the raw argon2 threads (None: anywhere); the raw side then
    uses users' default cap on those CPUs, as users does on the CPUs it is given."""
    with pinned(raw_cpus):
        params = users_argon2_defaults()
    passwords = Passwords(
        time_cost=params.time_cost,
        memory_cost_kib=params.memory_cost_kib,
        parallelism=params.parallelism,
        max_concurrent=params.max_concurrent,
    )
    password = strong_password()
    stored = passwords.hash(password)
    with tempfile.TemporaryDirectory(prefix="bulwark-bench-") as tmp:
        script = Path(tmp) / "logins.lua"
        script.write_text(wrk_script(accounts))

        def logins(measure: float) -> LoadResult:
            if wrk is not None:
                return run_wrk(
                    wrk, f"{api_url}/v1/auth/token", {}, concurrency, measure, script=script
                )
            return asyncio.run(api_logins(api_url, accounts, concurrency, measure))

        with pinned(load_cpus):
            logins(warmup)  # opens connections and pools; not counted
        each = seconds / ROUNDS
        raw_rounds, login_rounds, raw_cpu = [], [], []
        for _ in range(ROUNDS):
            with pinned(load_cpus), meter.window() if meter else contextlib.nullcontext():
                login_rounds.append(logins(each))
            with pinned(raw_cpus):
                raw, cpu_ms = raw_verify(passwords, stored, password, concurrency, 0.5, each)
            raw_rounds.append(raw)
            raw_cpu.append(cpu_ms)
    cpu_per_login = meter.per(sum(r.requests for r in login_rounds)) if meter else {}
    return LoginResult(
        layout,
        concurrency,
        len(accounts),
        params,
        raw_rounds,
        login_rounds,
        raw_cpu_ms=statistics.median(raw_cpu),
        cpu_ms=cpu_per_login,
    )
