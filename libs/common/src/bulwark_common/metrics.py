"""Every Prometheus metric Bulwark exposes, in one place (prometheus-client; docs/metrics.md
lists them with the ports that serve them and the reasons for the library).

Labels carry only bounded, non-identifying values: route templates, gRPC method names,
status codes, reasons and limit names. Never a user id, username, address or token.

With several worker processes (PROMETHEUS_MULTIPROC_DIR set before this module is first
imported), values live in files in that directory and every scrape adds up all processes;
`prepare_multiprocess_dir` empties it when the server starts."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):
    # prometheus_client decides single or multi-process when it is imported: the directory
    # must exist by then (in containers only /tmp is writable).
    Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)

from prometheus_client import (  # noqa: E402 (after the directory exists)
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

# Seconds. Requests range from sub-millisecond (a cached token, a Redis hit) to the
# hundreds of milliseconds of an argon2id login, and a deadline of 2 s.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Redis round trips: tens of microseconds locally, milliseconds over a network.
ROUNDTRIP_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
# argon2id: one computation takes ~20-200 ms; waiting for a slot may take seconds.
ARGON2_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- RED -------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "bulwark_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "bulwark_http_request_duration_seconds",
    "Time from request start to the end of the response, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_HANDLED = Counter(
    "bulwark_grpc_server_handled",
    "gRPC calls completed, by service, method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_DURATION = Histogram(
    "bulwark_grpc_server_handling_seconds",
    "Time to handle a gRPC call, by service and method.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_IN_FLIGHT = Gauge(
    "bulwark_grpc_server_in_flight",
    "gRPC calls being handled (compare with the server's worker threads).",
    multiprocess_mode="livesum",
)


def grpc_in_flight() -> int:
    """This process's gRPC calls being handled now (logged when a server drains)."""
    [family] = GRPC_IN_FLIGHT.collect()
    return int(family.samples[0].value)


# --- security signals ------------------------------------------------------------------
LOGINS = Counter(
    "bulwark_auth_logins",
    "Password logins by result: ok, failed (wrong credentials) or backoff (refused "
    "unchecked while the source is in backoff for the account).",
    ["result"],
)
LOGIN_BACKOFFS = Counter(
    "bulwark_auth_login_backoffs",
    "Failed logins that put a source in backoff for an account.",
)
REFRESH_REUSE = Counter(
    "bulwark_auth_refresh_reuse_detected",
    "Refresh tokens presented again after use or revocation; the family was revoked.",
)
REVOCATIONS = Counter(
    "bulwark_revocations",
    "Revocations written, by kind: access_token, family (a refresh token family and its "
    "access tokens) or user (every token of a user issued before now).",
    ["kind"],
)
RATE_LIMITED = Counter(
    "bulwark_api_rate_limited",
    "Requests refused with 429, by limit: token, register, user, client, api_key or anonymous.",
    ["limit"],
)
TOKENS_REFUSED = Counter(
    "bulwark_api_tokens_refused",
    "Bearer tokens refused with 401, by reason: missing, expired, bad_signature, "
    "unknown_kid, revoked or invalid (malformed, wrong issuer/audience/type).",
    ["reason"],
)

# --- saturation ------------------------------------------------------------------------
ARGON2_QUEUE = Gauge(
    "bulwark_argon2_queue_depth",
    "argon2id computations waiting for a free slot (USERS_ARGON2_MAX_CONCURRENT).",
    multiprocess_mode="livesum",
)
ARGON2_WAIT = Histogram(
    "bulwark_argon2_wait_seconds",
    "Time an argon2id computation waited for a free slot.",
    buckets=ARGON2_BUCKETS,
)
ARGON2_DURATION = Histogram(
    "bulwark_argon2_duration_seconds",
    "Time of one argon2id computation, by operation (hash or verify).",
    ["operation"],
    buckets=ARGON2_BUCKETS,
)
REDIS_ROUNDTRIP = Histogram(
    "bulwark_redis_roundtrip_seconds",
    "Time of one Redis round trip on the request path, by operation.",
    ["operation"],
    buckets=ROUNDTRIP_BUCKETS,
)


class _Expiring:
    """Sources of a seconds-to-expiry value (Vault leases, certificates), read at scrape."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.leases: dict[str, Callable[[], float]] = {}
        self.certificates: dict[str, Callable[[], float]] = {}
        self.pools: dict[str, Any] = {}
        self.http_servers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.accounts_in_backoff: Callable[[], int | None] | None = None


_SOURCES = _Expiring()


def track_lease(name: str, seconds_left: Callable[[], float]) -> None:
    """Expose `bulwark_vault_lease_remaining_seconds{lease=name}` (a Vault role name)."""
    with _SOURCES._lock:
        _SOURCES.leases[name] = seconds_left


def track_certificate(name: str, seconds_left: Callable[[], float]) -> None:
    """Expose `bulwark_tls_certificate_remaining_seconds{certificate=name}`."""
    with _SOURCES._lock:
        _SOURCES.certificates[name] = seconds_left


def track_pool(name: str, engine: Any) -> None:
    """Expose the connections in use of a (sync) SQLAlchemy engine's QueuePool and the
    callers waiting for one. The engine, not its pool: dispose() replaces the pool."""
    with _SOURCES._lock:
        _SOURCES.pools[name] = engine


def track_http_in_flight(server: Any) -> None:
    """Expose `bulwark_http_requests_in_flight` as the sum of `server.in_flight` (a plain
    int the event loop updates: a prometheus Gauge would take two locks per request)."""
    with _SOURCES._lock:
        _SOURCES.http_servers.add(server)


def track_accounts_in_backoff(count: Callable[[], int | None] | None) -> None:
    """Expose `bulwark_auth_accounts_in_backoff` as `count()` at each scrape (auth's login
    throttle, reading Redis; None: no longer). `count` returns None when it cannot tell
    (Redis down): that scrape then has no such sample, rather than failing or reporting a
    made-up value."""
    with _SOURCES._lock:
        _SOURCES.accounts_in_backoff = count


def _pool_waiting(pool: Any) -> int:
    # SQLAlchemy has no public count of waiters: read its queue's (thread or asyncio).
    queue = getattr(pool, "_pool", None)
    cond = getattr(queue, "not_empty", None)
    if cond is not None:
        return len(getattr(cond, "_waiters", ()))
    aqueue = getattr(queue, "__dict__", {}).get("_queue")  # created on first use
    return len(getattr(aqueue, "_getters", ()) or ())


class _ScrapeTime(Collector):
    """Values read when scraped, from this process's own objects."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with _SOURCES._lock:
            leases = dict(_SOURCES.leases)
            certs = dict(_SOURCES.certificates)
            pools = dict(_SOURCES.pools)
            http_servers = list(_SOURCES.http_servers)
        lease = GaugeMetricFamily(
            "bulwark_vault_lease_remaining_seconds",
            "Seconds until a Vault lease (a dynamic database or Redis credential) expires.",
            labels=["lease"],
        )
        for name, left in leases.items():
            lease.add_metric([name], left())
        cert = GaugeMetricFamily(
            "bulwark_tls_certificate_remaining_seconds",
            "Seconds until the service's own mTLS certificate expires.",
            labels=["certificate"],
        )
        for name, left in certs.items():
            cert.add_metric([name], left())
        in_use = GaugeMetricFamily(
            "bulwark_db_pool_in_use_connections",
            "Database connections checked out of the pool.",
            labels=["pool"],
        )
        limit = GaugeMetricFamily(
            "bulwark_db_pool_max_connections",
            "The most connections the pool may open (size plus overflow).",
            labels=["pool"],
        )
        waiting = GaugeMetricFamily(
            "bulwark_db_pool_waiting_requests",
            "Callers waiting for a database connection.",
            labels=["pool"],
        )
        for name, engine in pools.items():
            pool = engine.pool
            if not hasattr(pool, "checkedout"):
                continue  # not a queue pool (SQLite in memory): nothing to saturate
            in_use.add_metric([name], pool.checkedout())
            limit.add_metric([name], pool.size() + max(getattr(pool, "_max_overflow", 0), 0))
            waiting.add_metric([name], _pool_waiting(pool))
        yield from (lease, cert, in_use, limit, waiting)
        if http_servers:
            yield GaugeMetricFamily(
                "bulwark_http_requests_in_flight",
                "HTTP requests being served (by the process answering the scrape).",
                value=sum(server.in_flight for server in http_servers),
            )


class _SharedState(Collector):
    """Values read when scraped from state every replica shares (Redis): each replica
    reports the same number, so dashboards and alerts take the max, never the sum."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with _SOURCES._lock:
            count = _SOURCES.accounts_in_backoff
        accounts = None if count is None else count()
        if accounts is not None:
            yield GaugeMetricFamily(
                "bulwark_auth_accounts_in_backoff",
                "Accounts some source is in backoff for now (the same value from every auth "
                "replica: take the max).",
                value=accounts,
            )


_SCRAPE_TIME = _ScrapeTime()
REGISTRY.register(_SCRAPE_TIME)
_SHARED_STATE = _SharedState()
REGISTRY.register(_SHARED_STATE)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir() -> None:
    """At server start, before workers fork: drop the files of earlier processes (an
    emptyDir outlives a container restart), keeping this process's own."""
    directory = multiprocess_dir()
    if directory is None:
        return
    own = f"_{os.getpid()}.db"
    for path in Path(directory).glob("*.db"):
        if not path.name.endswith(own):
            path.unlink(missing_ok=True)


def exposition() -> tuple[bytes, str]:
    """The text exposition of this process, or of all worker processes in multi-process
    mode (plus this process's scrape-time and shared-state values)."""
    directory = multiprocess_dir()
    if directory is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(_SCRAPE_TIME)
    registry.register(_SHARED_STATE)
    ProcessCollector(registry=registry)  # process_*: of the process answering the scrape
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(host: str, port: int) -> Any:
    """A plaintext HTTP server answering /metrics on `port`, in a daemon thread (for the gRPC
    services; api serves /metrics on its management app). Returns the server."""
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise SystemExit(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
    return server


class Observer(Protocol):
    """A histogram (child): what `observe` takes is seconds."""

    def observe(self, amount: float) -> None: ...


def label_values(text: str) -> Iterable[str]:
    """Every label value in an exposition text (for tests: nothing identifying in them)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield from sample.labels.values()
