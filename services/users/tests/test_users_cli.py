"""The bulwark-users command line: create-admin and serve as real processes, the error paths
in-process (each process start costs ~2 s of imports)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import select

from bulwark.users.v1 import users_pb2, users_pb2_grpc
from bulwark_common.db import Database, database_url
from bulwark_devstack import infra
from bulwark_users import cli
from bulwark_users.models import User

PW = "violet-kettle-orbit-42"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that could point the service elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("USERS_", "BULWARK_", "OTEL_", "VAULT_"))
        and k not in ("DATABASE_URL",)
    }
    # Dev without Vault: these tests are about the commands, not where secrets come from
    # (the Vault-backed path runs in tests/integration).
    return {**env, "BULWARK_ENV": "dev", **extra}


def wait_serving(target: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, "server exited early"
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, "server never became SERVING"
            time.sleep(0.1)


def test_create_admin_then_log_in_through_the_server(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    port = infra.free_port()
    env = clean_env(
        USERS_DATABASE_URL=postgres_url,
        USERS_PORT=str(port),
        # Free ports: a `make dev` on this machine holds the defaults.
        USERS_HEALTH_PORT=str(infra.free_port()),
        USERS_METRICS_PORT=str(infra.free_port()),
        REDIS_URL=redis_url,
        BULWARK_REDIS_PREFIX=redis_prefix,
        BULWARK_DATA_DIR=str(tmp_path / "data"),
    )
    # Started together to save time: the server does not migrate (as in production), the
    # admin command does, and the server is only called once the admin exists.
    server = subprocess.Popen(
        [sys.executable, "-m", "bulwark_users"],  # no subcommand: serve
        env={**env, "BULWARK_MIGRATE_ON_STARTUP": "false"},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        admin = subprocess.run(
            [
                infra.venv_script("bulwark-users"),
                "create-admin",
                "--username",
                "Root",
                "--email",
                "Root@Example.com",
            ],
            input=f"{PW}\n",
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert admin.returncode == 0, admin.stderr
        assert admin.stdout.startswith("created admin root (")
        assert PW not in admin.stdout + admin.stderr
        wait_serving(f"127.0.0.1:{port}", server)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = users_pb2_grpc.UsersServiceStub(channel)
            reply = stub.VerifyCredentials(
                users_pb2.VerifyCredentialsRequest(username="root", password=PW), timeout=10
            )
        assert reply.ok
        assert (reply.user.email, list(reply.user.roles)) == ("root@example.com", ["admin", "user"])
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr.decode()[-2000:]
    assert not (tmp_path / "data").exists()  # PostgreSQL given: no SQLite file made


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run cli.main() here: clean settings, and leave the test runner's logging alone."""
    for key in list(os.environ):
        if key.startswith(("USERS_", "BULWARK_", "VAULT_")) or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("BULWARK_ENV", "dev")  # without Vault; Vault-backed: tests/integration
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "setup_logging", lambda *a, **k: None)
    return tmp_path


def run_admin(monkeypatch: pytest.MonkeyPatch, stdin: io.StringIO, *args: str) -> int:
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(SystemExit) as info:
        cli.main(["create-admin", *args])
    assert isinstance(info.value.code, int)
    return info.value.code


def test_create_admin_errors_are_one_line(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No settings at all: the embedded default, .data/users.db under the working directory.
    ok = run_admin(monkeypatch, io.StringIO(f"{PW}\n"), "--username", "root", "--email", "r@x.io")
    assert ok == 0
    assert (in_process / ".data" / "users.db").exists()
    cases = [
        (f"{PW}\n", ["--username", "ROOT", "--email", "s@x.io"], "username already taken"),
        (f"{PW}\n", ["--username", "root2", "--email", "R@X.IO"], "email already taken"),
        ("password123456\n", ["--username", "root3", "--email", "t@x.io"], "password: is too"),
        ("short\n", ["--username", "root3", "--email", "t@x.io"], "password: must be at least"),
        ("", ["--username", "root3", "--email", "t@x.io"], "password: must be at least"),
        (f"{PW}\n", ["--username", "r!", "--email", "t@x.io"], "username: "),
        (f"{PW}\n", ["--username", "root3", "--email", "nope"], "email: "),
    ]
    capsys.readouterr()
    for stdin, args, message in cases:
        assert run_admin(monkeypatch, io.StringIO(stdin), *args) == 1, message
        err = capsys.readouterr().err
        assert err.startswith(f"bulwark-users: {message}") and err.count("\n") == 1, err
    db = Database(database_url(None, in_process / ".data", "users"))
    with db.sessions() as session:
        users = session.scalars(select(User)).all()
    db.dispose()
    assert [(u.username, u.roles) for u in users] == [("root", ["admin", "user"])]


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_create_admin_prompts_twice_on_a_terminal(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter([PW, PW + "x", PW, PW])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    assert run_admin(monkeypatch, FakeTTY(), "--username", "root", "--email", "r@x.io") == 1
    assert capsys.readouterr().err == "bulwark-users: passwords do not match\n"
    assert run_admin(monkeypatch, FakeTTY(), "--username", "root", "--email", "r@x.io") == 0
    assert prompts == ["Password: ", "Repeat password: "] * 2


def test_migrate_subcommand(
    in_process: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv("USERS_DATABASE_URL", postgres_url)
    cli.main(["migrate"])
    cli.main(["migrate"])  # idempotent
    db = Database(database_url(postgres_url, in_process, "users"))
    with db.sessions() as session:
        assert session.scalars(select(User)).all() == []
    db.dispose()
    assert not (in_process / ".data").exists()
