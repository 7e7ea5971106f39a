"""The NetworkPolicy connectivity matrix, computed by network-config-analyzer (nca) from the
rendered manifests (kind and production values), equals the intended one below: every
allowed edge is listed here, everything else must come out denied."""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from deploykit import ROOT, Docs, pod_specs, run, tool

SERVICES = ("api", "auth", "users")
MIGRATIONS = tuple(f"migrate-{s}" for s in SERVICES)
ALL = (*SERVICES, *MIGRATIONS, "vault-setup", "rotate-keys", "postgresql", "redis", "openbao")
KUBE_API = ("10.89.0.0/16", "172.18.0.0/16")  # values-kind.yaml kubeAPIServerPeers
# values-production.yaml's external endpoints
PG, REDIS, VAULT = "10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/24"

# (source, destination, connection). Endpoints are release components, `dns` (kube-system),
# `ingress` (the ingress controller's pods), `otlp` (the collector's pods) or a CIDR. Kubelet
# probes and port-forward do not cross policies.
GRPC = {("api", "auth", "TCP 50051"), ("api", "users", "TCP 50052"), ("auth", "users", "TCP 50052")}
# Prometheus (networkPolicy.metricsFrom) scrapes the metrics ports, nothing else.
SCRAPE = {("prometheus", "api", "TCP 8081"), ("prometheus", "auth", "TCP 9051")} | {
    ("prometheus", "users", "TCP 9052")
}
INTENDED: dict[str, set[tuple[str, str, str]]] = {
    "kind": {
        *GRPC,
        *SCRAPE,
        *((c, "postgresql", "TCP 5432") for c in (*SERVICES, *MIGRATIONS, "openbao")),
        *((c, "redis", "TCP 6379") for c in (*SERVICES, "openbao")),
        *(
            (c, "openbao", "TCP 8200")
            for c in (*SERVICES, *MIGRATIONS, "vault-setup", "rotate-keys")
        ),
        *(("openbao", cidr, "TCP 6443") for cidr in KUBE_API),
        *((c, "dns", "TCP+UDP 53") for c in ALL),
    },
    "production": {
        *GRPC,
        *SCRAPE,
        ("ingress", "api", "TCP 8080"),
        *((c, PG, "TCP 5432") for c in (*SERVICES, *MIGRATIONS)),
        *((c, REDIS, "TCP 6380") for c in SERVICES),
        *((c, VAULT, "TCP 8200") for c in (*SERVICES, *MIGRATIONS, "vault-setup", "rotate-keys")),
        *((c, "otlp", "TCP 4318") for c in SERVICES),
        *((c, "dns", "TCP+UDP 53") for c in ALL if c not in ("postgresql", "redis", "openbao")),
    },
}
# Pods outside the release that production's policies name, so nca has endpoints for them.
PEERS = """
apiVersion: v1
kind: Namespace
metadata: {name: ingress-nginx, labels: {kubernetes.io/metadata.name: ingress-nginx}}
---
apiVersion: v1
kind: Namespace
metadata: {name: observability, labels: {kubernetes.io/metadata.name: observability}}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring, labels: {kubernetes.io/metadata.name: monitoring}}
---
apiVersion: v1
kind: Pod
metadata:
  name: prometheus-0
  namespace: monitoring
  labels: {app.kubernetes.io/name: prometheus}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: ingress-nginx-controller
  namespace: ingress-nginx
  labels: {app.kubernetes.io/name: ingress-nginx}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: collector
  namespace: observability
  labels: {app.kubernetes.io/name: opentelemetry-collector}
spec: {containers: [{name: c, image: x}]}
"""
OUTSIDE = {
    "[kube-system]": "dns",
    "[ingress-nginx]": "ingress",
    "[observability]": "otlp",
    "[monitoring]": "prometheus",
}


def _workloads(docs: Docs) -> dict[str, dict[str, str]]:
    """Workload name -> pod labels, for every pod-creating object of the release."""
    out = {}
    for doc in docs:
        for where, _ in pod_specs([doc]):
            spec = doc["spec"]
            out[where.split("/", 1)[1]] = spec["template"]["metadata"]["labels"]
    return out


def _match(expr: str, labels: dict[str, str]) -> bool:
    for term in expr.split(" and "):
        if m := re.fullmatch(r"(\S+) (not in|in) \((.*)\)", term):
            inside = labels.get(m[1]) in m[3].split(",")
            if inside == (m[2] == "not in"):
                return False
        elif m := re.fullmatch(r"(\S+)=(\S+)", term):
            if labels.get(m[1]) != m[2]:
                return False
        else:
            raise AssertionError(f"nca selector not understood: {term!r}")
    return True


def _endpoints(ns: str, pods: str, workloads: dict[str, dict[str, str]]) -> set[str]:
    """nca's grouped endpoint -> the components (or dns / CIDR) it stands for."""
    if not ns:
        return {pods}  # an IP block
    if ns in OUTSIDE:
        return {OUTSIDE[ns]}
    inner = pods.strip("[]")
    if inner == "*":
        names = set(workloads)
    elif inner in workloads:
        names = {inner}
    else:
        names = {name for name, labels in workloads.items() if _match(inner, labels)}
    assert names, f"nca endpoint matches nothing: {pods}"
    return {workloads[n]["app.kubernetes.io/component"] for n in names}


@pytest.mark.parametrize("name", sorted(INTENDED))
def test_connectivity_matrix_is_exactly_the_intended_one(name: str, tmp_path: Path) -> None:
    manifests = ROOT / "deploy" / "k8s" / f"bulwark-{name}.yaml"
    docs = [d for d in yaml.safe_load_all(manifests.read_text()) if d]
    peers = tmp_path / "peers.yaml"
    peers.write_text(PEERS)
    namespace = ROOT / "deploy" / "k8s" / "namespace.yaml"
    out = run(
        tool("nca"), "--connectivity", manifests, "--pod_list", manifests, "--pod_list", peers,
        "--ns_list", namespace, "--ns_list", peers, "--output_format", "csv",
    ).stdout  # fmt: skip
    workloads = _workloads(docs)
    computed: set[tuple[str, str, str]] = set()
    for row in csv.reader(io.StringIO(out)):
        if len(row) < 6 or row[1] == "src_ns" or not (row[2] or row[4]):
            continue
        _, src_ns, src, dst_ns, dst, conn = row[:6]
        if "[bulwark]" not in (src_ns, dst_ns):
            continue  # traffic between other namespaces and the outside: not this chart's
        for s in _endpoints(src_ns, src, workloads):
            for d in _endpoints(dst_ns, dst, workloads):
                computed.add((s, d, conn))
    intended = INTENDED[name]
    assert computed == intended, (
        f"allowed but not intended: {sorted(computed - intended)}\n"
        f"intended but denied: {sorted(intended - computed)}"
    )
