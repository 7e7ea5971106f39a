"""The chart's monitoring: a metrics port per service on a ClusterIP Service of its own, the
scrape allowed only from networkPolicy.metricsFrom, an optional ServiceMonitor and
PrometheusRule (checked by `promtool check rules`) and the Grafana dashboard (its queries
checked by promtool too; tests/integration/test_metrics.py checks that every metric they
name is one the running services expose)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from deploykit import NAMESPACE, ROOT, Docs, helm_template, load

from bulwark_devstack import infra

DASHBOARD = ROOT / "deploy" / "grafana" / "bulwark.json"
SERVICES = ("api", "auth", "users")
METRICS_PORTS = {"api": 8081, "auth": 9051, "users": 9052}
ALL_ON = (
    "--set=metrics.serviceMonitor.enabled=true",
    "--set=metrics.prometheusRule.enabled=true",
    "--set=metrics.dashboard.enabled=true",
)
REQUIRED_ALERTS = {
    "BulwarkHttpErrorRatioHigh",
    "BulwarkGrpcErrorRatioHigh",
    "BulwarkLoginFailureSpike",
    "BulwarkManyAccountsInBackoff",
    "BulwarkRefreshTokenReuseDetected",
    "BulwarkCertificateExpiringSoon",
    "BulwarkVaultLeaseExpiringSoon",
    "BulwarkArgon2Saturated",
    "BulwarkDatabasePoolSaturated",
}


def promtool() -> str:
    try:
        return infra.promtool()
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)


def find(docs: Docs, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


@pytest.fixture(scope="module")
def monitored() -> Docs:
    return load(helm_template(None, *ALL_ON))


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [
        t["expr"]
        for panel in board["panels"]
        if panel["type"] != "row"
        for t in panel.get("targets", [])
    ]
    assert exprs and all(exprs)
    return exprs


def test_off_by_default_and_every_service_has_a_metrics_port(objects: dict[str, Docs]) -> None:
    for name, docs in objects.items():
        kinds = {d["kind"] for d in docs}
        assert not kinds & {"ServiceMonitor", "PrometheusRule"}, name
        for svc in SERVICES:
            deploy = find(docs, "Deployment", f"bulwark-{svc}")[0]
            container = deploy["spec"]["template"]["spec"]["containers"][0]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["metrics"] == METRICS_PORTS[svc], (name, svc)
            env = {e["name"]: e.get("value") for e in container["env"]}
            key = "API_MANAGEMENT_PORT" if svc == "api" else f"{svc.upper()}_METRICS_PORT"
            assert env[key] == str(METRICS_PORTS[svc]), (name, svc)
            # The public Service carries no metrics port (api's may be a LoadBalancer).
            public = find(docs, "Service", f"bulwark-{svc}")[0]
            assert METRICS_PORTS[svc] not in {p["port"] for p in public["spec"]["ports"]}
            metrics = find(docs, "Service", f"bulwark-{svc}-metrics")[0]
            assert metrics["spec"]["type"] == "ClusterIP"
            assert metrics["spec"]["ports"] == [
                {
                    "name": "metrics",
                    "port": METRICS_PORTS[svc],
                    "targetPort": "metrics",
                    "protocol": "TCP",
                }
            ]


def _ingress_ports(policy: dict[str, Any]) -> list[tuple[list[Any], set[int]]]:
    return [
        (rule["from"], {p["port"] for p in rule["ports"]})
        for rule in policy["spec"].get("ingress", [])
    ]


def test_scrape_allowed_only_from_metrics_from() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observe"}}}
    for metrics_from, expected in (
        (None, True),  # the default: namespace monitoring, Prometheus pods
        ("[]", False),
        (json.dumps([peer]), True),
    ):
        extra = (
            [] if metrics_from is None else [f"--set-json=networkPolicy.metricsFrom={metrics_from}"]
        )
        docs = load(helm_template(None, *extra))
        for svc in SERVICES:
            policy = find(docs, "NetworkPolicy", f"bulwark-{svc}")[0]
            rules = _ingress_ports(policy)
            scrape = [peers for peers, ports in rules if METRICS_PORTS[svc] in ports]
            assert bool(scrape) == expected, (metrics_from, svc)
            for _peers, ports in rules:
                if METRICS_PORTS[svc] in ports:
                    assert ports == {METRICS_PORTS[svc]}  # the scrape opens nothing else
            if metrics_from is not None and expected:
                assert scrape == [[peer]]


def test_service_monitor_selects_the_metrics_services(monitored: Docs) -> None:
    [monitor] = find(monitored, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == NAMESPACE
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    want = monitor["spec"]["selector"]["matchLabels"]
    selected = {
        d["metadata"]["name"]
        for d in find(monitored, "Service")
        if want.items() <= d["metadata"]["labels"].items()
    }
    assert selected == {f"bulwark-{svc}-metrics" for svc in SERVICES}


def test_prometheus_rules_pass_promtool(monitored: Docs, tmp_path: Path) -> None:
    [rule] = find(monitored, "PrometheusRule")
    groups = rule["spec"]["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"]}
    assert alerts >= REQUIRED_ALERTS
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups)} rules found" in done.stdout


def test_accounts_in_backoff_alert_takes_the_max_over_replicas(
    monitored: Docs, tmp_path: Path
) -> None:
    """Every auth replica reports the same count (one set in Redis): three replicas at 30
    stay under the default 50 (a sum would fire); two at 60 fire after 10 minutes."""
    [rule] = find(monitored, "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    name = "BulwarkManyAccountsInBackoff"
    [summary] = [
        r["annotations"]["summary"]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if r.get("alert") == name
    ]

    def replicas(count: int, value: int) -> list[dict[str, str]]:
        labels = f'namespace="{NAMESPACE}", job="bulwark-auth-metrics"'
        return [
            {
                "series": f'bulwark_auth_accounts_in_backoff{{{labels}, pod="auth-{i}"}}',
                "values": f"{value}x15",
            }
            for i in range(count)
        ]

    tests = [
        {
            "interval": "1m",
            "input_series": replicas(3, 30),
            "alert_rule_test": [{"eval_time": "12m", "alertname": name, "exp_alerts": []}],
        },
        {
            "interval": "1m",
            "input_series": replicas(2, 60),
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": name, "exp_alerts": []},  # pending
                {
                    "eval_time": "12m",
                    "alertname": name,
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning"},
                            "exp_annotations": {
                                "summary": summary.replace("{{ $value | humanize }}", "60")
                            },
                        }
                    ],
                },
            ],
        },
    ]
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": tests}))
    done = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"]
    # Grafana's variables, as Grafana substitutes them, then promtool parses each query.
    exprs = [
        e.replace("$__rate_interval", "5m").replace('=~"$namespace"', '=~".*"')
        for e in dashboard_exprs()
    ]
    assert not any("$" in e for e in exprs)
    rules = [{"record": f"bulwark:dashboard_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboard_config_map_carries_the_dashboard(monitored: Docs) -> None:
    [config] = find(monitored, "ConfigMap", "bulwark-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["bulwark.json"]) == json.loads(DASHBOARD.read_text())
