"""Edge hot-path benchmark: api's authenticated read against what it cannot go below.

  a  bare   a FastAPI endpoint answering static JSON (framework + server cost);
  b  floor  the same I/O as a protected read: one pipelined Redis round trip + one PK SELECT;
  c  api    GET /v1/items/{id} of the running api: bearer token verified (cached), revocation
            and per-user rate limit in Redis, the item read with one SELECT, validated output.

Each server is one uvicorn worker; the targets are loaded in turns (ROUNDS rounds, median
kept) with the same generator, request (path shape and Authorization header) and connection
count."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bulwark_devstack.bench.loadgen import LoadGenerator, LoadResult, median_ratio, median_run
from bulwark_devstack.infra import free_port
from bulwark_devstack.stack import Stack

TARGET_API_OVER_FLOOR = 0.7
ROUNDS = 5
TARGETS = {
    "bare": "a  bare FastAPI, static JSON",
    "floor": "b  floor: Redis pipeline + PK SELECT",
    "api": "c  api GET /v1/items/{id}",
}


@dataclass(frozen=True)
class EdgeResult:
    loadgen: str
    connections: int
    results: dict[str, LoadResult]  # each target's median round
    rounds: dict[str, list[LoadResult]]

    def _ratio(self, num: str, den: str) -> float:
        return median_ratio(self.rounds[num], self.rounds[den])

    @property
    def api_over_bare(self) -> float:
        return self._ratio("api", "bare")

    @property
    def api_over_floor(self) -> float:
        return self._ratio("api", "floor")

    def as_dict(self) -> dict[str, Any]:
        return {
            "loadgen": self.loadgen,
            "connections": self.connections,
            "results": {k: v.as_dict() for k, v in self.results.items()},
            "rounds": {k: [r.as_dict() for r in v] for k, v in self.rounds.items()},
            "api_over_bare": self.api_over_bare,
            "api_over_floor": self.api_over_floor,
            "target_api_over_floor": TARGET_API_OVER_FLOOR,
        }


def login_and_create_item(api_url: str, username: str, password: str) -> tuple[str, str]:
    """An access token and the id of an item it owns, made through api itself."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        r = client.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": username, "password": password},
        )
        r.raise_for_status()
        token = str(r.json()["access_token"])
        r = client.post(
            "/v1/items",
            json={"name": "bench item", "description": "read by the edge benchmark"},
            headers={"Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
        return token, str(r.json()["id"])


@contextlib.contextmanager
def reference_server(kind: str, env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """Run `apps <kind>` until the block ends; yield its base URL."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"bench-{kind}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bulwark_devstack.bench.apps", kind, "--port", str(port)],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ok(url: str, headers: Mapping[str, str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, headers=dict(headers), timeout=2)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s: {last}")


def run_edge(
    stack: Stack,
    username: str,
    password: str,
    *,
    loadgen: LoadGenerator,
    warmup: float,
    seconds: float,
) -> EdgeResult:
    token, item_id = login_and_create_item(stack.config.api_url, username, password)
    # Every target gets the same request, bearer header included, so request size is equal.
    headers = {"Authorization": f"Bearer {token}"}
    path = f"/v1/items/{item_id}"
    # floor reads api's settings: same database URL, Redis URL and key prefix.
    api_env = stack.config.environment("api")
    log_dir = stack.config.log_dir or stack.config.data_dir
    results: dict[str, LoadResult] = {}
    with (
        reference_server("bare", api_env, log_dir) as bare,
        reference_server("floor", api_env, log_dir) as floor,
    ):
        bases = {"bare": bare, "floor": floor, "api": stack.config.api_url}
        for name, base in bases.items():
            wait_ok(base + path, headers)
            print(f"  {TARGETS[name]} ...", flush=True)
            # Warm-up opens the pools and fills api's token cache; its numbers are dropped.
            loadgen.run(base + path, headers, warmup)
        # The targets take turns, ROUNDS times, and each keeps its median round: a burst of
        # load from elsewhere on a shared machine then hits all three alike, not one of them.
        rounds: dict[str, list[LoadResult]] = {name: [] for name in bases}
        for _ in range(ROUNDS):
            for name, base in bases.items():
                rounds[name].append(loadgen.run(base + path, headers, seconds / ROUNDS))
        for name, runs in rounds.items():
            results[name] = median_run(runs)
    return EdgeResult(loadgen.describe(), loadgen.connections, results, rounds)
