"""The local stack as processes: readiness follows real dependency state, gRPC health is
real, and a request's trace crosses all three services. Local only: these stop processes."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bulwark_devstack.infra import venv_script
from bulwark_devstack.stack import Stack
from bulwark_devstack.vault import issue_certificate


@pytest.fixture(scope="module")
def stack(stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory()


def _wait_for(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def test_grpc_health_reports_serving(stack: Stack) -> None:
    assert stack.grpc_serving("users")
    assert stack.grpc_serving("auth")
    for svc, name in (
        ("users", "bulwark.users.v1.UsersService"),
        ("auth", "bulwark.auth.v1.AuthService"),
    ):
        # As a kubelet probes: plaintext, on the health-only port.
        probe = subprocess.run(
            [
                venv_script("bulwark-grpc-health"),
                f"127.0.0.1:{stack.config.health_port(svc)}",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode == 0 and probe.stdout.strip().endswith("SERVING"), probe.stdout
        # As a peer: over mTLS on the service port, with an identity from Vault.
        assert stack.config.vault is not None
        me = issue_certificate(stack.config.vault, "api")
        with tempfile.TemporaryDirectory() as tmp:
            files = {"cert": me.cert_pem, "key": me.key_pem, "ca": me.ca_pem}
            for part, pem in files.items():
                Path(tmp, part).write_bytes(pem)
            probe = subprocess.run(
                [
                    venv_script("bulwark-grpc-health"),
                    f"127.0.0.1:{stack.config.port(svc)}",
                    name,
                    *("--tls-cert", str(Path(tmp, "cert")), "--tls-key", str(Path(tmp, "key"))),
                    *("--tls-ca", str(Path(tmp, "ca")), "--server-name", svc),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        assert probe.returncode == 0 and probe.stdout.strip().endswith("SERVING"), probe.stdout


def test_readyz_turns_503_naming_users_then_recovers(stack: Stack) -> None:
    # The details are on the management port; the public /readyz says a status only.
    url = f"http://127.0.0.1:{stack.config.management_port}/readyz"
    assert httpx.get(url).status_code == 200
    stack.stop("users")
    started = time.monotonic()

    def down() -> httpx.Response | None:
        r = httpx.get(url, timeout=5)
        return r if r.status_code == 503 else None

    r = _wait_for(down, 5)
    assert r is not None and r.status_code == 503, "readyz did not turn 503 within 5 s"
    assert time.monotonic() - started < 5
    body = r.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["users"] != "ok"
    assert body["checks"]["auth"] == "ok"

    stack.start("users")
    assert _wait_for(lambda: httpx.get(url, timeout=5).status_code == 200, 30)


def test_sigterm_stops_services_cleanly(stack_factory: Callable[..., Stack]) -> None:
    fresh = stack_factory()
    # uvicorn re-raises the signal once its graceful shutdown is done, so api "dies" of it.
    assert fresh.stop("api") in (0, -signal.SIGTERM)
    assert fresh.config.log_dir is not None
    assert "Application shutdown complete" in (fresh.config.log_dir / "api.log").read_text()
    for svc in ("auth", "users"):
        assert fresh.stop(svc) == 0, f"{svc} did not exit cleanly on SIGTERM"
        assert '"message": "stopped"' in (fresh.config.log_dir / f"{svc}.log").read_text()
