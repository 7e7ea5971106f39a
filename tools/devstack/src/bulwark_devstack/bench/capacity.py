"""Latency at a share of capacity, and memory: what an operator sizes a deployment with.

Capacity is what the throughput runs measured (the protected read's and the login's median
rounds). Here the load is paced to 50 % and 90 % of it (wrk's per-connection `delay`, or
the asyncio generator's pause), so the latencies are those of a server with headroom, not of
a saturated queue. Each service's resident memory (VmRSS) is read idle (started and ready,
before any load of the bench) and at its highest during the paced runs."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bulwark_devstack.bench.loadgen import LoadGenerator, LoadResult, paced, run_wrk, wrk_lua
from bulwark_devstack.bench.login import Account, wrk_script

SHARES = (0.5, 0.9)


def rss_mib(pid: int) -> float | None:
    """Resident set size of a process in MiB (Linux /proc), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class PeakRss:
    """The highest RSS of each process while the block runs (sampled every 0.2 s)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.peak: dict[str, float] = {}

    @contextmanager
    def watch(self) -> Iterator[None]:
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                for name, pid in self.pids.items():
                    if (mib := rss_mib(pid)) is not None:
                        self.peak[name] = max(self.peak.get(name, 0.0), mib)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


@dataclass(frozen=True)
class Paced:
    share: float
    target_per_s: float
    result: LoadResult

    def as_dict(self) -> dict[str, Any]:
        return {"share": self.share, "target_per_s": self.target_per_s, **asdict(self.result)}


@dataclass(frozen=True)
class CapacityResult:
    read_capacity: float
    login_capacity: float
    read: list[Paced]
    login: list[Paced]
    rss_idle_mib: dict[str, float]
    rss_load_mib: dict[str, float]

    @property
    def errors(self) -> int:
        return sum(p.result.errors for p in [*self.read, *self.login])

    def as_dict(self) -> dict[str, Any]:
        return {
            "read_capacity_per_s": self.read_capacity,
            "login_capacity_per_s": self.login_capacity,
            "read": [p.as_dict() for p in self.read],
            "login": [p.as_dict() for p in self.login],
            "rss_idle_mib": self.rss_idle_mib,
            "rss_under_load_mib": self.rss_load_mib,
        }


def run_capacity(
    *,
    api_url: str,
    read_path: str,
    headers: Mapping[str, str],
    accounts: list[Account],
    read_capacity: float,
    login_capacity: float,
    login_concurrency: int,
    loadgen: LoadGenerator,
    seconds: float,
    pids: Mapping[str, int],
    idle: Mapping[str, float],
) -> CapacityResult:
    """`idle`: each service's RSS right after start, before any load (`rss_of`)."""
    peak = PeakRss(pids)
    read: list[Paced] = []
    login: list[Paced] = []
    with peak.watch():
        for share in SHARES:
            rate = share * read_capacity
            result = loadgen.run(api_url + read_path, headers, seconds, rate=rate)
            read.append(Paced(share, rate, result))
        if loadgen.wrk is not None:
            with tempfile.TemporaryDirectory(prefix="bulwark-bench-") as tmp:
                wrk, script = loadgen.wrk, Path(tmp) / "logins.lua"
                for share in SHARES:
                    rate = share * login_capacity

                    def once(answer_ms: float, duration: float, rate: float = rate) -> LoadResult:
                        pause = wrk_lua(None, rate, login_concurrency, answer_ms)
                        script.write_text(wrk_script(accounts) + pause)
                        return run_wrk(
                            wrk,
                            f"{api_url}/v1/auth/token",
                            {},
                            login_concurrency,
                            duration,
                            script=script,
                        )

                    login.append(Paced(share, rate, paced(once, rate, login_concurrency, seconds)))
    return CapacityResult(read_capacity, login_capacity, read, login, dict(idle), peak.peak)


def rss_of(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: mib for name, pid in pids.items() if (mib := rss_mib(pid)) is not None}


def print_capacity(cap: CapacityResult) -> None:
    print("\nLatency at a share of measured capacity (paced load), and memory")
    print(f"  {'':46} {'target/s':>9} {'got/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    rows = [("GET /v1/items/{id}", p) for p in cap.read]
    rows += [("POST /v1/auth/token (login)", p) for p in cap.login]
    for label, p in rows:
        r = p.result
        name = f"{label} at {p.share:.0%} of {_capacity(cap, label):.0f}/s"
        print(
            f"  {name:46} {p.target_per_s:9.0f} {r.requests_per_s:9.0f} "
            f"{r.p50_ms:9.2f} {r.p99_ms:9.2f}"
        )
    if not cap.login:
        print("  (paced logins need wrk: apt-get install wrk)")
    for p in cap.read[1:]:
        base = cap.read[0].result
        print(f"  read p99 at 90 % / at 50 % = {p.result.p99_ms / max(base.p99_ms, 1e-9):.2f}x")
    print(f"  {'RSS MiB':24} {'idle':>9} {'under load':>11} {'ratio':>7}")
    for name, idle in cap.rss_idle_mib.items():
        load = cap.rss_load_mib.get(name, idle)
        print(f"  {name:24} {idle:9.1f} {load:11.1f} {load / idle:6.2f}x")


def _capacity(cap: CapacityResult, label: str) -> float:
    return cap.login_capacity if "login" in label else cap.read_capacity
