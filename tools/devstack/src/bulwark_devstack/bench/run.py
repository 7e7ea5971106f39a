"""`make bench`: one private stack, both benchmarks, a table and `.data/bench/results.json`.

Environment:
  BENCH_QUICK=1            a short run (3 s per target, 1 s warm-up, no dedicated-CPU
                           login run): a smoke test of the bench, not numbers to quote
  BENCH_SECONDS            measured seconds per target, split over alternating rounds
                           (default 10; the login rounds get twice as long, see below)
  BENCH_WARMUP_SECONDS     warm-up seconds before each run, not counted (default 2)
  BENCH_CONCURRENCY        concurrent logins and argon2 threads (default: 2 x CPU count,
                           enough to keep every core busy: logins/s is a throughput)
  BENCH_CONNECTIONS        keep-alive connections of the edge load (default 16)
  BENCH_USERS              accounts the logins rotate over (default 8)
  BENCH_LOADGEN=python     use the asyncio generator even when wrk is installed
  BULWARK_TEST_POSTGRES_URL / BULWARK_TEST_REDIS_URL   as for `make test` (PostgreSQL is
                           required: Vault's dynamic users; without a Redis a private one).
The stack runs as deployed: a private OpenBao, every secret from it, mTLS between services.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from bulwark_devstack import infra, vault
from bulwark_devstack.bench.capacity import (
    CapacityResult,
    print_capacity,
    rss_of,
    run_capacity,
)
from bulwark_devstack.bench.cpu import CpuMeter, Split, pinned, split_cpus
from bulwark_devstack.bench.edge import EdgeResult, print_edge, run_edge
from bulwark_devstack.bench.loadgen import WRK_HINT, LoadGenerator
from bulwark_devstack.bench.login import ROUNDS as LOGIN_ROUNDS
from bulwark_devstack.bench.login import TARGET_RATIO, LoginResult, register, run_login
from bulwark_devstack.bench.workers import WorkersResult, print_workers, run_workers
from bulwark_devstack.stack import SERVICES, Stack, StackConfig

# Limits high enough never to answer 429 during a run. Nothing else is weakened: argon2,
# backoff and revocation run as configured (backoff never triggers: every login is right).
HIGH_RATE = "100000000/minute"
STACK_ENV = {
    "api": {
        "API_TOKEN_RATE": HIGH_RATE,
        "API_REGISTER_RATE": HIGH_RATE,
        "API_USER_RATE": HIGH_RATE,
        "API_API_KEY_RATE": HIGH_RATE,
    }
}
# Generous: on a loaded shared machine three Python services can take minutes to start.
READY_TIMEOUT = 300
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Options:
    seconds: float
    warmup: float
    concurrency: int
    connections: int
    users: int
    force_python_loadgen: bool
    quick: bool

    @classmethod
    def from_env(cls) -> Options:
        def number(name: str, default: float) -> float:
            raw = os.environ.get(name)
            try:
                value = float(raw) if raw else default
            except ValueError:
                raise SystemExit(f"make bench: {name} must be a number") from None
            if value <= 0:
                raise SystemExit(f"make bench: {name} must be positive")
            return value

        quick = os.environ.get("BENCH_QUICK") == "1"
        return cls(
            seconds=number("BENCH_SECONDS", 3 if quick else 10),
            warmup=number("BENCH_WARMUP_SECONDS", 1 if quick else 2),
            # Twice the cores: a login waits on network hops between its CPU bursts, so with
            # one per core the cores idle and the run measures latency, not throughput. The
            # raw argon2 rate is the same at either concurrency (the cores are the limit).
            concurrency=int(number("BENCH_CONCURRENCY", 2 * (os.cpu_count() or 2))),
            connections=int(number("BENCH_CONNECTIONS", 16)),
            users=int(number("BENCH_USERS", 8)),
            force_python_loadgen=os.environ.get("BENCH_LOADGEN") == "python",
            quick=quick,
        )


class _Cleanup(contextlib.ExitStack):
    """An ExitStack that a second Ctrl-C cannot cut short: processes and temporary
    databases are always released."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return super().__exit__(exc_type, exc, tb)
        finally:
            signal.signal(signal.SIGINT, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    options = Options.from_env()
    out = Path(os.environ.get("BULWARK_DATA_DIR", ".data")) / "bench" / "results.json"
    try:
        results = run(options)
    except KeyboardInterrupt:
        print("\nmake bench: interrupted; processes and temporary databases removed", flush=True)
        raise SystemExit(130) from None
    except infra.MissingDependency as exc:
        print(f"make bench: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults: {out}")
    if results["errors"]:
        print(f"make bench: {results['errors']} failed requests: numbers are not valid")
        raise SystemExit(1)


def run(options: Options) -> dict[str, Any]:
    loadgen = LoadGenerator(options.connections, force_python=options.force_python_loadgen)
    if loadgen.wrk is None and not options.force_python_loadgen:
        print(WRK_HINT, flush=True)
    with _Cleanup() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bulwark-bench-")))
        redis_url, redis_note = _redis(cleanup, tmp)
        database_urls, db_note = _databases(cleanup)
        run_id = uuid.uuid4().hex[:8]
        prefix = f"bench:{run_id}:"
        # As deployed: every secret from Vault, mTLS on every gRPC hop. A Vault prefix of
        # its own: tearing down drops its Redis ACL users by name, on a Redis other runs and
        # stacks may share.
        server = cleanup.enter_context(vault.dev_server(tmp / "bao"))
        deployment = cleanup.enter_context(
            vault.deployment(
                server, f"bench{run_id}", "bench", database_urls, redis_url, prefix, tmp / "vault"
            )
        )
        config = StackConfig(
            data_dir=tmp / "data",
            redis_url=redis_url,
            redis_prefix=prefix,
            database_urls=dict(database_urls),
            env={svc: dict(values) for svc, values in STACK_ENV.items()},
            log_dir=tmp / "logs",
            vault=deployment,
        )
        stack = Stack(config)
        cleanup.callback(infra.drop_prefix, redis_url, prefix)
        cleanup.callback(stack.stop_all)
        print(f"starting users, auth, api ({db_note}, Redis {redis_note}, mTLS) ...", flush=True)
        stack.provision_keys()
        stack.start_all()
        stack.wait_ready(timeout=READY_TIMEOUT)
        idle_rss = rss_of({svc: p.pid for svc, p in stack.procs.items()})
        try:
            # A login costs ~100x an edge read: longer rounds, so each holds hundreds.
            login_seconds = 2 * options.seconds
            print(
                f"login: {options.concurrency} concurrent ({loadgen.name}), {options.warmup:g} s "
                f"warm-up, then {LOGIN_ROUNDS} rounds of api logins and raw argon2id, "
                f"{login_seconds:g} s each in all ...",
                flush=True,
            )
            accounts = register(config.api_url, options.users)

            def logins(layout: str, split: Split | None = None) -> LoginResult:
                return run_login(
                    config.api_url,
                    accounts,
                    concurrency=options.concurrency,
                    warmup=options.warmup,
                    seconds=login_seconds,
                    wrk=loadgen.wrk,
                    meter=_meter(stack, postgres=bool(database_urls)),
                    layout=layout,
                    load_cpus=split.rest if split else None,
                    raw_cpus=split.users if split else None,
                )

            login = logins(f"shared: every process on all {os.cpu_count()} CPUs")
            print(f"edge: {loadgen.describe()}, {options.seconds:g} s per target ...", flush=True)
            edge = run_edge(
                stack,
                accounts[0].username,
                accounts[0].password,
                loadgen=loadgen,
                warmup=options.warmup,
                seconds=options.seconds,
            )
            print("latency at 50 % and 90 % of capacity, RSS ...", flush=True)
            capacity = run_capacity(
                api_url=config.api_url,
                read_path=edge.paths["item"],
                headers=edge.headers,
                accounts=accounts,
                read_capacity=edge.result("item", "api").requests_per_s,
                login_capacity=login.login.requests_per_s,
                login_concurrency=options.concurrency,
                loadgen=loadgen,
                seconds=options.seconds,
                pids={svc: p.pid for svc, p in stack.procs.items()},
                idle=idle_rss,
            )
            print("api with 1 and 2 workers ...", flush=True)
            workers = run_workers(stack, edge, loadgen=loadgen, seconds=options.seconds)
            dedicated = None
            if not options.quick and (split := split_cpus()) is not None:
                print(f"login again, {split.describe()} ...", flush=True)
                _place(stack, split)
                dedicated = logins(split.describe(), split)
        except Exception:
            _print_logs(config.log_dir)
            raise
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "database": db_note,
        "seconds": options.seconds,
        "warmup_seconds": options.warmup,
        "login": login.as_dict(),
        "login_users_own_cpus": dedicated.as_dict() if dedicated else None,
        "edge": edge.as_dict(),
        "capacity": capacity.as_dict(),
        "workers": workers.as_dict(),
        "errors": login.login.errors
        + (dedicated.login.errors if dedicated else 0)
        + edge.errors
        + capacity.errors
        + workers.errors,
    }
    print_table(login, dedicated, edge, capacity, workers, options, db_note)
    return report


def _meter(stack: Stack, *, postgres: bool) -> CpuMeter:
    """The stack's processes, and the local PostgreSQL and Redis servers found by name."""
    find: dict[str, list[int] | str] = {svc: [p.pid] for svc, p in stack.procs.items()}
    if postgres:
        find["PostgreSQL"] = "postgres"
    find["Redis"] = "redis-server"
    return CpuMeter(find)


def _place(stack: Stack, split: Split) -> None:
    """Restart the services on their CPUs: a process inherits the mask of the thread that
    starts it, and users sizes its argon2 cap from the CPUs it finds (as under a
    Kubernetes CPU limit). PostgreSQL and Redis are not ours to move: they stay anywhere."""
    for svc in reversed(SERVICES):
        stack.stop(svc)
    for svc in SERVICES:
        with pinned(split.users if svc == "users" else split.rest):
            stack.start(svc)
    stack.wait_ready(timeout=READY_TIMEOUT)


def _redis(cleanup: contextlib.ExitStack, tmp: Path) -> tuple[str, str]:
    url = os.environ.get("BULWARK_TEST_REDIS_URL", DEFAULT_REDIS)
    try:
        infra.require_redis(url)
        return url, url
    except infra.MissingDependency:
        return cleanup.enter_context(infra.private_redis(tmp / "redis")), "private"


def _databases(cleanup: contextlib.ExitStack) -> tuple[dict[str, str], str]:
    """Fresh PostgreSQL databases, as in production (Vault's dynamic users need them)."""
    admin = os.environ.get("BULWARK_TEST_POSTGRES_URL", DEFAULT_PG)
    infra.require_postgres(admin)
    urls: dict[str, str] = {
        svc: cleanup.enter_context(infra.temporary_database(admin, prefix="bulwark_bench"))
        for svc in SERVICES
    }
    return urls, "PostgreSQL"


def _print_logs(log_dir: Path | None, lines: int = 20) -> None:
    if log_dir is None:
        return
    for log in sorted(log_dir.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log.name} ---\n" + "\n".join(tail), file=sys.stderr)


def _print_login(login: LoginResult) -> None:
    a = login.argon2
    print(f"  {login.layout}")
    raw_label = (
        f"raw argon2id verify (t={a.time_cost}, m={a.memory_cost_kib} KiB, p={a.parallelism}, "
        f"{a.max_concurrent} at once)"
    )
    for label, r in (
        (raw_label, login.raw_verify),
        ("POST /v1/auth/token password grant via api", login.login),
    ):
        print(f"  {label:56} {r.requests_per_s:9.1f} {r.p50_ms:9.1f} {r.p99_ms:9.1f}")
    rounds = ", ".join(f"{r:.2f}" for r in login.ratios)
    print(f"  login / raw = {login.ratio:.2f}   ({_verdict(login.ratio, TARGET_RATIO)})")
    print(f"  (median of per-round ratios: {rounds})")
    if login.cpu_ms:
        parts = " + ".join(f"{name} {ms:.1f}" for name, ms in login.cpu_ms.items())
        total = sum(login.cpu_ms.values())
        print(
            f"  CPU ms per login: {parts} = {total:.1f}  (one raw verify: {login.raw_cpu_ms:.1f})\n"
        )


def _verdict(value: float, target: float) -> str:
    return f"target >= {target:.2f}: {'met' if value >= target else 'BELOW'}"


def print_table(
    login: LoginResult,
    dedicated: LoginResult | None,
    edge: EdgeResult,
    capacity: CapacityResult,
    workers: WorkersResult,
    options: Options,
    db_note: str,
) -> None:
    print(
        f"\nBulwark benchmarks: {os.cpu_count()} CPUs, {db_note}, "
        f"{options.seconds:g} s measured after {options.warmup:g} s warm-up\n"
    )
    print(f"Login (identity), {login.concurrency} concurrent, {login.users} users rotating")
    print(f"  {'':56} {'per s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    _print_login(login)
    if dedicated is None:
        print("  (users on CPUs of its own: skipped, needs Linux and 2 or more CPUs)")
    else:
        _print_login(dedicated)

    print_edge(edge, _verdict)
    print_capacity(capacity)
    print_workers(workers)
