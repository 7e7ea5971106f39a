"""`bulwark-grpc-health ADDRESS [SERVICE]`: a grpc_health_probe equivalent. Prints the status
and exits 0 only when it is SERVING."""

from __future__ import annotations

import argparse

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

STATES = frozenset(health_pb2.HealthCheckResponse.ServingStatus.keys())


def check(address: str, service: str = "", timeout: float = 2.0) -> str:
    """The serving status name (SERVING, NOT_SERVING, ...), or the gRPC error code name."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bulwark-grpc-health")
    parser.add_argument("address", help="host:port, e.g. 127.0.0.1:50052")
    parser.add_argument("service", nargs="?", default="", help="e.g. bulwark.users.v1.UsersService")
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    status = check(args.address, args.service, args.timeout)
    if status not in STATES:
        print(f"{args.address}: {status}")  # no answer: the gRPC error
        raise SystemExit(2)
    print(f"{args.address} {args.service or '(server)'}: {status}")
    raise SystemExit(0 if status == "SERVING" else 1)


if __name__ == "__main__":
    main()
