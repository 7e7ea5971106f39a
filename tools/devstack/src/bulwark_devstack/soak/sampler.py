"""Resource samples of the service processes, read from /proc (RSS, CPU, open file
descriptors), and their PostgreSQL connections (pg_stat_activity per database)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass

import psycopg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the soak started
    service: str
    rss_mb: float
    cpu_pct: float  # of one core, since the previous sample
    fds: int
    db_connections: int


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        # Fields after the command name (which may hold spaces): utime, stime are 14, 15.
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def db_connections(admin_url: str) -> dict[str, int]:
    """Connections per database (what pg_stat_activity shows right now)."""
    with psycopg.connect(admin_url, connect_timeout=3) as conn:
        rows = conn.execute(
            "SELECT datname, count(*) FROM pg_stat_activity WHERE datname IS NOT NULL "
            "GROUP BY datname"
        ).fetchall()
    return {str(name): int(n) for name, n in rows}


class Sampler:
    """`sample()` every few seconds; CPU is the share of one core since the last call."""

    def __init__(self, pids: dict[str, int], admin_url: str, databases: dict[str, str]) -> None:
        self.pids = pids
        self.admin_url = admin_url
        self.databases = databases  # service -> database name
        self.began = time.monotonic()
        self._last = {svc: (time.monotonic(), _cpu_seconds(pid)) for svc, pid in pids.items()}
        self.samples: list[Sample] = []

    def sample(self) -> list[Sample]:
        conns = db_connections(self.admin_url)
        now = time.monotonic()
        out = []
        for svc, pid in self.pids.items():
            cpu = _cpu_seconds(pid)
            t0, c0 = self._last[svc]
            self._last[svc] = (now, cpu)
            out.append(
                Sample(
                    t=round(now - self.began, 1),
                    service=svc,
                    rss_mb=round(_rss_mb(pid), 2),
                    cpu_pct=round(100 * (cpu - c0) / max(now - t0, 1e-6), 1),
                    fds=_fds(pid),
                    db_connections=conns.get(self.databases.get(svc, ""), 0),
                )
            )
        self.samples.extend(out)
        return out


PROBE_DATA = bytes(1 << 20)  # hashing it is ~1 ms of one core (hashlib lets go of the GIL)


class MachineProbe:
    """Times a fixed piece of CPU work every `every` seconds in its own thread: the speed of
    this shared VM as a process here sees it. The soak's own load is steady, so a change
    between the thirds of a run is a neighbour's (or the host's), not the services'."""

    def __init__(self, every: float = 0.25) -> None:
        self.every = every
        self.samples: list[tuple[float, float]] = []  # (time.monotonic(), seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="machine-probe", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            start = time.perf_counter()
            hashlib.sha256(PROBE_DATA).digest()
            self.samples.append((time.monotonic(), time.perf_counter() - start))

    def __enter__(self) -> MachineProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
