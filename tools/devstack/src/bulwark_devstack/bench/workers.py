"""api with API_WORKERS=1 and =2: the protected read's rate, and per CPU core.

The 1-worker figure is the edge benchmark's (its median round); api is then restarted with
two workers, measured in as many rounds, and put back to one worker. The load generator
(one wrk thread), PostgreSQL and Redis share the same cores, so on a 2-core machine the
second worker competes with them: the per-core figure is a floor, not a ceiling."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from bulwark_devstack.bench.edge import ROUNDS, EdgeResult
from bulwark_devstack.bench.loadgen import LoadGenerator, LoadResult, median_run
from bulwark_devstack.stack import Stack


@dataclass(frozen=True)
class WorkersResult:
    one: LoadResult
    two: LoadResult
    cpus: int

    @property
    def errors(self) -> int:
        return self.two.errors

    @property
    def per_core(self) -> float:
        return self.two.requests_per_s / min(2, self.cpus)

    def as_dict(self) -> dict[str, Any]:
        return {
            "1": self.one.as_dict(),
            "2": self.two.as_dict(),
            "cpus": self.cpus,
            "per_core_req_s": self.per_core,
            "scaling": self.two.requests_per_s / self.one.requests_per_s,
        }


def _with_workers(stack: Stack, n: int) -> None:
    stack.config.env.setdefault("api", {})["API_WORKERS"] = str(n)
    stack.restart("api", timeout=300)


def run_workers(
    stack: Stack, edge: EdgeResult, *, loadgen: LoadGenerator, seconds: float
) -> WorkersResult:
    url = stack.config.api_url + edge.paths["item"]
    _with_workers(stack, 2)
    try:
        loadgen.run(url, edge.headers, 2)  # warm-up: both workers' pools and token caches
        rounds = [loadgen.run(url, edge.headers, seconds / ROUNDS) for _ in range(ROUNDS)]
    finally:
        _with_workers(stack, 1)
    return WorkersResult(edge.result("item", "api"), median_run(rounds), os.cpu_count() or 1)


def print_workers(w: WorkersResult) -> None:
    print("\napi workers (API_WORKERS), GET /v1/items/{id}")
    print(f"  {'':30} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for label, r in (("1 worker", w.one), ("2 workers", w.two)):
        print(f"  {label:30} {r.requests_per_s:9.0f} {r.p50_ms:9.2f} {r.p99_ms:9.2f}")
    scaling = w.two.requests_per_s / w.one.requests_per_s
    cores = min(2, w.cpus)
    print(f"  2 workers / 1 = {scaling:.2f}x; per core ({cores} cores) = {w.per_core:.0f} req/s")
