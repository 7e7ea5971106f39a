"""Client channels spread calls over every replica a target names (round_robin), still over
mTLS pinned to the callee's service name; servers count the calls they took in channelz."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bulwark_common import grpcio
from bulwark_common.credentials import channel_credentials
from bulwark_devstack import testkit
from bulwark_devstack.health import calls_started
from bulwark_devstack.infra import free_port
from bulwark_devstack.testca import (
    HOLD,
    OPEN,
    CertAuthority,
    Running,
    StaticCerts,
    start_echo_server,
)


@pytest.fixture
def replicas(ca: CertAuthority) -> Iterator[list[Running]]:
    """Two replicas of the users service, on fixed ports so channelz can name them."""
    running = [
        start_echo_server(StaticCerts(ca, "users"), port=free_port(), channelz=True)
        for _ in range(2)
    ]
    yield running
    for r in running:
        r.server.stop(0)


def both(replicas: list[Running]) -> str:
    return "ipv4:" + ",".join(r.target for r in replicas)


def counts(replicas: list[Running]) -> list[int]:
    return [len(r.echo.calls) for r in replicas]


def test_blocking_channel_alternates_over_both_replicas(
    ca: CertAuthority, replicas: list[Running]
) -> None:
    with grpcio.channel(
        both(replicas), 5.0, tls=StaticCerts(ca, "auth"), server_name="users"
    ) as ch:
        for _ in range(50):  # until both connections are up
            ch.unary_unary(OPEN)(b"", timeout=5)
            if all(counts(replicas)):
                break
        before = counts(replicas)
        for _ in range(10):
            ch.unary_unary(OPEN)(b"", timeout=5)
    assert [a - b for a, b in zip(counts(replicas), before, strict=True)] == [5, 5]


def test_asyncio_channel_alternates_over_both_replicas(
    ca: CertAuthority, replicas: list[Running]
) -> None:
    async def run() -> None:
        tls = StaticCerts(ca, "auth")
        async with grpcio.aio_channel(both(replicas), 5.0, tls=tls, server_name="users") as ch:
            call = ch.unary_unary(OPEN)
            for _ in range(50):
                await call(b"", timeout=5)
                if all(counts(replicas)):
                    break
            before = counts(replicas)
            for _ in range(10):
                await call(b"", timeout=5)
        assert [a - b for a, b in zip(counts(replicas), before, strict=True)] == [5, 5]

    asyncio.run(run())


def test_every_replica_must_prove_the_service_name(
    ca: CertAuthority, replicas: list[Running]
) -> None:
    """Balancing does not loosen mTLS: replicas certified as users refuse a channel that
    expects auth, whichever one a call lands on."""
    with grpcio.channel(both(replicas), 5.0, tls=StaticCerts(ca, "api"), server_name="auth") as ch:
        for _ in range(4):
            with pytest.raises(grpc.RpcError) as refused:
                ch.unary_unary(OPEN)(b"", timeout=2)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert counts(replicas) == [0, 0]


def test_channelz_counts_the_calls_each_replica_took(
    ca: CertAuthority, replicas: list[Running]
) -> None:
    with grpcio.channel(
        both(replicas), 5.0, tls=StaticCerts(ca, "auth"), server_name="users"
    ) as ch:
        for _ in range(12):
            ch.unary_unary(OPEN)(b"", timeout=5)
    for r in replicas:
        port = r.server.port
        # Every call it took: the echo calls, and the health watch the client's connection
        # keeps open (client-side health checking, channels.LB_SERVICE_CONFIG).
        assert calls_started(r.health_target, port) == len(r.echo.calls) + 1 > 1
    # Off unless asked for: the health-only port answers health and nothing else.
    plain = start_echo_server(StaticCerts(ca, "users"), port=free_port())
    try:
        with pytest.raises(grpc.RpcError) as no_channelz:
            calls_started(plain.health_target, plain.server.port)
        assert no_channelz.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        plain.server.stop(0)


def test_a_stopping_replica_gets_no_new_calls_and_refuses_none(
    ca: CertAuthority, replicas: list[Running]
) -> None:
    """The SIGTERM path (grpcio.Server.stop): the replica says NOT_SERVING, the channel's
    health watch moves new calls to the other one, and the stopping replica waits until
    calls stop arriving before it refuses new ones: steady calls from four threads lose
    none (without the health watch and the wait, calls racing the stop fail UNAVAILABLE)."""
    with grpcio.channel(
        both(replicas), 5.0, tls=StaticCerts(ca, "auth"), server_name="users"
    ) as ch:
        call = ch.unary_unary(OPEN)
        for _ in range(50):  # until both connections are up
            call(b"", timeout=5)
            if all(counts(replicas)):
                break
        stopped = threading.Event()
        failed: list[str] = []
        made = [0] * 4

        def caller(n: int) -> None:
            while not stopped.is_set():
                try:
                    call(b"", timeout=5)
                    made[n] += 1
                except grpc.RpcError as exc:
                    failed.append(exc.code().name)

        callers = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
        for t in callers:
            t.start()
        while sum(made) < 40:  # the calls are flowing to both replicas
            time.sleep(0.001)
        replicas[0].server.stop(5.0)
        at_stop = counts(replicas)
        for _ in range(20):
            call(b"", timeout=5)
        stopped.set()
        for t in callers:
            t.join()
    assert failed == []
    assert counts(replicas)[0] == at_stop[0]  # nothing reached the stopped replica after


def test_a_call_arriving_after_the_notice_is_served_while_every_worker_is_busy(
    ca: CertAuthority, replicas: list[Running]
) -> None:
    """A stopping replica whose workers are all busy (long password checks) starts no handler
    for a while, yet calls still arrive from callers that have not read NOT_SERVING yet. The
    quiet spell is counted from the notice and from arrivals, so such a call is queued and
    answered, not refused UNAVAILABLE (the stop used to count from handler starts)."""
    replica = replicas[0]
    options = [("grpc.ssl_target_name_override", "users")]
    creds = channel_credentials(StaticCerts(ca, "auth").material())
    # A plain channel: no health watch, like a caller that has not heard the notice yet.
    with grpc.secure_channel(replica.target, creds, options=options) as ch:
        ch.unary_unary(OPEN)(b"", timeout=5)  # connected before the workers fill up
        holds = [ch.unary_unary(HOLD).future(b"hold", timeout=30) for _ in range(8)]
        assert testkit.until(lambda: sum(m == "Hold" for m, _ in replica.echo.calls) == 8, 10)
        # Longer ago than the quiet spell: only a spell that starts at the notice waits.
        time.sleep(grpcio.QUIET_SECONDS * 1.5)
        stopping = threading.Thread(target=replica.server.stop, args=(5.0,))
        stopping.start()
        with grpc.insecure_channel(replica.health_target) as probe:
            check = health_pb2_grpc.HealthStub(probe).Check
            assert testkit.until(
                lambda: (
                    check(health_pb2.HealthCheckRequest(), timeout=2).status
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                ),
                5,
            )
        sent = time.monotonic()
        late = ch.unary_unary(OPEN).future(b"late", timeout=30)
        # Until the server has taken the late call in (or refused it), then free the workers.
        assert testkit.until(lambda: late.done() or replica.server.arrivals.last_arrival > sent, 5)
        replica.echo.release.set()
        assert late.result() == b"late"
        assert [h.result() for h in holds] == [b"hold"] * 8
        stopping.join(10)
    assert not stopping.is_alive()
