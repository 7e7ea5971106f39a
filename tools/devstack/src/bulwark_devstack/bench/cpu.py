"""Where a login's CPU goes, and CPU placement for the dedicated-CPU login run (Linux).

A throughput ratio on shared cores is a CPU-cost ratio: every process of the stack takes its
share from the cores argon2 runs on. Reading each process's CPU time from /proc around the
login rounds shows that share per login, so the ratio explains itself in every run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int, proc: Path = PROC) -> float | None:
    """User + system CPU time of a process (all its threads), or None when it is gone or
    there is no /proc (not Linux)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ")".
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def pids_named(name: str, proc: Path = PROC) -> list[int]:
    """Processes whose command name is `name` (PostgreSQL backends, redis-server)."""
    pids = []
    for entry in proc.glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() == name:
                pids.append(int(entry.name))
        except OSError:
            continue  # exited while we looked
    return pids


class CpuMeter:
    """CPU seconds per label, summed over the measured windows. Labels map to processes
    found at each window's start (PostgreSQL forks a backend per connection)."""

    def __init__(self, find: Mapping[str, list[int] | str]) -> None:
        # A label's value: its pids, or a command name looked up at each window.
        self._find = find
        self.seconds: dict[str, float] = dict.fromkeys(find, 0.0)
        self._found: set[str] = set()

    def _pids(self) -> dict[str, list[int]]:
        return {
            label: pids_named(how) if isinstance(how, str) else list(how)
            for label, how in self._find.items()
        }

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        pids = self._pids()
        self._found.update(label for label, ps in pids.items() if ps)
        before = {label: _total(ps) for label, ps in pids.items()}
        yield
        for label, ps in pids.items():
            self.seconds[label] += _total(ps) - before[label]

    def per(self, count: int) -> dict[str, float]:
        """Milliseconds per unit of work; labels with no process found are left out."""
        if not count:
            return {}
        return {
            label: s * 1000 / count for label, s in self.seconds.items() if label in self._found
        }


def _total(pids: list[int]) -> float:
    return sum(s for pid in pids if (s := cpu_seconds(pid)) is not None)


@dataclass(frozen=True)
class Split:
    """The CPUs users gets to itself, and the CPUs for everything else we start."""

    users: frozenset[int]
    rest: frozenset[int]

    def describe(self) -> str:
        return (
            f"users on CPU {_cpus(self.users)}, api and auth and the load on CPU {_cpus(self.rest)}"
        )


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def split_cpus() -> Split | None:
    """Upper half of our CPUs for users, the rest for api, auth and the load generator; None
    where CPU affinity is unavailable (not Linux) or there is only one CPU."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return Split(users=frozenset(cpus[half:]), rest=frozenset(cpus[:half]))


@contextlib.contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the block on `cpus` only (None: unchanged). The mask belongs to the calling
    thread, and threads and processes started from it inherit it: that is how the
    services, wrk and the raw argon2 threads are placed."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
