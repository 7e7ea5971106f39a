"""A whole stack whose dependencies this process owns: PostgreSQL, Redis and OpenBao as child
processes (behind latency proxies for PostgreSQL and Redis), the three services provisioned
by deploy/vault/ as in a cluster. Each dependency can be stopped and started again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bulwark_devstack import vault as devvault
from bulwark_devstack.cli import ensure_database
from bulwark_devstack.faults.deps import OwnedBao, OwnedPostgres, OwnedRedis, Restartable
from bulwark_devstack.faults.proxy import LatencyProxy
from bulwark_devstack.stack import SERVICES, Stack, StackConfig


class ServiceProcess:
    """users or auth as a dependency of api: "returned" once its health port says SERVING."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.stack = stack
        self.name = name

    def stop(self) -> None:
        self.stack.stop(self.name)

    def start(self) -> None:
        self.stack.start(self.name)
        deadline = time.monotonic() + 90
        while not self.stack.grpc_serving(self.name):
            if self.stack.dead() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not come back{self.stack._tail()}")
            time.sleep(0.1)


@dataclass
class OwnedStack:
    stack: Stack
    postgres: OwnedPostgres
    redis: OwnedRedis
    bao: OwnedBao
    pg_proxy: LatencyProxy
    redis_proxy: LatencyProxy
    log_dir: Path

    def dependencies(self) -> dict[str, Restartable]:
        """In the order a fault run takes them."""
        return {
            "redis": self.redis,
            "postgresql": self.postgres,
            "users": ServiceProcess(self.stack, "users"),
            "auth": ServiceProcess(self.stack, "auth"),
            "openbao": self.bao,
            "slow redis": self.redis_proxy,
            "slow postgresql": self.pg_proxy,
        }

    def service_pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.stack.procs.items() if p.poll() is None}


def _stopped(dep: Restartable) -> None:
    with contextlib.suppress(Exception):
        dep.stop()


@contextlib.contextmanager
def owned_stack(
    workdir: Path, env: dict[str, dict[str, str]] | None = None
) -> Iterator[OwnedStack]:
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        pg, kv, bao = OwnedPostgres(workdir), OwnedRedis(workdir), OwnedBao(workdir)
        cleanup.callback(pg.remove)
        for dep in (pg, kv, bao):
            dep.start()
            cleanup.callback(_stopped, dep)
        pg_proxy = LatencyProxy(pg.port, "postgresql")
        cleanup.callback(pg_proxy.close)
        kv_proxy = LatencyProxy(kv.port, "redis")
        cleanup.callback(kv_proxy.close)
        pg_proxy.slow_delay, kv_proxy.slow_delay = 0.05, 0.25
        dbs = {svc: ensure_database(pg.url, f"bulwark_{svc}") for svc in SERVICES}
        deployment = cleanup.enter_context(
            devvault.deployment(
                bao.server, "bw", "bulwark-faults", dbs, kv.url, "bulwark:", workdir / "vault"
            )
        )
        stack_env: dict[str, dict[str, str]] = {
            # Virtual users each come from their own address (X-Forwarded-For), and refresh
            # far more often than people do: 120 token requests a minute each, not 30.
            "api": {"API_TRUSTED_PROXIES": '["127.0.0.1/32"]', "API_TOKEN_RATE": "120/minute"},
        }
        for svc in SERVICES:  # the services reach PostgreSQL through the proxy
            url = f"postgresql://127.0.0.1:{pg_proxy.port}/bulwark_{svc}"
            stack_env.setdefault(svc, {})[f"{svc.upper()}_DATABASE_URL"] = url
        for svc, extra in (env or {}).items():
            stack_env.setdefault(svc, {}).update(extra)
        config = StackConfig(
            data_dir=workdir / "data",
            redis_url=f"redis://127.0.0.1:{kv_proxy.port}/0",
            database_urls=dict(dbs),
            env=stack_env,
            log_dir=workdir / "logs",
            vault=deployment,
        )
        stack = Stack(config)
        cleanup.callback(stack.stop_all)
        stack.provision_keys()
        stack.start_all()
        stack.wait_ready(timeout=120)
        yield OwnedStack(stack, pg, kv, bao, pg_proxy, kv_proxy, workdir / "logs")
