"""`python -m bulwark_devstack.bench.mtls_cost`: what mTLS costs per gRPC call.

One trivial unary call at a time over loopback, plaintext vs mTLS (TLS 1.3 record layer,
the caller-matrix interceptor and the renewing proxy channel), blocking and asyncio; the
median of several rounds in microseconds per call. The proxy's own share is timed apart."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import grpc

from bulwark_common import grpcio
from bulwark_common.channels import _MultiCallable
from bulwark_devstack.testca import OPEN, CertAuthority, Echo, StaticCerts, start_echo_server


def _sync_round(call: Callable[..., Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call(b"x")
    return (time.perf_counter() - start) / n * 1e6


async def _aio_round(call: Callable[..., Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await call(b"x")
    return (time.perf_counter() - start) / n * 1e6


def _plaintext_server() -> grpcio.Server:
    server = grpcio.build_server(
        name="plain", host="127.0.0.1", port=0, register=Echo().register, checks={}
    )
    server.start()
    return server


def measure(calls: int, rounds: int) -> dict[str, float]:
    """Median us/call per mode; plaintext and mTLS rounds alternate so that noise from
    other processes on the machine falls on both alike."""
    ca = CertAuthority()
    secure = start_echo_server(StaticCerts(ca, "users"))
    plain = _plaintext_server()
    client = StaticCerts(ca, "auth")
    plain_target = f"127.0.0.1:{plain.port}"
    samples: dict[str, list[float]] = {}
    try:
        with (
            grpcio.channel(plain_target, 5.0) as plain_channel,
            grpcio.channel(secure.target, 5.0, tls=client, server_name="users") as mtls_channel,
        ):
            sync = {
                "sync plaintext": plain_channel.unary_unary(OPEN),
                "sync mtls": mtls_channel.unary_unary(OPEN),
            }
            for label, call in [*sync.items()] * (rounds + 1):
                samples.setdefault(label, []).append(_sync_round(call, calls))
            proxy = sync["sync mtls"]
            assert isinstance(proxy, _MultiCallable)
            n = 200_000
            start = time.perf_counter()
            for _ in range(n):
                proxy._resolve()
            proxy_us = (time.perf_counter() - start) / n * 1e6

        async def aio() -> None:
            plain_channel = grpcio.aio_channel(plain_target, 5.0)
            mtls_channel = grpcio.aio_channel(secure.target, 5.0, tls=client, server_name="users")
            aio = {
                "aio plaintext": plain_channel.unary_unary(OPEN),
                "aio mtls": mtls_channel.unary_unary(OPEN),
            }
            for label, call in [*aio.items()] * (rounds + 1):
                samples.setdefault(label, []).append(await _aio_round(call, calls))
            await plain_channel.close()
            await mtls_channel.close()

        asyncio.run(aio())
    finally:
        secure.server.stop(0)
        plain.stop(0)
    # The first round of each mode is the warm-up (handshake, pools).
    result = {label: statistics.median(values[1:]) for label, values in samples.items()}
    result["proxy resolve"] = proxy_us
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bulwark_devstack.bench.mtls_cost")
    parser.add_argument("--calls", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    grpc_version = getattr(grpc, "__version__", "?")
    print(f"grpcio {grpc_version}, {args.rounds} rounds x {args.calls} sequential unary calls")
    result = measure(args.calls, args.rounds)
    for mode in ("sync", "aio"):
        plain, mtls = result[f"{mode} plaintext"], result[f"{mode} mtls"]
        print(
            f"{mode:>5}: plaintext {plain:7.1f} us/call, mTLS {mtls:7.1f} us/call "
            f"(+{mtls - plain:.1f} us, x{mtls / plain:.2f})"
        )
    print(f"renewing-proxy resolve: {result['proxy resolve'] * 1000:.0f} ns/call")


if __name__ == "__main__":
    main()
