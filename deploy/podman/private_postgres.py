"""A private PostgreSQL host process for one `make e2e-containers` run: the shared server on
5432 is often at max_connections while other suites run, and one run's pods plus Vault's
pools must not fail on that."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bulwark_devstack.infra import free_port, postgres_binary, terminate, wait_started


@contextlib.contextmanager
def private_postgres(workdir: Path) -> Iterator[str]:
    """Yield the admin URL of a throwaway cluster on a free loopback port (trust auth)."""
    data = workdir / "pgdata"
    data.mkdir(parents=True)
    # PostgreSQL refuses to run as root: the cluster belongs to the `postgres` account.
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run(
        [*as_pg, postgres_binary("initdb"), "-D", str(data), "-U", "postgres",
         "-A", "trust", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [*as_pg, postgres_binary("postgres"), "-D", str(data), "-p", str(port), "-k", str(data),
         "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=(workdir / "postgres.log").open("wb"),
    )  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def connects() -> bool:
        psycopg.connect(url, connect_timeout=1).close()
        return True

    try:
        wait_started(
            connects,
            proc,
            "private PostgreSQL",
            errors=(psycopg.OperationalError,),
            log=workdir / "postgres.log",
        )
        yield url
    finally:
        terminate(proc)  # smart shutdown would wait for Vault's pooled connections
