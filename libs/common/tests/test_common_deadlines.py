"""Deadline propagation over real gRPC servers: a hop gets what is left of its caller's
deadline, and once that is spent it fails without making the call."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bulwark_common import deadlines, grpcio


class Downstream(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.calls = 0
        self.timeouts: list[float | None] = []
        self.lock = threading.Lock()

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            self.calls += 1
            self.timeouts.append(context.time_remaining())
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


class Middle(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Calls downstream with a generous default deadline of its own (10 s)."""

    def __init__(self, downstream: str, spend: bool) -> None:
        self.channel = grpcio.channel(downstream, 10.0)
        self.stub = health_pb2_grpc.HealthStub(self.channel)
        self.spend = spend
        self.outcome: dict[str, Any] = {}

    def Check(self, request: Any, context: grpc.ServicerContext) -> Any:
        if self.spend:  # work until the caller's budget is gone
            while (left := deadlines.remaining()) is not None and left > 0:
                time.sleep(0.01)
        started = time.monotonic()
        try:
            self.stub.Check(health_pb2.HealthCheckRequest())
            self.outcome["code"] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            self.outcome["code"] = exc.code()
        self.outcome["seconds"] = time.monotonic() - started
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _server(servicer: Any, *interceptors: Any) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=list(interceptors))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def chain() -> Iterator[Any]:
    down = Downstream()
    down_server, down_target = _server(down)
    started: list[grpc.Server] = [down_server]

    def middle(spend: bool) -> tuple[Middle, str]:
        servicer = Middle(down_target, spend)
        server, target = _server(servicer, deadlines.ServerDeadlines())
        started.append(server)
        return servicer, target

    yield down, middle
    for s in started:
        s.stop(0).wait()


def test_the_next_hop_gets_what_is_left(chain: Any) -> None:
    down, middle = chain
    mid, target = middle(spend=False)
    with grpc.insecure_channel(target) as ch:
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
    assert mid.outcome["code"] == grpc.StatusCode.OK
    # Not middle's 10 s. gRPC's clocks round the propagated deadline up by a few ms, so the
    # bound allows for that rather than racing it.
    assert down.timeouts[0] is not None and down.timeouts[0] <= 1.1


def test_a_spent_budget_fails_fast_without_calling(chain: Any) -> None:
    down, middle = chain
    mid, target = middle(spend=True)
    with grpc.insecure_channel(target) as ch, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=0.3)
    deadline = time.monotonic() + 5
    while "seconds" not in mid.outcome:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert mid.outcome["code"] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert mid.outcome["seconds"] < 0.05  # no round trip, no stacked timeout
    assert down.calls == 0


def test_outside_a_served_call_the_default_applies() -> None:
    assert deadlines.remaining() is None
    assert deadlines.clip(2.0) == 2.0
