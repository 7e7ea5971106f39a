"""gRPC plumbing: a server with real health, reflection, tracing and graceful shutdown, and
client channels on which every call carries a deadline."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    client_interceptor,
    grpcext,
    server_interceptor,
)

from bulwark_common import deadlines
from bulwark_common.process import freeze_startup_heap

log = logging.getLogger("bulwark.grpc")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# A dependency check raises (anything) when the dependency is not usable.
Check = Callable[[], None]


class HealthMonitor:
    """Runs dependency checks on an interval and publishes the result as grpc.health.v1
    status for the whole server ("") and each named service: NOT_SERVING until every check
    passes, so readiness reflects the truth instead of always saying SERVING."""

    def __init__(
        self,
        servicer: health.HealthServicer,
        services: Iterable[str],
        checks: Mapping[str, Check],
        interval: float = 1.0,
    ) -> None:
        self._servicer = servicer
        self._services = ["", *services]
        self._checks = dict(checks)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self.failing: list[str] = list(self._checks)
        self._publish(NOT_SERVING)

    def start(self) -> None:
        self._thread.start()

    def check_once(self) -> list[str]:
        failing = []
        for name, check in self._checks.items():
            try:
                check()
            except Exception as exc:
                failing.append(name)
                log.debug("health check %s failed: %s", name, type(exc).__name__)
        if failing != self.failing:
            log.warning("health: %s", f"failing {failing}" if failing else "all checks pass")
        self.failing = failing
        self._publish(NOT_SERVING if failing else SERVING)
        return failing

    def _publish(self, status: int) -> None:
        for name in self._services:
            self._servicer.set(name, status)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self._interval)

    def shutdown(self) -> None:
        self._stop.set()
        # Tell watchers and probes first, so traffic drains before the server stops.
        self._servicer.enter_graceful_shutdown()


def serve(
    *,
    name: str,
    host: str,
    port: int,
    register: Callable[[grpc.Server], Iterable[str]],
    checks: Mapping[str, Check],
    max_workers: int = 16,
    grace_seconds: float = 10.0,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Run a gRPC server until SIGTERM/SIGINT, then finish in-flight calls and return.

    `register` adds the servicers and returns their full service names."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name),
        interceptors=[server_interceptor(), deadlines.ServerDeadlines()],  # type: ignore[no-untyped-call]
        options=[("grpc.max_receive_message_length", 1 << 20), ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=max_workers * 8,
    )
    services = list(register(server))
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    monitor = HealthMonitor(health_servicer, services, checks)
    reflection.enable_server_reflection(
        [*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise SystemExit(f"bulwark-{name}: cannot listen on {host}:{port}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    freeze_startup_heap()
    server.start()
    monitor.start()
    log.info("listening", extra={"address": f"{host}:{bound}", "services": services})
    stop.wait()
    log.info("shutting down: draining in-flight calls", extra={"grace_seconds": grace_seconds})
    monitor.shutdown()
    server.stop(grace_seconds).wait()
    if on_stop is not None:
        on_stop()
    log.info("stopped")


class _DeadlineInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        timeout = self._seconds if details.timeout is None else details.timeout
        details = details._replace(timeout=deadlines.clip(timeout))  # what the caller has left
        return continuation(details, request)


class _AioDeadlineInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        timeout = self._seconds if details.timeout is None else details.timeout
        details = details._replace(timeout=deadlines.clip(timeout))
        return await continuation(details, request)


# Reconnect quickly after a peer restarts (gRPC's default backoff grows to 120 s), and notice
# dead peers behind idle connections.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.keepalive_timeout_ms", 5000),
]


def channel(target: str, deadline_seconds: float) -> grpc.Channel:
    """A blocking channel: traced, and no call on it can wait forever."""
    deadline_bound = grpc.intercept_channel(
        grpc.insecure_channel(target, options=CHANNEL_OPTIONS),
        _DeadlineInterceptor(deadline_seconds),
    )
    # OTel's client interceptor has its own wrapper type that grpc.intercept_channel rejects.
    return grpcext.intercept_channel(
        deadline_bound,
        client_interceptor(),  # type: ignore[no-untyped-call]
    )


def aio_channel(target: str, deadline_seconds: float) -> grpc.aio.Channel:
    """The asyncio twin of `channel`."""
    return grpc.aio.insecure_channel(
        target,
        options=CHANNEL_OPTIONS,
        interceptors=[
            _AioDeadlineInterceptor(deadline_seconds),
            *aio_client_interceptors(),  # type: ignore[no-untyped-call]
        ],
    )
