"""`bulwark-grpc-health ADDRESS [SERVICE]`: a grpc_health_probe equivalent. Prints the status
and exits 0 only when it is SERVING. Plaintext for the health-only port; with
`--tls-cert/--tls-key/--tls-ca/--server-name` over mTLS to a service's main port."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

STATES = frozenset(health_pb2.HealthCheckResponse.ServingStatus.keys())


@dataclass(frozen=True)
class ClientTls:
    """PEM bytes of our certificate chain, its key, the CA to trust, and the service the
    server's certificate must name."""

    cert: bytes
    key: bytes
    ca: bytes
    server_name: str


def _channel(address: str, tls: ClientTls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(address)
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )
    options = [("grpc.ssl_target_name_override", tls.server_name)]
    return grpc.secure_channel(address, creds, options=options)


def check(
    address: str, service: str = "", timeout: float = 2.0, *, tls: ClientTls | None = None
) -> str:
    """The serving status name (SERVING, NOT_SERVING, ...), or the gRPC error code name."""
    with _channel(address, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def calls_started(health_address: str, port: int, timeout: float = 2.0) -> int:
    """How many calls the gRPC server listening on `port` has received, from grpc.channelz.v1
    on its process's health-only port (BULWARK_GRPC_CHANNELZ=true)."""
    with grpc.insecure_channel(health_address) as channel:
        stub = channelz_pb2_grpc.ChannelzStub(channel)
        start = 0
        while True:
            page = stub.GetServers(
                channelz_pb2.GetServersRequest(start_server_id=start), timeout=timeout
            )
            for server in page.server:
                # Listener names carry the address asked for, e.g. "... ipv4:0.0.0.0:50051".
                if any(ls.name.endswith(f":{port}") for ls in server.listen_socket):
                    return int(server.data.calls_started)
                start = server.ref.server_id + 1
            if page.end or not page.server:
                raise LookupError(f"no gRPC server listening on :{port} at {health_address}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bulwark-grpc-health")
    parser.add_argument("address", help="host:port, e.g. 127.0.0.1:50052")
    parser.add_argument("service", nargs="?", default="", help="e.g. bulwark.users.v1.UsersService")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--tls-cert", type=Path, help="our certificate chain (PEM): mTLS")
    parser.add_argument("--tls-key", type=Path, help="its private key (PEM)")
    parser.add_argument("--tls-ca", type=Path, help="CA bundle the server must chain to (PEM)")
    parser.add_argument("--server-name", help="service the server's certificate must name")
    args = parser.parse_args(argv)
    tls_args = (args.tls_cert, args.tls_key, args.tls_ca, args.server_name)
    tls = None
    if any(a is not None for a in tls_args):
        if any(a is None for a in tls_args):
            parser.error("mTLS needs all of --tls-cert, --tls-key, --tls-ca and --server-name")
        tls = ClientTls(
            args.tls_cert.read_bytes(),
            args.tls_key.read_bytes(),
            args.tls_ca.read_bytes(),
            args.server_name,
        )
    status = check(args.address, args.service, args.timeout, tls=tls)
    if status not in STATES:
        print(f"{args.address}: {status}")  # no answer: the gRPC error
        raise SystemExit(2)
    print(f"{args.address} {args.service or '(server)'}: {status}")
    raise SystemExit(0 if status == "SERVING" else 1)


if __name__ == "__main__":
    main()
