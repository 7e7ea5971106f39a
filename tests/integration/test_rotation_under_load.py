"""Secrets rotate under traffic and no request fails: signing keys (two-phase rotation),
mTLS certificates (short-lived, renewed in the background) and dynamic database and Redis
credentials (short leases, re-issued before they end)."""

from __future__ import annotations

import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
from cryptography import x509

from bulwark_devstack.infra import venv_script
from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import Session, bearer, random_ip, sign_up
from bulwark_devstack.vault import issue_certificate

# Limits high enough that the load measures rotation, not the rate limiter.
TRUSTED = {
    "API_TRUSTED_PROXIES": '["127.0.0.1/32"]',
    "API_TOKEN_RATE": "6000/minute",
    "API_USER_RATE": "60000/minute",
}


class Load:
    """A few threads of mixed traffic (logins, /v1/users/me, item writes and reads) with
    every answer's status counted; each thread speaks from its own client address."""

    def __init__(self, api_url: str, sessions: list[Session], threads: int = 4) -> None:
        self.api_url = api_url
        self.sessions = sessions
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.kids: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def _record(self, what: str, r: httpx.Response) -> None:
        with self._lock:
            self.statuses[r.status_code] += 1
            if not 200 <= r.status_code < 300:
                self.failures.append(f"{what}: {r.status_code} {r.text[:200]}")

    def _run(self, i: int) -> None:
        try:
            self._loop(i)
        except Exception as exc:  # a crashed thread must fail the test, not vanish
            with self._lock:
                self.failures.append(f"load thread {i}: {exc!r}")

    def _loop(self, i: int) -> None:
        session = self.sessions[i % len(self.sessions)]
        token = session.access_token
        with httpx.Client(
            base_url=self.api_url, timeout=15, headers={"X-Forwarded-For": random_ip()}
        ) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                if n % 5 == 0:
                    r = http.post(
                        "/v1/auth/token",
                        data={
                            "grant_type": "password",
                            "username": session.username,
                            "password": session.password,
                        },
                    )
                    self._record("login", r)
                    if r.status_code == 200:
                        token = r.json()["access_token"]
                        with self._lock:
                            self.kids.add(jwt.get_unverified_header(token)["kid"])
                elif n % 5 == 1:
                    r = http.post(
                        "/v1/items",
                        json={"name": f"item {n}"},
                        headers=bearer(token),
                    )
                    self._record("create item", r)
                elif n % 5 == 2:
                    self._record(
                        "list items",
                        http.get("/v1/items?limit=5", headers=bearer(token)),
                    )
                else:
                    self._record("me", http.get("/v1/users/me", headers=bearer(token)))

    def total(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    @contextmanager
    def running(self) -> Iterator[Load]:
        for t in self._threads:
            t.start()
        try:
            yield self
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(timeout=30)


def _until(what: str, condition: Callable[[], bool], timeout: float, load: Load) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}: {load.statuses} {load.failures[:5]}"
        )
        time.sleep(0.1)


def test_signing_key_rotation_under_load_fails_no_request(stack_factory: Any) -> None:
    stack: Stack = stack_factory(
        env={
            "api": {**TRUSTED, "API_JWKS_REFRESH_SECONDS": "0.5"},
            "auth": {"AUTH_SIGNING_KEYS_POLL_SECONDS": "0.5"},
        }
    )
    assert stack.config.vault is not None
    sessions = [sign_up(stack.config.api_url) for _ in range(2)]
    old_token = sessions[0].access_token
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    load = Load(stack.config.api_url, sessions)
    with load.running():
        _until("traffic", lambda: load.total() > 20, 60, load)
        env = {
            **os.environ,
            **stack.config.environment("auth"),
            **stack.config.vault.env("auth-keys"),
        }
        done = subprocess.run(
            [venv_script("bulwark-auth"), "rotate-keys", "--publish-seconds", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        _until("a token signed by the new key", lambda: len(load.kids - {old_kid}) > 0, 30, load)
        after = load.total()
        _until("traffic after the rotation", lambda: load.total() > after + 20, 60, load)
    assert load.failures == [], load.failures[:10]
    # Tokens signed before the rotation stay valid until they expire.
    r = httpx.get(f"{stack.config.api_url}/v1/users/me", headers=bearer(old_token))
    assert r.status_code == 200, r.text


def _served_certificate(port: int, client: Any, server_name: str) -> x509.Certificate:
    """The certificate a gRPC server presents to a fresh TLS handshake (ALPN h2)."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(client.cert_pem)
        key.write_bytes(client.key_pem)
        ctx = ssl.create_default_context(cadata=client.ca_pem.decode())
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["h2"])
        import socket

        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
            ctx.wrap_socket(sock, server_hostname=server_name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _vault_roles(admin_url: str) -> set[str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'").fetchall()
    return {r[0] for r in rows}


def test_certificates_and_database_credentials_renew_under_load(
    stack_factory: Any, postgres_admin_url: str
) -> None:
    stack: Stack = stack_factory(
        env={"api": TRUSTED, "*": {"BULWARK_TLS_CERT_TTL_SECONDS": "9"}},
        vault_setup={"BULWARK_SETUP_DB_TTL": "6s", "BULWARK_SETUP_DB_MAX_TTL": "9s"},
    )
    assert stack.config.vault is not None
    prefix = stack.config.vault.prefix
    client = issue_certificate(stack.config.vault, "api")
    first = {
        svc: _served_certificate(stack.config.port(svc), client, svc).serial_number
        for svc in ("users", "auth")
    }
    roles_before = {r for r in _vault_roles(postgres_admin_url) if prefix in r}
    assert roles_before, "the services log in to PostgreSQL as Vault-created roles"
    sessions = [sign_up(stack.config.api_url) for _ in range(2)]
    load = Load(stack.config.api_url, sessions)
    with load.running():
        # Past two renewals of each certificate and a re-issue of each database credential.
        _until(
            "renewed certificates",
            lambda: all(
                _served_certificate(stack.config.port(svc), client, svc).serial_number != first[svc]
                for svc in ("users", "auth")
            ),
            30,
            load,
        )
        _until(
            "new database credentials",
            lambda: bool(
                {r for r in _vault_roles(postgres_admin_url) if prefix in r} - roles_before
            ),
            30,
            load,
        )
        after = load.total()
        _until("traffic after the renewals", lambda: load.total() > after + 30, 60, load)
    assert load.failures == [], load.failures[:10]
    assert load.total() > 60
