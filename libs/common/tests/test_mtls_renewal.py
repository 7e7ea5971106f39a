"""Certificate renewal under load: server and client certificates are re-issued several
times and the old ones expire, while calls keep flowing from threads (sync channel) and
tasks (asyncio channel). No call may fail, and new handshakes present the new certificates."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography import x509

from bulwark_common import grpcio
from bulwark_common.tls import TlsMaterial
from bulwark_devstack.testca import OPEN, CertAuthority, Running, StaticCerts, start_echo_server

LIFETIME = 4.0  # seconds: every certificate here expires during the test
RENEWALS = 4
RENEW_EVERY = 1.2


def served_certificate(running: Running, client: TlsMaterial, tmp: Path) -> bytes:
    """DER of the certificate the server presents on a brand-new handshake."""
    (tmp / "c.pem").write_bytes(client.cert_pem)
    (tmp / "k.pem").write_bytes(client.key_pem)
    ctx = ssl.create_default_context(cadata=client.ca_pem.decode())
    ctx.check_hostname = False
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", running.server.port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname="users") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def renew_both(server: StaticCerts, client: StaticCerts, stop: Callable[[], bool]) -> None:
    """Re-issue both sides every RENEW_EVERY seconds, RENEWALS times (from this thread),
    then keep going until every certificate but the newest has expired."""
    expired_at = time.time()
    for _ in range(RENEWALS):
        wait_until(time.time() + RENEW_EVERY, stop)
        expired_at = max(server.material().not_after, client.material().not_after)
        server.reissue()
        client.reissue()
    wait_until(expired_at + 0.2, stop)


def wait_until(unix_time: float, stop: Callable[[], bool]) -> None:
    while time.time() < unix_time and not stop():
        time.sleep(0.05)


def assert_renewed(users: Running, client: StaticCerts, calls: int, tmp: Path) -> None:
    assert calls > 100
    assert users.certs.issued == client.issued == RENEWALS + 1
    seen = set(users.echo.peer_certs)
    # The server saw the client's newest certificate, and several generations of it.
    assert client.material().cert_pem in seen
    assert len(seen) >= 3
    latest = x509.load_pem_x509_certificate(users.certs.material().cert_pem)
    presented = served_certificate(users, client.material(), tmp)
    assert x509.load_der_x509_certificate(presented) == latest


def test_sync_calls_survive_renewals(ca: CertAuthority, tmp_path: Path) -> None:
    users = start_echo_server(StaticCerts(ca, "users", ttl=LIFETIME))
    client = StaticCerts(ca, "auth", ttl=LIFETIME)
    channel = grpcio.channel(users.target, 2.0, tls=client, server_name="users")
    call = channel.unary_unary(OPEN)
    failures: list[str] = []
    counts = [0] * 4
    done = threading.Event()

    def load(i: int) -> None:
        while not done.is_set():
            try:
                call(b"x")
                counts[i] += 1
            except grpc.RpcError as exc:
                failures.append(f"{exc.code()}: {exc.details()}")

    threads = [threading.Thread(target=load, args=(i,)) for i in range(len(counts))]
    try:
        for t in threads:
            t.start()
        renew_both(users.certs, client, lambda: bool(failures))
    finally:
        done.set()
        for t in threads:
            t.join()
        channel.close()
    try:
        assert failures == []
        assert_renewed(users, client, sum(counts), tmp_path)
    finally:
        users.server.stop(0)


def test_asyncio_calls_survive_renewals(ca: CertAuthority, tmp_path: Path) -> None:
    users = start_echo_server(StaticCerts(ca, "users", ttl=LIFETIME))
    client = StaticCerts(ca, "api", ttl=LIFETIME)
    failures: list[str] = []
    counts = [0] * 8

    async def run() -> None:
        channel = grpcio.aio_channel(users.target, 2.0, tls=client, server_name="users")
        call = channel.unary_unary(OPEN)
        done = asyncio.Event()

        async def load(i: int) -> None:
            while not done.is_set():
                try:
                    await call(b"x")
                    counts[i] += 1
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")

        tasks = [asyncio.create_task(load(i)) for i in range(len(counts))]
        # Renewal callbacks arrive from another thread, as they do from the Vault source.
        await asyncio.to_thread(renew_both, users.certs, client, lambda: bool(failures))
        done.set()
        await asyncio.gather(*tasks)
        await channel.close()

    try:
        asyncio.run(run())
        assert failures == []
        assert_renewed(users, client, sum(counts), tmp_path)
    finally:
        users.server.stop(0)
