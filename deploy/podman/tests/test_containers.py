"""Checks on the chart's pods running under podman (`make e2e-containers` starts them and
points BULWARK_CONTAINERS at their description). The last tests stop the second replicas
of users and auth, then every service."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bulwark_devstack.testkit import random_ip, strong_password, unique_name

SERVICES = ("api", "auth", "users")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    path = os.environ.get("BULWARK_CONTAINERS")
    if not path:
        pytest.fail("run these through `make e2e-containers` (it starts the pods)", pytrace=False)
    return dict(json.loads(Path(path).read_text()))


def podman(stack: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*stack["podman"], *args], capture_output=True, text=True, check=False)


def status_of_pid1(stack: dict[str, Any], svc: str) -> dict[str, str]:
    out = podman(stack, "exec", stack["pods"][svc]["container"], "cat", "/proc/1/status")
    assert out.returncode == 0, out.stderr
    return dict(line.split(":\t", 1) for line in out.stdout.splitlines() if ":\t" in line)


@pytest.mark.parametrize("svc", SERVICES)
def test_service_runs_as_10001_with_no_capabilities(stack: dict[str, Any], svc: str) -> None:
    status = status_of_pid1(stack, svc)
    assert status["Uid"].split() == ["10001"] * 4
    assert status["Gid"].split() == ["10001"] * 4
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"


@pytest.mark.parametrize("svc", SERVICES)
def test_only_tmp_is_writable(stack: dict[str, Any], svc: str) -> None:
    c = stack["pods"][svc]["container"]
    for path in ("/probe", "/opt/venv/probe", "/etc/probe", "/var/tmp/probe"):
        out = podman(stack, "exec", c, "touch", path)
        assert out.returncode != 0 and "Read-only file system" in out.stderr, path
    assert podman(stack, "exec", c, "touch", "/tmp/probe").returncode == 0


@pytest.mark.parametrize("svc", SERVICES)
def test_limits_and_no_new_privileges_applied(stack: dict[str, Any], svc: str) -> None:
    c = stack["pods"][svc]["container"]
    out = podman(stack, "inspect", c, "--format", "{{json .HostConfig}}")
    host = json.loads(out.stdout)
    assert host["Memory"] > 0 and host["NanoCpus"] + host.get("CpuQuota", 0) > 0
    assert host["ReadonlyRootfs"] is True
    assert "no-new-privileges" in host["SecurityOpt"]


def _health(target: str, creds: grpc.ChannelCredentials | None, name: str) -> int:
    options = [("grpc.ssl_target_name_override", name)] if creds else []
    with (
        grpc.secure_channel(target, creds, options=options)
        if creds
        else grpc.insecure_channel(target)
    ) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


@pytest.mark.parametrize("svc", ["auth", "users"])
def test_grpc_health_serving_over_mtls_and_probe_port(stack: dict[str, Any], svc: str) -> None:
    tls = Path(stack["tls_dir"])
    creds = grpc.ssl_channel_credentials(
        root_certificates=(tls / "client.ca_pem").read_bytes(),
        private_key=(tls / "client.key_pem").read_bytes(),
        certificate_chain=(tls / "client.cert_pem").read_bytes(),
    )
    port, health = stack["ports"][svc], stack["ports"][f"{svc}-health"]
    serving = health_pb2.HealthCheckResponse.SERVING
    assert _health(f"127.0.0.1:{port}", creds, svc) == serving
    assert _health(f"127.0.0.1:{health}", None, svc) == serving
    with pytest.raises(grpc.RpcError):  # the main port takes no plaintext client
        _health(f"127.0.0.1:{port}", None, svc)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


BURSTS = 5


def _warnings(stack: dict[str, Any]) -> list[str]:
    """The services' warning and error log lines: what a failed assertion shows beside it."""
    lines = []
    for name, pod in stack["pods"].items():
        logs = podman(stack, "logs", pod["container"])
        lines += [
            f"{name}: {line}"
            for line in (logs.stdout + logs.stderr).splitlines()
            if '"WARNING"' in line or '"ERROR"' in line
        ]
    return lines


def _in_flight(metrics_port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
    for line in text.splitlines():
        if line.startswith("bulwark_grpc_server_in_flight "):
            return float(line.split()[1])
    raise LookupError("no bulwark_grpc_server_in_flight in the exposition")


def _login(url: str, name: str, password: str) -> int:
    form = {"grant_type": "password", "username": name, "password": password}
    headers = {"X-Forwarded-For": random_ip()}
    return httpx.post(f"{url}/v1/auth/token", data=form, headers=headers, timeout=30).status_code


@pytest.mark.parametrize("replica", ["users-2", "auth-2"])
def test_sigterm_lets_a_grpc_replica_finish_its_calls(stack: dict[str, Any], replica: str) -> None:
    """`podman stop` of one replica of users (or auth) while logins are in flight on it (each
    login is api -> auth -> users, and users' password checks queue for their threads): the
    replica finishes them, every login succeeds, new calls go to the other replica, and it
    exits 0 within its grace period."""
    urls = [f"http://127.0.0.1:{stack['ports'][api]}" for api in ("api", "api-2")]
    accounts = []  # one account per login: a single account allows only 3 checks at once
    for _ in range(24):
        name, password = unique_name(), strong_password()
        r = httpx.post(
            f"{urls[0]}/v1/users",
            json={"username": name, "email": f"{name}@example.com", "password": password},
            headers={"X-Forwarded-For": random_ip()},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        accounts.append((name, password))
    metrics_port = stack["ports"][f"{replica}-metrics"]
    container = stack["pods"][replica]["container"]
    grace = stack["pods"][replica]["grace"]
    pid = int(podman(stack, "inspect", container, "--format", "{{.State.Pid}}").stdout)
    stopped = None
    with ThreadPoolExecutor(len(accounts)) as pool:
        for _ in range(BURSTS):
            logins = [
                pool.submit(_login, urls[i % 2], name, password)
                for i, (name, password) in enumerate(accounts)
            ]
            # Poll until the replica is busy with this burst; a burst can end between two
            # polls (a login is ~40 ms of argon2), and then the next one is sent.
            while not all(f.done() for f in logins):
                if _in_flight(metrics_port) >= 2:
                    # The SIGTERM `podman stop` sends, sent at once (the podman command
                    # itself starts slower than a burst lasts); then it waits for the exit.
                    start = time.monotonic()
                    os.kill(pid, signal.SIGTERM)
                    stopped = podman(stack, "stop", "-t", str(grace), container)
                    took = time.monotonic() - start
                    break
            statuses = [f.result() for f in logins]
            assert statuses == [200] * len(accounts), (statuses, _warnings(stack))
            if stopped is not None:
                break
    assert stopped is not None, f"{replica} never had 2 calls in flight in {BURSTS} bursts"
    assert stopped.returncode == 0, stopped.stderr
    assert took < grace, f"{replica} took {took:.1f}s to stop (grace {grace}s)"
    code = podman(stack, "inspect", container, "--format", "{{.State.ExitCode}}")
    assert code.stdout.strip() == "0", f"{replica} exited {code.stdout.strip()} (137 = SIGKILL)"
    logs = podman(stack, "logs", container)
    [draining] = [
        json.loads(line)
        for line in (logs.stdout + logs.stderr).splitlines()
        if '"shutting down' in line
    ]
    assert draining["in_flight"] >= 1, draining  # the stop did land on calls being handled


def test_sigterm_drains_in_flight_request_then_exits(stack: dict[str, Any]) -> None:
    """`podman stop` sends SIGTERM: api stops accepting, finishes a request it had already
    started (2xx), and every service exits 0 within its grace period (no SIGKILL)."""
    port = stack["ports"]["api"]
    name = "drain" + secrets.token_hex(4)
    body = json.dumps(
        {"username": name, "email": f"{name}@example.com", "password": secrets.token_urlsafe(18)}
    ).encode()
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST /v1/users HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"X-Forwarded-For: 10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.7\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    conn.sendall(head + body[:-1])  # the request has started; its last byte comes later
    stops: dict[str, tuple[float, subprocess.CompletedProcess[str]]] = {}

    def stop(svc: str) -> None:
        grace = str(stack["pods"][svc]["grace"])
        start = time.monotonic()
        done = podman(stack, "stop", "-t", grace, stack["pods"][svc]["container"])
        stops[svc] = (time.monotonic() - start, done)

    stopper = threading.Thread(target=stop, args=("api",))
    stopper.start()
    deadline = time.monotonic() + 10
    while not _refused(port):  # SIGTERM arrived: no new connections
        assert time.monotonic() < deadline, "api kept accepting connections after SIGTERM"
        time.sleep(0.05)
    conn.sendall(body[-1:])
    reply = b""
    while chunk := conn.recv(65536):
        reply += chunk
    conn.close()
    status = int(reply.split(b" ", 2)[1])
    assert 200 <= status < 300, reply[:500]
    stopper.join(60)
    for svc in ("auth", "users"):
        stop(svc)
    for svc in SERVICES:
        seconds, done = stops[svc]
        assert done.returncode == 0, done.stderr
        assert seconds < stack["pods"][svc]["grace"], f"{svc} took {seconds:.1f}s"
        code = podman(
            stack, "inspect", stack["pods"][svc]["container"], "--format", "{{.State.ExitCode}}"
        )
        assert code.stdout.strip() == "0", f"{svc} exited {code.stdout.strip()} (137 = SIGKILL)"
