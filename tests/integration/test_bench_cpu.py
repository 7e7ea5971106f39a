"""The bench's CPU accounting and placement (bulwark_devstack.bench.cpu)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from bulwark_devstack.bench.cpu import CpuMeter, cpu_seconds, pids_named, pinned, split_cpus

linux = pytest.mark.skipif(sys.platform != "linux", reason="/proc and CPU affinity are Linux")


def test_cpu_seconds_reads_utime_and_stime_after_a_name_with_spaces(tmp_path: Path) -> None:
    proc = tmp_path / "42"
    proc.mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    # comm "(a b) c)" has spaces and a parenthesis; utime 3*ticks, stime 1*ticks.
    fields = ["S"] + ["0"] * 10 + [str(3 * ticks), str(ticks)] + ["0"] * 30
    (proc / "stat").write_text(f"42 (a b) c) {' '.join(fields)}\n")
    assert cpu_seconds(42, proc=tmp_path) == pytest.approx(4.0)
    assert cpu_seconds(43, proc=tmp_path) is None


def test_pids_named_matches_the_whole_command_name(tmp_path: Path) -> None:
    for pid, comm in ((10, "postgres"), (11, "postgres-x"), (12, "redis-server")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
    assert pids_named("postgres", proc=tmp_path) == [10]


@linux
def test_meter_counts_this_process_cpu_only_inside_windows() -> None:
    meter = CpuMeter({"me": [os.getpid()], "nobody": "no-such-process-name"})
    with meter.window():
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    time.sleep(0)  # outside a window: not counted
    per = meter.per(3)
    assert set(per) == {"me"}  # a label with no process is left out
    assert 80 <= per["me"] <= 200  # ~0.3 s over 3 units, in ms (ticks are coarse)


@linux
def test_split_and_pinning_place_the_calling_thread_and_restore_it() -> None:
    before = os.sched_getaffinity(0)
    split = split_cpus()
    if len(before) < 2:
        assert split is None
        return
    assert split is not None
    assert split.users and split.rest and not split.users & split.rest
    assert split.users | split.rest == before
    with pinned(split.users):
        assert os.sched_getaffinity(0) == split.users
    assert os.sched_getaffinity(0) == before
