"""The chart renders what a user deploys: lint, template, dry-run install, schema-valid
Kubernetes objects, PSS restricted pods, no secrets, no API access, manifests in sync."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from deploykit import (
    CHART,
    NAMESPACE,
    ROOT,
    VALUE_SETS,
    Docs,
    pod_specs,
    run,
    tool,
)

SETS = list(VALUE_SETS)
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion >= 1.30) and the newest.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
# Volume types Pod Security Standards `restricted` allows.
PSS_RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET)", re.I)


def values_args(name: str) -> list[str | Path]:
    values = VALUE_SETS[name]
    return [] if values is None else ["--values", values]


@pytest.mark.parametrize("name", SETS)
def test_helm_lint_strict(name: str) -> None:
    run(tool("helm"), "lint", "--strict", CHART, *values_args(name))


@pytest.mark.parametrize("name", SETS)
def test_helm_install_dry_run_client(name: str) -> None:
    out = run(
        tool("helm"), "install", "bulwark", CHART, "--dry-run=client",
        "--namespace", NAMESPACE, *values_args(name),
    ).stdout  # fmt: skip
    assert "kubectl --namespace bulwark port-forward service/bulwark-api 8080:8080" in out
    assert "curl -fsS http://127.0.0.1:8080/readyz" in out


def test_schema_rejects_unknown_and_unsafe_values() -> None:
    for override in (
        "services.api.replicas=3",  # typo of replicaCount: additionalProperties false
        "containerSecurityContext.readOnlyRootFilesystem=false",
        "image.tag=latest",
    ):
        proc = subprocess.run(
            [str(tool("helm")), "template", "x", str(CHART), "--set", override],
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0 and "schema" in proc.stderr, override


@pytest.mark.parametrize("name", SETS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_validate_strict(
    name: str, version: str, rendered: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(rendered[name])
    run(tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, path)


@pytest.mark.parametrize("name", SETS)
def test_every_pod_is_restricted_read_only_and_limited(name: str, objects: dict[str, Docs]) -> None:
    specs = dict(pod_specs(objects[name]))
    assert specs, "no pods rendered"
    for where, spec in specs.items():
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, where
        assert pod_sc.get("runAsUser", 0) > 0, where
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= PSS_RESTRICTED_VOLUMES, (where, volume["name"], kinds)
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            who = f"{where}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, who
            assert sc["readOnlyRootFilesystem"] is True, who
            assert sc["capabilities"]["drop"] == ["ALL"], who
            assert not sc["capabilities"].get("add"), who
            assert sc.get("privileged") is False, who
            assert "ports" not in c or all("hostPort" not in p for p in c["ports"]), who
            limits = c["resources"]["limits"]
            requests = c["resources"]["requests"]
            assert {"cpu", "memory"} <= limits.keys() and {"cpu", "memory"} <= requests.keys()
            image = c["image"]
            assert not image.endswith(":latest") and (":" in image.rsplit("/", 1)[-1]), who


PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


@pytest.mark.parametrize("name", SETS)
def test_grpc_services_are_headless_and_api_is_not(name: str, objects: dict[str, Docs]) -> None:
    """auth and users: DNS gives their callers every ready pod to balance over; api keeps a
    virtual IP for port-forward and the ingress. No Service exposes a probe port."""
    services = {d["metadata"]["name"]: d["spec"] for d in objects[name] if d["kind"] == "Service"}
    for svc, port in (("auth", 50051), ("users", 50052)):
        assert services[f"bulwark-{svc}"].get("clusterIP") == "None"
        assert [p["port"] for p in services[f"bulwark-{svc}"]["ports"]] == [port]
    assert services["bulwark-api"].get("clusterIP") != "None"
    assert [p["port"] for p in services["bulwark-api"]["ports"]] == [8080]


@pytest.mark.parametrize("name", SETS)
def test_services_probes_and_grace(name: str, objects: dict[str, Docs]) -> None:
    deployments = {d["metadata"]["name"]: d for d in objects[name] if d["kind"] == "Deployment"}
    for svc, port in (("auth", 51051), ("users", 51052)):
        c = deployments[f"bulwark-{svc}"]["spec"]["template"]["spec"]["containers"][0]
        for probe in PROBES:
            assert c[probe]["grpc"]["port"] == port  # the plaintext health-only port
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env[f"{svc.upper()}_HEALTH_PORT"] == str(port)
    api = deployments["bulwark-api"]["spec"]["template"]["spec"]
    api_c = api["containers"][0]
    probes = {api_c[p]["httpGet"]["path"]: api_c[p]["httpGet"]["port"] for p in PROBES}
    # The management port (API_MANAGEMENT_PORT): the public one answers clients only.
    assert probes == {"/healthz": "metrics", "/readyz": "metrics"}
    ports = {p["name"]: p["containerPort"] for p in api_c["ports"]}
    env = {e["name"]: e.get("value") for e in api_c["env"]}
    assert env["API_MANAGEMENT_PORT"] == str(ports["metrics"]) == "8081"
    assert env["API_MANAGEMENT_HOST"] == "0.0.0.0"  # noqa: S104 (the kubelet probes the pod IP)
    for svc in ("api", "auth", "users"):
        spec = deployments[f"bulwark-{svc}"]["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > 10  # the services drain for 10 s
        volumes = {v["name"]: v for v in spec["volumes"]}
        token = volumes["vault-token"]["projected"]["sources"][0]["serviceAccountToken"]
        assert token["audience"] == "vault"


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


@pytest.mark.parametrize("name", SETS)
def test_no_secret_value_no_placeholder(name: str, objects: dict[str, Docs]) -> None:
    copies = {p.read_text() for p in (ROOT / "deploy" / "vault").rglob("*") if p.is_file()}
    for doc in objects[name]:
        assert doc["kind"] != "Secret", "the chart never renders a Secret (existingSecret only)"
        for _, spec in pod_specs([doc]):
            for c in spec["containers"]:
                for e in c.get("env", []):
                    if SECRET_NAME.search(e["name"]) and not e["name"].endswith(("_FILE", "_TTL")):
                        assert "value" not in e, f"{doc['metadata']['name']}: {e['name']}"
        for text in _strings(doc):
            if text in copies:
                continue  # deploy/vault, verbatim (its comments name <SVC> and <db>)
            assert not re.search(r"(?i:changeme|TODO|FIXME|placeholder)|<[A-Z_]+>", text), text


@pytest.mark.parametrize("name", SETS)
def test_no_kubernetes_api_access_except_dev_vault_reviewer(
    name: str, objects: dict[str, Docs]
) -> None:
    docs = objects[name]
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "Role", "RoleBinding"}
    bindings = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    if name == "production":
        assert not bindings
    else:
        (binding,) = bindings
        assert binding["roleRef"]["name"] == "system:auth-delegator"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "bulwark-openbao", "namespace": NAMESPACE}
        ]
    for sa in (d for d in docs if d["kind"] == "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    assert {"bulwark-api", "bulwark-auth", "bulwark-users", "bulwark-auth-keys"} <= names


@pytest.mark.parametrize("name", SETS)
def test_hooks_run_setup_then_migrations_then_keys(name: str, objects: dict[str, Docs]) -> None:
    jobs = {d["metadata"]["name"]: d for d in objects[name] if d["kind"] == "Job"}
    weight = {n: int(j["metadata"]["annotations"]["helm.sh/hook-weight"]) for n, j in jobs.items()}
    for svc in ("api", "auth", "users"):
        job = jobs[f"bulwark-migrate-{svc}"]
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
        assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
        assert weight["bulwark-vault-setup"] < weight[f"bulwark-migrate-{svc}"]
        assert weight[f"bulwark-migrate-{svc}"] < weight["bulwark-rotate-keys"]
    keys = jobs["bulwark-rotate-keys"]["spec"]["template"]["spec"]
    assert keys["serviceAccountName"] == "bulwark-auth-keys"
    env = {e["name"]: e.get("value") for e in keys["containers"][0]["env"]}
    assert env["BULWARK_VAULT_K8S_ROLE"] == "bulwark-auth-keys"


def test_dev_datastores_on_for_kind_off_for_production(objects: dict[str, Docs]) -> None:
    def components(name: str) -> set[str]:
        return {
            d["metadata"]["labels"]["app.kubernetes.io/component"]
            for d in objects[name]
            if d["kind"] == "Deployment"
        }

    assert components("kind") == {"api", "auth", "users", "postgresql", "redis", "openbao"}
    assert components("production") == {"api", "auth", "users"}


@pytest.mark.parametrize("name", ["kind", "production"])
def test_plain_manifests_match_the_chart(name: str, rendered: dict[str, str]) -> None:
    path = ROOT / "deploy" / "k8s" / f"bulwark-{name}.yaml"
    body = path.read_text().split("\n", 1)[1]  # after the "rendered by" line
    assert body == rendered[name], f"{path} is stale: run `make manifests`"


def test_namespace_enforces_restricted() -> None:
    ns = yaml.safe_load((ROOT / "deploy" / "k8s" / "namespace.yaml").read_text())
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_schema_closes_every_object_users_write() -> None:
    """Every schema object with named properties rejects unknown keys; the only open objects
    are string maps (labels, annotations, env, node selectors)."""

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                if "properties" in node:
                    assert node.get("additionalProperties") is False, path
                else:
                    assert node.get("additionalProperties") == {"type": "string"}, path
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}[{i}]")

    walk(json.loads((CHART / "values.schema.json").read_text()), "")
