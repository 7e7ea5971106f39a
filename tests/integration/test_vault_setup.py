"""deploy/vault/setup.sh: POSIX sh, and idempotent (a second run changes nothing)."""

from __future__ import annotations

import subprocess
from typing import Any

import hvac
import pytest

from bulwark_devstack import infra
from bulwark_devstack import vault as devvault
from bulwark_devstack.vault_testing import VaultStack


def _snapshot(root: hvac.Client, prefix: str) -> dict[str, Any]:
    paths = ["sys/mounts", "sys/auth", "pki/cert/ca", f"database/config/{prefix}-redis"]
    for svc in devvault.SERVICES:
        role = f"{prefix}-{svc}"
        paths += [f"pki/roles/{role}", f"database/config/{role}"]
        paths += [f"database/roles/{role}{kind}" for kind in ("", "-migrate", "-redis")]
    for ident in devvault.IDENTITIES:
        role = f"{prefix}-{ident}"
        paths += [f"sys/policies/acl/{role}", f"auth/approle/role/{role}"]
        paths += [f"auth/approle/role/{role}/role-id", f"auth/kubernetes/role/{role}"]
    out: dict[str, Any] = {}
    for path in paths:
        data = root.read(path)
        assert data is not None, f"setup.sh left {path} unset"
        out[path] = data["data"]
    # Keep what setup decides, not bookkeeping (accessors, modification times).
    for volatile in ("sys/mounts", "sys/auth"):
        out[volatile] = {k: (v["type"], v.get("options")) for k, v in out[volatile].items()}
    for path in [p for p in out if p.startswith("sys/policies/")]:
        out[path] = out[path]["policy"]
    return out


def test_setup_twice_changes_nothing(vault_stack: VaultStack) -> None:
    root = hvac.Client(url=vault_stack.server.addr, token=vault_stack.server.root_token)
    before = _snapshot(root, vault_stack.prefix)
    output = devvault.run_setup(vault_stack.provisioned.setup_env, vault_stack.server.root_token)
    assert f"configured for prefix {vault_stack.prefix}" in output
    assert _snapshot(root, vault_stack.prefix) == before


def test_setup_is_posix_sh() -> None:
    try:
        shellcheck = infra.check_tool("shellcheck")
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)
    done = subprocess.run(
        [shellcheck, "-s", "sh", str(devvault.DEPLOY / "setup.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_approle_secret_ids_expire(vault_stack: VaultStack) -> None:
    """A secret id is a login credential: it expires (720 h by default), never lives forever."""
    root = hvac.Client(url=vault_stack.server.addr, token=vault_stack.server.root_token)
    for ident in devvault.IDENTITIES:
        role = root.read(f"auth/approle/role/{vault_stack.prefix}-{ident}")["data"]
        assert role["secret_id_ttl"] == 720 * 3600, (ident, role["secret_id_ttl"])
        issued = root.auth.approle.generate_secret_id(f"{vault_stack.prefix}-{ident}")
        assert 0 < issued["data"]["secret_id_ttl"] <= 720 * 3600
