"""`make soak`: mixed load at ~60 % of the capacity measured just before, for 30 minutes
(2 with --short, as `make test` runs it), on a stack whose dependencies this run owns.
Samples each service's RSS, CPU, open fds and PostgreSQL connections, and p50/p99 per
endpoint over time; writes the raw CSV, PNG plots and summary.json to --out."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bulwark_devstack.faults.harness import OwnedStack, owned_stack
from bulwark_devstack.faults.load import MixedLoad
from bulwark_devstack.soak import report
from bulwark_devstack.soak.sampler import MachineProbe, Sampler

LOAD_FRACTION = 0.6


@dataclass(frozen=True)
class Plan:
    minutes: float
    warmup_s: float
    sample_every_s: float
    window_s: float  # latency percentiles per window of this width
    users: int
    capacity_s: float  # closed-loop run that measures capacity


SHORT = Plan(minutes=2, warmup_s=30, sample_every_s=5, window_s=10, users=20, capacity_s=8)
FULL = Plan(minutes=30, warmup_s=120, sample_every_s=10, window_s=60, users=40, capacity_s=20)


def _error_lines(log_dir: Path, offsets: dict[str, int]) -> list[str]:
    found = []
    for log in sorted(log_dir.glob("*.log")):
        with log.open("rb") as fh:
            fh.seek(offsets.get(log.name, 0))
            for line in fh.read().decode(errors="replace").splitlines():
                if '"level": "ERROR"' in line or line.startswith(("ERROR", "Traceback")):
                    found.append(f"{log.name}: {line[:300]}")
    return found


async def soak(owned: OwnedStack, plan: Plan, out: Path) -> dict[str, Any]:
    api = owned.stack.config.api_url
    # Capacity of this mix: every virtual user in a closed loop (no think time).
    probe = MixedLoad(api, plan.users, think=0, timeout=10)
    await probe.setup()
    await probe.run(plan.capacity_s)
    await probe.close()
    capacity = sum(1 for r in probe.records if r.ok) / plan.capacity_s
    rate = LOAD_FRACTION * capacity
    print(f"soak: capacity {capacity:.0f} req/s; soaking at {rate:.0f} req/s", flush=True)

    load = MixedLoad(api, plan.users, think=plan.users / rate, timeout=10, paced=True)
    load.users = probe.users  # already registered and logged in
    offsets = {p.name: p.stat().st_size for p in owned.log_dir.glob("*.log")}
    databases = {svc: f"bulwark_{svc}" for svc in ("users", "auth", "api")}
    sampler = Sampler(owned.service_pids(), owned.postgres.url, databases)
    began = time.monotonic()
    runner = asyncio.create_task(load.run())
    end = began + plan.minutes * 60
    with MachineProbe() as machine:
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(plan.sample_every_s, end - now))
            await asyncio.to_thread(sampler.sample)
        load.stop()
        await runner
    await load.close()

    errors = _error_lines(owned.log_dir, offsets)
    windows = report.latency_windows(load.records, began, plan.window_s)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    report.write_csv(out / "soak-resources.csv", sampler.samples)
    report.write_csv(out / "soak-latency.csv", windows)
    title = f"{plan.minutes:g} min at {rate:.0f} req/s (60 % of {capacity:.0f})"
    plots = report.plot(out, sampler.samples, windows, title)
    verdicts = report.evaluate(
        sampler.samples,
        load.records,
        began,
        plan.warmup_s,
        len(errors),
        plan.window_s,
        machine.samples,
    )
    summary = {
        "minutes": plan.minutes,
        "capacity_rps": round(capacity, 1),
        "rate_rps": round(rate, 1),
        "achieved_rps": round(len(load.records) / (plan.minutes * 60), 1),
        "requests": len(load.records),
        "verdicts": [asdict(v) for v in verdicts],
        "error_lines": errors[:20],
        "failed_requests": [
            f"{r.op}: {r.status or '-'} {r.kind} at {r.start - began:.0f}s, "
            f"answered after {r.end - r.start:.1f}s"
            for r in load.records
            if r.status >= 500 or r.status == 0
        ][:20],
        "plots": [p.name for p in plots],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def print_summary(summary: dict[str, Any]) -> bool:
    print(
        f"soak: {summary['minutes']:g} min, {summary['requests']} requests, "
        f"{summary['achieved_rps']} req/s (target {summary['rate_rps']}, capacity "
        f"{summary['capacity_rps']})"
    )
    ok = True
    for v in summary["verdicts"]:
        ok &= v["ok"]
        print(f"  {'ok  ' if v['ok'] else 'FAIL'} {v['target']}: {v['detail']}")
    for line in summary["error_lines"] + summary["failed_requests"]:
        print(f"  {line}")
    return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bulwark-soak")
    parser.add_argument("--short", action="store_true", help="the 2-minute form")
    parser.add_argument("--minutes", type=float, help="override the duration")
    parser.add_argument("--out", type=Path, default=Path(".data/soak"))
    args = parser.parse_args(argv)
    plan = SHORT if args.short else FULL
    if args.minutes:
        plan = Plan(args.minutes, *list(asdict(plan).values())[1:])
    work = Path(tempfile.mkdtemp(prefix="bulwark-soak-"))
    try:
        with owned_stack(work) as owned:
            summary = asyncio.run(soak(owned, plan, args.out))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = print_summary(summary)
    print(f"soak: {'all targets met' if ok else 'FAILED'} (CSV and plots in {args.out})")
    raise SystemExit(0 if ok else 1)
