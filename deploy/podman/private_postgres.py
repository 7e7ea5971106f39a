"""A private PostgreSQL host process for one `make e2e-containers` run: the shared server on
5432 is often at max_connections while other suites run, and one run's pods plus Vault's
pools must not fail on that."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bulwark_devstack.infra import MissingDependency, free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise MissingDependency(f"no {name}: apt-get install postgresql")
    return found[-1]


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
        [*as_pg, _bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [*as_pg, _bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(data),
         "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL, stderr=(workdir / "postgres.log").open("wb"),
    )  # fmt: skip
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(url, connect_timeout=1).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise MissingDependency(
                        f"private PostgreSQL did not start (see {workdir}/postgres.log)"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()  # smart shutdown would wait for Vault's pooled connections
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
