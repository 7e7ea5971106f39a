"""The chart agrees with the code it deploys: the Vault setup Job passes exactly what
deploy/vault/setup.sh reads and ships its files byte for byte; every service env var the chart
renders is a setting of that service, and means what the contract says."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

sys.path.insert(0, str(Path(__file__).parent))
from deploykit import CHART, NAMESPACE, ROOT, VALUE_SETS, Docs, pod_specs

from bulwark_api.settings import ApiSettings
from bulwark_auth.settings import AuthSettings
from bulwark_users.settings import UsersSettings

SETS = list(VALUE_SETS)
VAULT_SOURCE = ROOT / "deploy" / "vault"
SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "auth": AuthSettings,
    "users": UsersSettings,
}
# Read outside the settings classes (bulwark_common.telemetry).
OTHER_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT"}
SERVICES = ("api", "auth", "users")


def chart_copies() -> dict[Path, Path]:
    """Chart file -> its path outside the chart, for every file setup.sh and the bootstrap
    need, and the Grafana dashboard."""
    pairs = {
        CHART / "files" / "vault" / p.relative_to(VAULT_SOURCE): p
        for p in VAULT_SOURCE.rglob("*")
        if p.is_file() and p.name != "postgres-bootstrap.sql"
    }
    pairs[CHART / "files" / "postgres" / "bootstrap.sql"] = VAULT_SOURCE / "postgres-bootstrap.sql"
    pairs[CHART / "files" / "grafana" / "bulwark.json"] = (
        ROOT / "deploy" / "grafana" / "bulwark.json"
    )
    return pairs


def test_deploy_vault_and_grafana_are_links_to_the_charts_files() -> None:
    """One copy: Helm reads nothing outside the chart, so the files live in the chart and
    deploy/vault and deploy/grafana link to them."""
    pairs = chart_copies()
    assert len(pairs) >= 7  # setup.sh, four policies, the bootstrap, the dashboard
    for real, link in pairs.items():
        assert link.is_symlink(), f"{link} must be a link to {real}, not a copy"
        assert link.resolve() == real.resolve() and real.is_file() and not real.is_symlink()
    shipped = {p for p in (CHART / "files").rglob("*") if p.is_file()}
    assert shipped == set(pairs), "files/ holds files deploy/vault does not link to"


def by_name(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    (doc,) = (d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
    return doc


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("name", SETS)
def test_vault_setup_job_passes_exactly_what_setup_reads(
    name: str, objects: dict[str, Docs]
) -> None:
    script = (VAULT_SOURCE / "setup.sh").read_text()
    read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", script))
    job = by_name(objects[name], "Job", "bulwark-vault-setup")
    spec = job["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = container_env(c)
    # The secrets the command reads from the mounted Secret and exports.
    exported = set(re.findall(r"^\s*export (.+)$", c["command"][-1], re.M)[0].split())
    assert exported == {
        "VAULT_TOKEN",
        "BULWARK_SETUP_DB_ADMIN_PASSWORD",
        "BULWARK_SETUP_REDIS_PASSWORD",
    }
    # The bao CLI setup.sh calls reads VAULT_CACERT itself; HOME is its config directory.
    unread = (set(env) | exported) - read - {"VAULT_CACERT", "HOME"}
    assert not unread, f"the setup Job passes inputs setup.sh never reads: {sorted(unread)}"
    for svc in SERVICES:
        url = env[f"BULWARK_SETUP_{svc.upper()}_DB_URL"]
        assert re.fullmatch(
            r"postgresql://\{\{username\}\}:\{\{password\}\}@[^/]+:\d+/bulwark_" + svc, url
        )
    assert env["BULWARK_SETUP_DB_ADMIN_USER"] == "postgres"
    assert env["BULWARK_SETUP_REDIS_HOST"] and env["BULWARK_SETUP_REDIS_PORT"].isdigit()
    assert env["BULWARK_SETUP_REDIS_USERNAME"] == "default"
    assert env["BULWARK_NAMESPACE"] == NAMESPACE
    assert env["BULWARK_SETUP_K8S_HOST"] == "https://kubernetes.default.svc"
    assert env["BULWARK_SETUP_K8S_CA_FILE"].startswith("/etc/bulwark/kube-ca/")
    api = container_env(
        by_name(objects[name], "Deployment", "bulwark-api")["spec"]["template"]["spec"][
            "containers"
        ][0]
    )
    assert env["BULWARK_REDIS_PREFIX"] == api["BULWARK_REDIS_PREFIX"] == "bulwark:"
    assert env["BULWARK_VAULT_PREFIX"] == api["BULWARK_VAULT_PREFIX"]
    # setup.sh finds its policies at $HERE/policies/<name>.hcl: the volume restores the layout.
    (mount,) = (m for m in c["volumeMounts"] if m["name"] == "setup")
    assert c["command"][-1].rstrip().endswith(f"{mount['mountPath']}/setup.sh")
    (volume,) = (v for v in spec["volumes"] if v["name"] == "setup")
    config = by_name(objects[name], "ConfigMap", volume["configMap"]["name"])
    files = {item["path"]: config["data"][item["key"]] for item in volume["configMap"]["items"]}
    expected = {
        str(p.relative_to(VAULT_SOURCE)): p.read_text()
        for p in VAULT_SOURCE.rglob("*")
        if p.is_file() and p.name != "postgres-bootstrap.sql"
    }
    assert files == expected


def settings_env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = set()
    for field, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(c) for c in alias.choices}
        else:
            names.add((prefix + field).upper())
    return names


def service_containers(docs: Docs) -> dict[str, dict[str, Any]]:
    """Every Bulwark container (services and their jobs) -> the service whose code runs."""
    out = {}
    for where, spec in pod_specs(docs):
        for c in spec["containers"]:
            image = c["image"].rsplit("/", 1)[-1].split(":")[0].split("@")[0]
            if image.startswith("bulwark-"):
                out[f"{where}/{c['name']}"] = {"svc": image.removeprefix("bulwark-"), **c}
    return out


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Exactly the rendered env for settings (none of the test runner's own)."""
    for key in list(os.environ):
        if key.startswith(("BULWARK_", "VAULT_", "API_", "AUTH_", "USERS_", "REDIS_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("name", SETS)
def test_service_env_is_read_by_the_service(
    name: str, objects: dict[str, Docs], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every env var names a setting of that service, and its settings class accepts the
    rendered values (a misspelt or unread variable would silently fall back to a default)."""
    containers = service_containers(objects[name])
    assert len(containers) == 3 + 3 + 1  # deployments, migrations, rotate-keys
    for where, c in containers.items():
        cls = SETTINGS[c["svc"]]
        env = container_env(c)
        unknown = set(env) - settings_env_names(cls) - OTHER_ENV
        assert not unknown, f"{where}: {sorted(unknown)} are not settings of {c['svc']}"
        use_env(monkeypatch, env)
        cls()  # validates every rendered value


@pytest.mark.parametrize("name", SETS)
def test_service_env_follows_the_contract(
    name: str, objects: dict[str, Docs], monkeypatch: pytest.MonkeyPatch
) -> None:
    issuers = set()
    for svc in SERVICES:
        d = by_name(objects[name], "Deployment", f"bulwark-{svc}")
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = container_env(c)
        use_env(monkeypatch, env)
        s: Any = SETTINGS[svc]()
        assert c["args"] == ["serve"]
        assert s.environment == "production"
        assert s.vault_auth == "kubernetes"
        assert s.namespace == NAMESPACE
        assert s.vault_addr.startswith("http")
        # No role set: the default <prefix>-<svc> is the Vault role bound to this account.
        assert s.vault_k8s_role is None
        assert pod["serviceAccountName"] == f"{s.vault_prefix}-{svc}"
        assert s.database_url.startswith("postgresql://") and "@" not in s.database_url
        assert "@" not in s.redis_url  # Redis ACL users come from Vault
        assert s.host == "0.0.0.0"  # noqa: S104 (the pod network is the boundary)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert s.port == ports["http" if svc == "api" else "grpc"]
        if svc != "api":
            assert s.health_port == ports["health"]
            assert pod["containers"][0]["readinessProbe"]["grpc"]["port"] == s.health_port
        issuers.add(s.issuer)
        # The headless Services' DNS names: every ready pod, balanced by the client.
        names = {
            callee: f"dns:///bulwark-{callee}.{NAMESPACE}.svc.cluster.local:{p}"
            for callee, p in (("auth", 50051), ("users", 50052))
        }
        if svc == "api":
            assert (s.auth_target, s.users_target) == (names["auth"], names["users"])
            assert s.management_port == ports["metrics"] != s.port
            assert pod["containers"][0]["readinessProbe"]["httpGet"]["port"] == "metrics"
        if svc == "auth":
            assert s.users_target == names["users"]
    assert len(issuers) == 1, "auth signs and api/users check one issuer"


def test_dev_postgresql_bootstraps_every_service_database(objects: dict[str, Docs]) -> None:
    docs = objects["kind"]
    spec = by_name(docs, "Deployment", "bulwark-postgresql")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v["configMap"] for v in spec["volumes"] if "configMap" in v}
    config = by_name(docs, "ConfigMap", "bulwark-postgresql-init")["data"]
    init = [i["key"] for i in volumes["init"]["items"]]
    assert mounts["init"] == "/docker-entrypoint-initdb.d"
    assert init == ["10-bulwark-databases.sh"], "only the script; the SQL runs per database"
    (item,) = volumes["bootstrap"]["items"]
    sql_path = f"{mounts['bootstrap']}/{item['path']}"
    assert config[item["key"]] == (VAULT_SOURCE / "postgres-bootstrap.sql").read_text()
    script = config["10-bulwark-databases.sh"]
    for svc in SERVICES:
        assert f'CREATE DATABASE "bulwark_{svc}"' in script
        assert f'-d "bulwark_{svc}" -f {sql_path}' in script
