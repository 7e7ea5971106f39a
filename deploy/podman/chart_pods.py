"""The chart's rendering turned into pods for `podman kube play` (deploy/podman/e2e_containers.py
runs them): helm template with values-podman.yaml and the run's names and ports, each
Deployment or Job as one Pod on the host network with an AppRole login, and the second
replica of a service on ports of its own."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NAMESPACE = "bulwark"
VAULT_LOGIN_DIR = "/var/run/secrets/vault"  # where the chart mounts the Vault login material


def both(ports: dict[str, int], svc: str) -> str:
    """A gRPC target naming both replicas of `svc` (commas escaped for helm --set)."""
    return f"ipv4:127.0.0.1:{ports[svc]}\\,127.0.0.1:{ports[f'{svc}-2']}"


def render(prefix: str, vault_addr: str, databases: dict[str, str], ports: dict[str, int]) -> Any:
    sets = {
        "vault.address": vault_addr,
        "vault.prefix": prefix,
        "fullnameOverride": prefix,  # pod names of this run only
        "postgresql.port": next(iter(databases.values())).rsplit(":", 1)[1].split("/")[0],
        "services.api.port": ports["api"],
        "services.auth.port": ports["auth"],
        "services.auth.healthPort": ports["auth-health"],
        "services.users.port": ports["users"],
        "services.users.healthPort": ports["users-health"],
        # Management/metrics ports (api's probes too): host network, so free ones.
        "services.api.metricsPort": ports["api-mgmt"],
        "services.auth.metricsPort": ports["auth-metrics"],
        "services.users.metricsPort": ports["users-metrics"],
        # Host network: no DNS names for the replicas; the mTLS identity check does not use
        # the address.
        "services.api.env.API_AUTH_TARGET": both(ports, "auth"),
        "services.api.env.API_USERS_TARGET": both(ports, "users"),
        "services.auth.env.AUTH_USERS_TARGET": both(ports, "users"),
    }
    sets |= {f"services.{svc}.database": db.rsplit("/", 1)[1] for svc, db in databases.items()}
    out = subprocess.run(
        [
            str(ROOT / ".tools" / "bin" / "helm"), "template", "bulwark",
            str(ROOT / "deploy" / "helm" / "bulwark"), "--namespace", NAMESPACE,
            "--values", str(HERE / "values-podman.yaml"),
            *(f"--set{'-string' if '.env.' in k else ''}={k}={v}" for k, v in sets.items()),
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


def as_pod(doc: dict[str, Any], login: dict[str, str], workdir: Path) -> dict[str, Any]:
    """A rendered Deployment or Job as one Pod for `podman kube play`."""
    spec = dict(doc["spec"]["template"]["spec"])
    name = doc["metadata"]["name"]
    spec["hostNetwork"] = True
    spec["restartPolicy"] = "Never"
    for key in ("serviceAccountName", "topologySpreadConstraints"):
        spec.pop(key, None)
    # The AppRole secret_id replaces the projected token, at the same path, readable by 10001.
    secret_dir = workdir / "pods" / name
    secret_dir.mkdir(parents=True)
    secret = secret_dir / "secret-id"
    secret.write_text(Path(login["BULWARK_VAULT_SECRET_ID_FILE"]).read_text())
    for path, mode in ((secret, 0o400), (secret_dir, 0o500)):
        os.chown(path, 10001, 10001)
        path.chmod(mode)
    spec["volumes"] = [
        {"name": v["name"], "hostPath": {"path": str(secret_dir), "type": "Directory"}}
        if v["name"] == "vault-token"
        else v
        for v in spec["volumes"]
    ]
    override = {
        "BULWARK_VAULT_AUTH": "approle",
        "BULWARK_VAULT_ROLE_ID": login["BULWARK_VAULT_ROLE_ID"],
        "BULWARK_VAULT_SECRET_ID_FILE": f"{VAULT_LOGIN_DIR}/secret-id",
    }
    containers = []
    for c in spec["containers"]:
        env = [
            e
            for e in c["env"]
            if e["name"] not in override and e["name"] != "BULWARK_VAULT_K8S_ROLE"
        ]
        env += [{"name": k, "value": v} for k, v in override.items()]
        # Host network: the ports are the processes' own (podman refuses port mappings there).
        containers.append({**{k: v for k, v in c.items() if k != "ports"}, "env": env})
    spec["containers"] = containers
    labels = doc["spec"]["template"]["metadata"]["labels"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def replica(pod: dict[str, Any], n: int, ports: dict[str, int]) -> dict[str, Any]:
    """Replica n of a service pod: host network, so it listens on ports of its own."""
    copy: dict[str, Any] = json.loads(json.dumps(pod))
    copy["metadata"]["name"] = f"{pod['metadata']['name']}-{n}"
    for c in copy["spec"]["containers"]:
        c["env"] = [e for e in c["env"] if e["name"] not in ports]
        c["env"] += [{"name": k, "value": str(v)} for k, v in ports.items()]
    return copy


def service_of(doc: dict[str, Any]) -> str:
    return str(
        doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
    ).removeprefix("migrate-")
