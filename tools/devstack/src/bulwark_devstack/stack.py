"""The three services as real local processes, wired together: used by `make dev`, the e2e
tests and the benchmarks, so all three run the suite the same way."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from bulwark_devstack import health
from bulwark_devstack.infra import free_port, venv_script
from bulwark_devstack.vault import VaultDeployment

SERVICES = ("users", "auth", "api")  # start order: callees first
# The settings that wire the services to each other and to their data: always the stack's.
WIRING = frozenset(
    {
        "BULWARK_DATA_DIR",
        "REDIS_URL",
        "BULWARK_REDIS_PREFIX",
        "USERS_PORT",
        "AUTH_PORT",
        "API_PORT",
        "USERS_HEALTH_PORT",
        "AUTH_HEALTH_PORT",
        "API_MANAGEMENT_PORT",
        "USERS_METRICS_PORT",
        "AUTH_METRICS_PORT",
        "AUTH_USERS_TARGET",
        "API_AUTH_TARGET",
        "API_USERS_TARGET",
    }
)


@dataclass
class StackConfig:
    data_dir: Path
    redis_url: str
    redis_prefix: str = "bulwark:"
    # None: each service keeps a SQLite file under data_dir.
    database_urls: dict[str, str | None] = field(default_factory=dict)
    users_port: int = 0
    auth_port: int = 0
    api_port: int = 0
    management_port: int = 0  # api's probes with details
    # Extra environment per service name ("users", "auth", "api") or "*" for all.
    env: dict[str, dict[str, str]] = field(default_factory=dict)
    log_dir: Path | None = None  # None: inherit the terminal
    # Every secret from this Vault prefix (mTLS, dynamic credentials, signing keys); None:
    # dev without Vault (plaintext, local secrets).
    vault: VaultDeployment | None = None
    users_health_port: int = 0
    auth_health_port: int = 0
    # Prometheus exposition of users and auth (api's is on its management port).
    users_metrics_port: int = 0
    auth_metrics_port: int = 0

    def __post_init__(self) -> None:
        self.users_port = self.users_port or free_port()
        self.auth_port = self.auth_port or free_port()
        self.api_port = self.api_port or free_port()
        self.users_health_port = self.users_health_port or free_port()
        self.auth_health_port = self.auth_health_port or free_port()
        self.management_port = self.management_port or free_port()
        self.users_metrics_port = self.users_metrics_port or free_port()
        self.auth_metrics_port = self.auth_metrics_port or free_port()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def port(self, service: str) -> int:
        return {"users": self.users_port, "auth": self.auth_port, "api": self.api_port}[service]

    def health_port(self, service: str) -> int:
        """The plaintext port that answers only grpc.health.v1 (what a kubelet probes)."""
        return {"users": self.users_health_port, "auth": self.auth_health_port}[service]

    def metrics_url(self, service: str) -> str:
        """Where `service` answers Prometheus scrapes (never its public port)."""
        port = {
            "users": self.users_metrics_port,
            "auth": self.auth_metrics_port,
            "api": self.management_port,
        }[service]
        return f"http://127.0.0.1:{port}/metrics"

    def environment(self, service: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("USERS_", "AUTH_", "API_", "BULWARK_"))
            and k not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            {
                "BULWARK_ENV": "dev",
                "BULWARK_DATA_DIR": str(self.data_dir),
                "REDIS_URL": self.redis_url,
                "BULWARK_REDIS_PREFIX": self.redis_prefix,
                "BULWARK_ISSUER": self.api_url,
                "USERS_PORT": str(self.users_port),
                "USERS_HEALTH_PORT": str(self.users_health_port),
                "USERS_METRICS_PORT": str(self.users_metrics_port),
                "AUTH_METRICS_PORT": str(self.auth_metrics_port),
                "AUTH_PORT": str(self.auth_port),
                "AUTH_HEALTH_PORT": str(self.auth_health_port),
                "AUTH_USERS_TARGET": f"127.0.0.1:{self.users_port}",
                "API_PORT": str(self.api_port),
                "API_MANAGEMENT_PORT": str(self.management_port),
                "API_AUTH_TARGET": f"127.0.0.1:{self.auth_port}",
                "API_USERS_TARGET": f"127.0.0.1:{self.users_port}",
                "PYTHONUNBUFFERED": "1",
            }
        )
        url = self.database_urls.get(service)
        if url:
            env[f"{service.upper()}_DATABASE_URL"] = url
        if self.vault is not None:
            # Vault login settings and the database URL without credentials.
            env.update(self.vault.env(service))
        env.update(self.env.get("*", {}))
        env.update(self.env.get(service, {}))
        return env


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def migrate(self) -> None:
        """What the chart's hook jobs do: migrations, and with Vault a first signing key
        (the auth-keys operator role; auth itself may only read keys)."""
        # The three databases are independent: migrate them side by side (each command is
        # mostly Python start-up and a Vault login, so in sequence that was most of the wait).
        with ThreadPoolExecutor(len(SERVICES)) as pool:
            for done in [pool.submit(self._run, svc, "migrate") for svc in SERVICES]:
                done.result()
        self.provision_keys()

    def provision_keys(self) -> None:
        """A first signing key in Vault, unless there is one (dev services migrate at
        start-up themselves, but never write keys)."""
        if self.config.vault is not None:
            self._run("auth", "rotate-keys", "--if-missing", identity="auth-keys")

    def rotate_keys(self, publish_seconds: float = 0.0) -> None:
        """`bulwark-auth rotate-keys` as the operator would (the auth-keys identity)."""
        self._run(
            "auth", "rotate-keys", "--publish-seconds", str(publish_seconds), identity="auth-keys"
        )

    def _run(self, service: str, *args: str, identity: str | None = None) -> None:
        env = self.config.environment(service)
        if identity is not None and self.config.vault is not None:
            env.update(self.config.vault.env(identity))
        done = subprocess.run(
            [venv_script(f"bulwark-{service}"), *args], env=env, capture_output=True, check=False
        )
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"bulwark-{service} {' '.join(args)} failed: {tail}")

    def start(self, service: str) -> None:
        out: IO[bytes] | None = None
        if self.config.log_dir is not None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.config.log_dir / f"{service}.log", "ab")  # noqa: SIM115
            self._logs.append(out)
        self.procs[service] = subprocess.Popen(
            [venv_script(f"bulwark-{service}"), "serve"],
            env=self.config.environment(service),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
        )

    def restart(self, service: str, timeout: float = 60) -> None:
        """Stop (SIGTERM), start again, and wait until api's readiness sees it: the peers'
        channels have reconnected, not just the process answering its health port."""
        self.stop(service)
        self.start(service)
        self.wait_ready(timeout=timeout)

    def start_all(self) -> None:
        for svc in SERVICES:
            self.start(svc)

    def stop(self, service: str, timeout: float = 15) -> int | None:
        proc = self.procs.pop(service, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        for svc in reversed(SERVICES):
            self.stop(svc)
        for f in self._logs:
            f.close()
        self._logs.clear()

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def grpc_serving(self, service: str) -> bool:
        """Through the plaintext health-only port, as a kubelet probe asks."""
        port = self.config.health_port(service)
        return health.check(f"127.0.0.1:{port}", timeout=1) == "SERVING"

    def wait_ready(self, timeout: float = 60) -> None:
        """Until api's /readyz says 200, or fail naming what is down or dead."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if dead := self.dead():
                raise RuntimeError(f"exited during start-up: {', '.join(dead)}{self._tail()}")
            try:
                # The management port's /readyz names what is down (the public one does not).
                mgmt = f"http://127.0.0.1:{self.config.management_port}"
                r = httpx.get(f"{mgmt}/readyz", timeout=2)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise RuntimeError(f"stack not ready after {timeout}s: {last}{self._tail()}")

    def _tail(self) -> str:
        if self.config.log_dir is None:
            return ""
        parts = []
        for log in sorted(self.config.log_dir.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"\n--- {log.name} ---\n" + "\n".join(lines))
        return "".join(parts)
