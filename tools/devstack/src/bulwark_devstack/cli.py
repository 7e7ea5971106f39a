"""`make dev`: the whole suite in the foreground; Ctrl-C or SIGTERM stops all of it."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from bulwark_devstack.infra import MissingDependency, private_redis, require_redis
from bulwark_devstack.stack import WIRING, Stack, StackConfig

SETTING_PREFIXES = ("USERS_", "AUTH_", "API_", "BULWARK_")


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
            run(data_dir, redis_url, redis_note)
    except MissingDependency as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def run(data_dir: Path, redis_url: str, redis_note: str) -> None:
    config = StackConfig(
        data_dir=data_dir,
        redis_url=redis_url,
        database_urls={
            s: os.environ.get(f"{s.upper()}_DATABASE_URL") for s in ("users", "auth", "api")
        },
        users_port=int(os.environ.get("USERS_PORT", 50052)),
        auth_port=int(os.environ.get("AUTH_PORT", 50051)),
        api_port=int(os.environ.get("API_PORT", 8080)),
        management_port=int(os.environ.get("API_MANAGEMENT_PORT", 8081)),
        # Your own service settings (API_CORS_ORIGINS=..., BULWARK_ENV=...) reach the services;
        # the addresses that wire them together stay the runner's.
        env={
            "*": {
                k: v
                for k, v in os.environ.items()
                if k.startswith(SETTING_PREFIXES) and k not in WIRING
            }
        },
    )
    stack = Stack(config)
    stop = threading.Event()
    restart = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # A stopped service stays stopped (so /readyz can be watched turning 503) until SIGHUP.
    signal.signal(signal.SIGHUP, lambda *_: restart.set())
    try:
        print("applying migrations ...", flush=True)
        stack.migrate()
        stack.start_all()
        stack.wait_ready(timeout=60)
        pids = ", ".join(f"{name} {p.pid}" for name, p in stack.procs.items())
        print(
            "\nBulwark is up:\n"
            f"  api    {config.api_url}   (HTTP; probes with details: "
            f"curl -s http://127.0.0.1:{config.management_port}/readyz)\n"
            f"  auth   127.0.0.1:{config.auth_port}        (gRPC)\n"
            f"  users  127.0.0.1:{config.users_port}        (gRPC)\n"
            f"  redis  {redis_note}\n"
            f"  data   {data_dir}\n"
            f"  pids   {pids}   (this runner: {os.getpid()})\n"
            "Create the first admin (password read from stdin):\n"
            "  uv run bulwark-users create-admin --username admin --email admin@example.com\n"
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
