"""`make dev`: the whole suite in the foreground; Ctrl-C or SIGTERM stops all of it."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from bulwark_devstack import vault as devvault
from bulwark_devstack.infra import (
    PG_START,
    MissingDependency,
    private_redis,
    require_postgres,
    require_redis,
)
from bulwark_devstack.stack import SERVICES, WIRING, Stack, StackConfig

SETTING_PREFIXES = ("USERS_", "AUTH_", "API_", "BULWARK_")
DEV_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# What `make admin` (and any command of yours) needs to act as users in this dev stack.
ENV_FILE = "dev.env"


def main() -> None:
    data_dir = Path(os.environ.get("BULWARK_DATA_DIR", ".data")).resolve()
    try:
        with contextlib.ExitStack() as resources:
            redis_url = os.environ.get("REDIS_URL")
            if redis_url:
                require_redis(redis_url)
                redis_note = f"{redis_url} (REDIS_URL)"
            else:
                redis_url = resources.enter_context(private_redis(data_dir / "redis"))
                redis_note = f"{redis_url} (private, for this run; set REDIS_URL to use yours)"
            databases = _databases()
            vault = resources.enter_context(_vault(data_dir, databases, redis_url))
            run(data_dir, redis_url, redis_note, databases, vault)
    except MissingDependency as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _databases() -> dict[str, str]:
    """One PostgreSQL database per service, kept between runs (Vault's dynamic database
    users need PostgreSQL: there is no SQLite in a stack that runs like production)."""
    admin = os.environ.get("BULWARK_DEV_POSTGRES_URL", DEV_POSTGRES)
    try:
        require_postgres(admin)
    except MissingDependency as exc:
        raise MissingDependency(
            f"{exc}\nmake dev needs PostgreSQL >= 13 (apt install postgresql; then {PG_START}), "
            "or set BULWARK_DEV_POSTGRES_URL to an admin URL of yours"
        ) from None
    name = os.environ.get("BULWARK_DEV_DATABASE_PREFIX", "bulwark_dev")
    return {svc: ensure_database(admin, f"{name}_{svc}") for svc in SERVICES}


@contextlib.contextmanager
def _vault(
    data_dir: Path, databases: dict[str, str], redis_url: str
) -> Iterator[devvault.VaultDeployment]:
    """A private OpenBao dev server (or VAULT_ADDR with an admin VAULT_TOKEN), provisioned by
    deploy/vault/ exactly as the chart's setup job does; its leases end with the run."""
    if os.environ.get("VAULT_ADDR"):
        os.environ.setdefault("BULWARK_TEST_VAULT_ADDR", os.environ["VAULT_ADDR"])
        os.environ.setdefault("BULWARK_TEST_VAULT_TOKEN", os.environ.get("VAULT_TOKEN", ""))
    with devvault.dev_server(data_dir / "bao") as server:
        prefix = os.environ.get("BULWARK_VAULT_PREFIX", "bulwark")
        yield from _provisioned(server, prefix, databases, redis_url, data_dir)


def _provisioned(
    server: devvault.VaultServer,
    prefix: str,
    databases: dict[str, str],
    redis_url: str,
    data_dir: Path,
) -> Iterator[devvault.VaultDeployment]:
    with devvault.deployment(
        server,
        prefix,
        "dev",
        databases,
        redis_url,
        "bulwark:",
        data_dir / "vault",
        # The databases outlive the run: their owner groups must too, or the next run's
        # migrations (as <db>_owner) may not touch the tables.
        keep_databases=True,
    ) as deployment:
        yield deployment


def ensure_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


def _write_env_file(path: Path, env: dict[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))


def run(
    data_dir: Path,
    redis_url: str,
    redis_note: str,
    databases: dict[str, str],
    vault: devvault.VaultDeployment,
) -> None:
    config = StackConfig(
        data_dir=data_dir,
        redis_url=redis_url,
        database_urls=dict(databases),
        vault=vault,
        users_port=int(os.environ.get("USERS_PORT", 50052)),
        auth_port=int(os.environ.get("AUTH_PORT", 50051)),
        api_port=int(os.environ.get("API_PORT", 8080)),
        management_port=int(os.environ.get("API_MANAGEMENT_PORT", 8081)),
        users_metrics_port=int(os.environ.get("USERS_METRICS_PORT", 9052)),
        auth_metrics_port=int(os.environ.get("AUTH_METRICS_PORT", 9051)),
        # Your own service settings (API_CORS_ORIGINS=..., BULWARK_ENV=...) reach the services;
        # the addresses that wire them together stay the runner's.
        env={
            "*": {
                # Each service applies its own migrations as it starts (the three side by
                # side, a no-op at head), instead of three `migrate` commands first.
                "BULWARK_MIGRATE_ON_STARTUP": "true",
                **{
                    k: v
                    for k, v in os.environ.items()
                    if k.startswith(SETTING_PREFIXES) and k not in WIRING
                },
            }
        },
    )
    stack = Stack(config)
    users_env = {
        k: v
        for k, v in config.environment("users").items()
        if k.startswith(("USERS_", "BULWARK_", "VAULT_", "REDIS_"))
    }
    _write_env_file(data_dir / ENV_FILE, users_env)
    stop = threading.Event()
    restart = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # A stopped service stays stopped (so /readyz can be watched turning 503) until SIGHUP.
    signal.signal(signal.SIGHUP, lambda *_: restart.set())
    try:
        if config.env["*"]["BULWARK_MIGRATE_ON_STARTUP"].lower() in ("true", "1", "yes", "on"):
            stack.provision_keys()
        else:  # you asked the services not to: what the chart's hook job does, first
            print("applying migrations ...", flush=True)
            stack.migrate()
        began = time.monotonic()
        stack.start_all()
        stack.wait_ready(timeout=120)  # a loaded laptop can take a minute
        print(f"started and migrated in {time.monotonic() - began:.1f} s", flush=True)
        pids = ", ".join(f"{name} {p.pid}" for name, p in stack.procs.items())
        print(
            "\nBulwark is up:\n"
            f"  api    {config.api_url}   (HTTP; probes with details: "
            f"curl -s http://127.0.0.1:{config.management_port}/readyz)\n"
            f"  auth   127.0.0.1:{config.auth_port}        (gRPC)\n"
            f"  users  127.0.0.1:{config.users_port}        (gRPC)\n"
            f"  metrics {config.metrics_url('api')}, {config.metrics_url('auth')}, "
            f"{config.metrics_url('users')}\n"
            f"  redis  {redis_note}\n"
            f"  vault  {vault.server.addr} (prefix {vault.prefix}: every secret, mTLS between "
            "the services)\n"
            f"  data   {data_dir}\n"
            f"  pids   {pids}   (this runner: {os.getpid()})\n"
            "Create the first admin (password read from stdin):\n"
            "  make admin USERNAME=admin EMAIL=admin@example.com\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        reported: set[str] = set()
        while not stop.wait(0.5):
            for name in set(stack.dead()) - reported:
                code = stack.procs[name].returncode
                print(
                    f"make dev: {name} exited (code {code}); the others keep running. "
                    f"Start it again: kill -HUP {os.getpid()}",
                    file=sys.stderr,
                    flush=True,
                )
                reported.add(name)
            if restart.is_set():
                restart.clear()
                for name in stack.dead():
                    print(f"make dev: starting {name} again", flush=True)
                    stack.start(name)
                    reported.discard(name)
    except RuntimeError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        print("stopping ...", flush=True)
        stack.stop_all()
