"""Client channels: traced, every call with a deadline, and with mTLS following certificate
renewal: stubs keep one proxy channel, and each call resolves the channel built from the
newest certificate.

A renewal (source callback, any thread) only records the new material. The next call, in
the caller's thread (or event loop), builds the new channel, and the old one is closed once
the deadline has passed so calls in flight on it finish. Nothing from the callback's thread
touches a channel or an event loop, so asyncio needs no hand-off."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors, client_interceptor, grpcext

from bulwark_common import deadlines
from bulwark_common.credentials import channel_credentials
from bulwark_common.tls import CertSource, TlsMaterial

C = TypeVar("C")
# The channel a generation's material builds (already carrying the interceptors).
Builder = Callable[[TlsMaterial], C]


class _Generation(Generic[C]):
    __slots__ = ("channel", "material")

    def __init__(self, material: TlsMaterial, channel: C) -> None:
        self.material = material
        self.channel = channel


class _Renewing(Generic[C]):
    """The generation bookkeeping and multicallables shared by the sync and asyncio proxies."""

    def __init__(self, source: CertSource, build: Builder[C], deadline: float) -> None:
        self._build = build
        self._deadline = deadline
        self._lock = threading.Lock()
        self._closed = False
        material = source.material()
        self._wanted = material
        self._current: _Generation[C] = _Generation(material, build(material))
        source.subscribe(self._renewed)

    def _renewed(self, material: TlsMaterial) -> None:
        self._wanted = material  # one reference store: safe from any thread

    def current(self) -> _Generation[C]:
        generation = self._current
        if generation.material is self._wanted or self._closed:
            return generation
        with self._lock:
            if self._current.material is not self._wanted:
                old = self._current
                self._current = _Generation(self._wanted, self._build(self._wanted))
                self._retire(old.channel)
            return self._current

    def _retire(self, channel: C) -> None:
        raise NotImplementedError

    def unary_unary(self, *args: Any, **kw: Any) -> Any:
        return _MultiCallable(self, "unary_unary", args, kw)

    def unary_stream(self, *args: Any, **kw: Any) -> Any:
        return _MultiCallable(self, "unary_stream", args, kw)

    def stream_unary(self, *args: Any, **kw: Any) -> Any:
        return _MultiCallable(self, "stream_unary", args, kw)

    def stream_stream(self, *args: Any, **kw: Any) -> Any:
        return _MultiCallable(self, "stream_stream", args, kw)


class _MultiCallable:
    """Resolves the current channel's multicallable per call, cached per generation."""

    __slots__ = ("_args", "_cached", "_kind", "_owner")

    def __init__(self, owner: _Renewing[Any], kind: str, args: tuple[Any, ...], kw: Any) -> None:
        self._owner = owner
        self._kind = kind
        self._args = (args, kw)
        self._cached: tuple[Any, Any] = (None, None)

    def _resolve(self) -> Any:
        generation = self._owner.current()
        cached_for, multicallable = self._cached
        if cached_for is not generation:
            args, kw = self._args
            multicallable = getattr(generation.channel, self._kind)(*args, **kw)
            self._cached = (generation, multicallable)
        return multicallable

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self._resolve()(*args, **kw)

    def with_call(self, *args: Any, **kw: Any) -> Any:
        return self._resolve().with_call(*args, **kw)

    def future(self, *args: Any, **kw: Any) -> Any:
        return self._resolve().future(*args, **kw)


class RenewingChannel(_Renewing[grpc.Channel], grpc.Channel):  # type: ignore[misc]
    """A blocking channel over mTLS that swaps in a new channel after each renewal."""

    def _retire(self, channel: grpc.Channel) -> None:
        # grpc.Channel.close cancels calls in flight: wait until none can still be running.
        timer = threading.Timer(self._deadline + 1.0, channel.close)
        timer.daemon = True
        timer.start()

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.current().channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self.current().channel.unsubscribe(callback)

    def close(self) -> None:
        self._closed = True
        self._current.channel.close()

    def __enter__(self) -> RenewingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AioRenewingChannel(_Renewing[grpc.aio.Channel], grpc.aio.Channel):  # type: ignore[misc]
    """The asyncio twin: the swap happens on the loop, at the first call after a renewal."""

    def __init__(
        self, source: CertSource, build: Builder[grpc.aio.Channel], deadline: float
    ) -> None:
        super().__init__(source, build, deadline)
        self._closing: set[asyncio.Task[None]] = set()

    def _retire(self, channel: grpc.aio.Channel) -> None:
        # close(grace) lets calls in flight finish within the grace, then cancels the rest.
        task = asyncio.get_running_loop().create_task(channel.close(self._deadline + 1.0))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel.channel_ready()

    async def close(self, grace: float | None = None) -> None:
        self._closed = True
        await self._current.channel.close(grace)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def __aenter__(self) -> AioRenewingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


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


# Spread calls over every address the target names (`ipv4:a:p,b:p`, or a DNS name with one
# record per replica, e.g. a headless Kubernetes Service): one connection per address and
# round_robin over the ready ones. gRPC's default, pick_first, would pin every call to one
# replica for the life of the connection. The policy is ours only: a DNS TXT record cannot
# change it. Each connection also watches the server's grpc.health.v1 status (""): a replica
# that says NOT_SERVING (not ready, or stopping after SIGTERM) gets no new calls, so a
# rollout or a scale-down refuses none (grpcio.Server.stop waits for the calls to move away).
LB_SERVICE_CONFIG = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)

# Reconnect quickly after a peer restarts (gRPC's default backoff grows to 120 s), notice
# dead peers behind idle connections, and re-resolve a DNS target at most once a second (the
# default waits 30 s) when a replica goes away, so a rollout's new pods are found promptly.
CHANNEL_OPTIONS = [
    ("grpc.service_config", LB_SERVICE_CONFIG),
    ("grpc.service_config_disable_resolution", 1),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
]


def _tls_options(server_name: str | None) -> list[tuple[str, Any]]:
    if not server_name:
        raise ValueError("mTLS channels need server_name: the callee's service name")
    # Verify who the server is (its certificate names the service), not where it is.
    return [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", server_name)]


def channel(
    target: str,
    deadline_seconds: float,
    *,
    tls: CertSource | None = None,
    server_name: str | None = None,
) -> grpc.Channel:
    """A blocking channel: traced, and no call on it can wait forever. With `tls`: mTLS to
    the service `server_name`, following certificate renewals."""

    def build(material: TlsMaterial | None) -> grpc.Channel:
        raw = (
            grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
            if material is None
            else grpc.secure_channel(
                target, channel_credentials(material), options=_tls_options(server_name)
            )
        )
        deadline_bound = grpc.intercept_channel(raw, _DeadlineInterceptor(deadline_seconds))
        # OTel's client interceptor has its own wrapper type that grpc.intercept_channel rejects.
        return grpcext.intercept_channel(
            deadline_bound,
            client_interceptor(),  # type: ignore[no-untyped-call]
        )

    if tls is None:
        return build(None)
    _tls_options(server_name)  # fail at construction, not at the first call
    return RenewingChannel(tls, build, deadline_seconds)


def aio_channel(
    target: str,
    deadline_seconds: float,
    *,
    tls: CertSource | None = None,
    server_name: str | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """The asyncio twin of `channel`; `interceptors` (the caller's own) run innermost."""

    def build(material: TlsMaterial | None) -> grpc.aio.Channel:
        chain = [
            _AioDeadlineInterceptor(deadline_seconds),
            *aio_client_interceptors(),  # type: ignore[no-untyped-call]
            *interceptors,
        ]
        if material is None:
            return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS, interceptors=chain)
        return grpc.aio.secure_channel(
            target,
            channel_credentials(material),
            options=_tls_options(server_name),
            interceptors=chain,
        )

    if tls is None:
        return build(None)
    _tls_options(server_name)
    return AioRenewingChannel(tls, build, deadline_seconds)
