"""Dependencies a fault run owns, so it can stop and start them: a throwaway PostgreSQL
cluster, a Redis server process and an OpenBao server with raft storage (a dev server keeps
everything in memory, so it could not come back), each on a fixed loopback port across
restarts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

import hvac
import psycopg
import redis

from bulwark_devstack.infra import (
    free_port,
    postgres_binary,
    redis_server_binary,
    terminate,
    wait_started,
)
from bulwark_devstack.vault import VaultServer, bao_binary


class Restartable(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class OwnedPostgres:
    """A private cluster (trust auth, fsync off); `stop` is a fast shutdown, as a pod's."""

    name = "postgresql"

    def __init__(self, workdir: Path) -> None:
        # The `postgres` account must reach the data directory: a directory of its own
        # under /tmp (pytest's and mkdtemp's directories are private to us).
        self.root = Path(tempfile.mkdtemp(prefix="bulwark-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "pgdata"
        self.log = workdir / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.proc: subprocess.Popen[bytes] | None = None
        self.data.mkdir(parents=True)
        if self._as_pg:
            shutil.chown(self.data, "postgres", "postgres")
        subprocess.run(
            [*self._as_pg, postgres_binary("initdb"), "-D", str(self.data), "-U", "postgres",
             "-A", "trust", "--no-sync"],
            check=True, capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*self._as_pg, postgres_binary("postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.data), "-c", "listen_addresses=127.0.0.1",
             "-c", "max_connections=300", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"),
        )  # fmt: skip
        wait_started(self._connects, self.proc, "PostgreSQL", log=self.log)

    def _connects(self) -> bool:
        psycopg.connect(self.url, connect_timeout=1).close()
        return True

    def stop(self) -> None:
        # SIGINT to the postmaster (runuser forwards no signal): fast shutdown, clients
        # disconnected, committed data kept.
        if self.proc is not None and self.proc.poll() is None:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class OwnedRedis:
    """A Redis server that keeps its data across a restart (RDB written on shutdown), as a
    persistent production Redis does. ACL users are not data: they are lost unless saved."""

    name = "redis"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "3600 1", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        wait_started(client.ping, self.proc, "redis-server")
        client.close()

    def stop(self) -> None:
        terminate(self.proc)


class OwnedBao:
    """`bao server` with (single-node raft) storage: initialised once (one unseal key),
    unsealed after every start as an operator (or auto-unseal) would. Secrets, leases and
    tokens survive a restart."""

    name = "openbao"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "bao"
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        (self.dir / "data").mkdir()
        (self.dir / "bao.hcl").write_text(
            f'storage "raft" {{\n path = "{self.dir / "data"}"\n node_id = "n1"\n}}\n'
            f'listener "tcp" {{\n address = "127.0.0.1:{self.port}"\n tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\ncluster_addr = "http://127.0.0.1:{free_port()}"\n'
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._unseal_key = ""
        self.root_token = ""

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        with (self.dir / "bao.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [bao_binary(), "server", f"-config={self.dir / 'bao.hcl'}"],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.dir,
            )  # fmt: skip
        client = hvac.Client(url=self.addr, timeout=2)
        wait_started(
            lambda: client.sys.read_health_status(method="GET") is not None, self.proc, "bao"
        )
        if not client.sys.is_initialized():
            # Initialising raft storage takes seconds.
            init = hvac.Client(url=self.addr, timeout=60).sys.initialize(
                secret_shares=1, secret_threshold=1
            )
            self._unseal_key = init["keys"][0]
            self.root_token = init["root_token"]
            (self.dir / "init.json").write_text(json.dumps({"note": "keys kept in memory only"}))
        hvac.Client(url=self.addr, timeout=30).sys.submit_unseal_key(self._unseal_key)
        wait_started(lambda: not client.sys.is_sealed(), self.proc, "bao unseal")
        authed = hvac.Client(url=self.addr, token=self.root_token, timeout=2)
        # Active and serving requests (a just-unsealed server answers 5xx for a moment).
        wait_started(
            lambda: authed.sys.list_mounted_secrets_engines() is not None, self.proc, "bao"
        )

    def stop(self) -> None:
        terminate(self.proc)

    @property
    def server(self) -> VaultServer:
        return VaultServer(self.addr, self.root_token)
