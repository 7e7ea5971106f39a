"""Edge benchmark: each of api's hot endpoints against its raw-driver floor (bench/raw.py,
bench/rawgrpc.py): the same Redis pipeline and SQL (or gRPC hop) through the fastest
maintained drivers, same FastAPI and uvicorn options, nothing else.

  GET /v1/items/{id}      a bare FastAPI (static JSON), the raw floor, api
  GET /v1/items?limit=20  the raw floor (keyset page), api
  GET /v1/users/me        the gRPC floor (pipeline + one grpc.aio call over mTLS to a
                          minimal grpc.aio server doing one PK SELECT), api (-> users)
  POST /v1/items          the raw floor (one INSERT), api
  GET /v1/items/{id}      the raw floor, api, with an API key (bwk_...) instead of a JWT:
                          one Redis script checks the key (issue 14's cost bound)

Each server is one uvicorn worker; per endpoint the targets take turns (ROUNDS rounds) with
the same generator, request (path, body, Authorization header) and connection count, and
every ratio is the median of per-round ratios."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bulwark_devstack.bench.loadgen import LoadGenerator, LoadResult, median_ratio, median_run
from bulwark_devstack.bench.raw import OWNER_HEADER
from bulwark_devstack.infra import free_port
from bulwark_devstack.stack import Stack

ROUNDS = 5
PAGE_ITEMS = 25  # more than one page of 20
CREATE_BODY = json.dumps({"name": "bench item", "description": "written by make bench"}).encode()


@dataclass(frozen=True)
class Endpoint:
    key: str
    label: str
    ratio_label: str  # printed as `<ratio_label> = 0.NN`
    target: float  # the ratio api / floor should reach (README: why these)
    floor_label: str


ENDPOINTS = {
    "item": Endpoint(
        "item",
        "GET /v1/items/{id} (protected read)",
        "c/raw-floor",
        0.70,
        "raw floor: hiredis pipeline + asyncpg PK SELECT",
    ),
    "list": Endpoint(
        "list",
        "GET /v1/items?limit=20 (keyset page)",
        "list/raw-floor",
        0.70,
        "raw floor: hiredis pipeline + asyncpg page SELECT",
    ),
    "me": Endpoint(
        "me",
        "GET /v1/users/me (gRPC hop to users)",
        "users-me/grpc-floor",
        0.60,
        "gRPC floor: pipeline + grpc.aio mTLS + asyncpg",
    ),
    "create": Endpoint(
        "create",
        "POST /v1/items",
        "create/raw-floor",
        0.50,
        "raw floor: hiredis pipeline + asyncpg INSERT",
    ),
    "key": Endpoint(
        "key",
        "GET /v1/items/{id} with an API key",
        "key-read/raw-floor",
        0.70,  # as a JWT read: a key costs one Redis script instead of the JWT's pipeline
        "raw floor: hiredis pipeline + asyncpg PK SELECT",
    ),
}
P99_TARGET = 1.5  # api's p99 at most this many times the floor's (protected read)


@dataclass(frozen=True)
class EdgeResult:
    loadgen: str
    connections: int
    rounds: dict[str, dict[str, list[LoadResult]]]  # endpoint -> target -> rounds
    paths: dict[str, str]  # endpoint -> request path
    headers: dict[str, str]  # what every request carries (the "key" endpoint: its own bearer)

    @property
    def errors(self) -> int:
        return sum(r.errors for t in self.rounds.values() for rs in t.values() for r in rs)

    def result(self, endpoint: str, target: str) -> LoadResult:
        return median_run(self.rounds[endpoint][target])

    def ratio(self, endpoint: str, num: str = "api", den: str = "floor") -> float:
        return median_ratio(self.rounds[endpoint][num], self.rounds[endpoint][den])

    def p99_ratio(self, endpoint: str) -> float:
        return self.result(endpoint, "api").p99_ms / max(
            self.result(endpoint, "floor").p99_ms, 1e-9
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loadgen": self.loadgen, "connections": self.connections}
        for key, targets in self.rounds.items():
            ep = ENDPOINTS[key]
            out[key] = {
                "label": ep.label,
                "results": {t: median_run(r).as_dict() for t, r in targets.items()},
                "rounds": {t: [x.as_dict() for x in r] for t, r in targets.items()},
                "api_over_floor": self.ratio(key),
                "target_api_over_floor": ep.target,
                "p99_api_over_floor": self.p99_ratio(key),
            }
        out["item"]["api_over_bare"] = self.ratio("item", "api", "bare")
        out["item"]["target_p99_api_over_floor"] = P99_TARGET
        return out


def login_and_create_item(api_url: str, username: str, password: str) -> tuple[str, str, str]:
    """An access token, its subject, and the id of an item it owns (plus a page's worth
    more for the list), made through api itself."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        r = client.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": username, "password": password},
        )
        r.raise_for_status()
        token = str(r.json()["access_token"])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        ids = []
        for _ in range(PAGE_ITEMS):
            r = client.post("/v1/items", content=CREATE_BODY, headers=headers)
            r.raise_for_status()
            ids.append(str(r.json()["id"]))
        me = client.get("/v1/users/me", headers=headers)
        me.raise_for_status()
        return token, str(me.json()["id"]), ids[0]


def create_api_key(api_url: str, token: str) -> str:
    """A read-only API key of the bench user's (made with its access token)."""
    body = {"name": "bench", "scopes": ["items:read"], "expires_in_days": 1}
    r = httpx.post(
        f"{api_url}/v1/users/me/api-keys",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    r.raise_for_status()
    return str(r.json()["key"])


@contextlib.contextmanager
def reference_server(
    name: str, args: list[str], env: Mapping[str, str], log_dir: Path
) -> Iterator[int]:
    """Run `python -m <args> --port N` until the block ends; yield N."""
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"bench-{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args, "--port", str(port)],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ok(url: str, headers: Mapping[str, str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, headers=dict(headers), timeout=5)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s: {last}")


def run_edge(
    stack: Stack,
    username: str,
    password: str,
    *,
    loadgen: LoadGenerator,
    warmup: float,
    seconds: float,
    endpoints: list[str] | None = None,
) -> EdgeResult:
    token, user_id, item_id = login_and_create_item(stack.config.api_url, username, password)
    # Every target gets the same request: bearer header included (the floors ignore it and
    # take the owner from their own header), so request sizes are equal.
    headers = {"Authorization": f"Bearer {token}", OWNER_HEADER: user_id}
    key_headers = {
        **headers,
        "Authorization": f"Bearer {create_api_key(stack.config.api_url, token)}",
    }
    paths = {
        "item": f"/v1/items/{item_id}",
        "list": "/v1/items?limit=20",
        "me": "/v1/users/me",
        "create": "/v1/items",
        "key": f"/v1/items/{item_id}",
    }
    api_env = stack.config.environment("api")
    log_dir = stack.config.log_dir or stack.config.data_dir
    bench = "bulwark_devstack.bench"
    with contextlib.ExitStack() as servers:

        def start(name: str, args: list[str], env: Mapping[str, str]) -> str:
            port = servers.enter_context(reference_server(name, args, env, log_dir))
            return f"http://127.0.0.1:{port}"

        bare = start("bare", [f"{bench}.apps", "bare"], api_env)
        raw = start("raw-items", [f"{bench}.raw", "items"], api_env)
        grpc_port = servers.enter_context(
            reference_server(
                "raw-users-grpc",
                [f"{bench}.raw", "users-grpc"],
                stack.config.environment("users"),
                log_dir,
            )
        )
        me_env = {**api_env, "BENCH_GRPC_TARGET": f"127.0.0.1:{grpc_port}"}
        raw_me = start("raw-me", [f"{bench}.raw", "me"], me_env)
        api = stack.config.api_url
        plan: dict[str, dict[str, str]] = {
            "item": {"bare": bare, "floor": raw, "api": api},
            "list": {"floor": raw, "api": api},
            "me": {"floor": raw_me, "api": api},
            "create": {"floor": raw, "api": api},
            "key": {"floor": raw, "api": api},
        }
        rounds: dict[str, dict[str, list[LoadResult]]] = {}
        for key in endpoints or list(plan):
            targets, path = plan[key], paths[key]
            body = CREATE_BODY if key == "create" else None
            sent = key_headers if key == "key" else headers
            print(f"  {ENDPOINTS[key].label} ...", flush=True)
            for base in targets.values():
                if body is None:
                    wait_ok(base + path, sent)
                # Warm-up opens the pools and fills api's token cache; not counted.
                loadgen.run(base + path, sent, warmup, body=body)
            # Turns, ROUNDS times: a burst of load from elsewhere on a shared machine then
            # hits every target alike, not one of them.
            rounds[key] = {name: [] for name in targets}
            for _ in range(ROUNDS):
                for name, base in targets.items():
                    result = loadgen.run(base + path, sent, seconds / ROUNDS, body=body)
                    rounds[key][name].append(result)
    return EdgeResult(
        loadgen.describe(),
        loadgen.connections,
        rounds,
        paths,
        headers,
    )


def print_edge(edge: EdgeResult, verdict: Any) -> None:
    print(f"\nEdge hot paths, {edge.loadgen}, one uvicorn worker each, {ROUNDS} rounds in turn")
    print(f"  {'':58} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for key in edge.rounds:
        ep = ENDPOINTS[key]
        print(f"  {ep.label}")
        labels = {"bare": "a  bare FastAPI, static JSON", "floor": ep.floor_label, "api": "c  api"}
        for name in edge.rounds[key]:
            r = edge.result(key, name)
            print(f"    {labels[name]:56} {r.requests_per_s:9.0f} {r.p50_ms:9.2f} {r.p99_ms:9.2f}")
        if key == "item":
            print(f"    c/a = {edge.ratio('item', 'api', 'bare'):.2f}")
        ratio = edge.ratio(key)
        print(f"    {ep.ratio_label} = {ratio:.2f}   ({verdict(ratio, ep.target)})")
        rounds = ", ".join(
            f"{n.requests_per_s / d.requests_per_s:.2f}"
            for n, d in zip(edge.rounds[key]["api"], edge.rounds[key]["floor"], strict=True)
        )
        print(f"    (per round: {rounds})")
        if key == "item":
            p99 = edge.p99_ratio(key)
            met = "met" if p99 <= P99_TARGET else "ABOVE"
            print(f"    p99 api / floor = {p99:.2f}x   (target <= {P99_TARGET:.2f}x: {met})")
