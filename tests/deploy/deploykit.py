"""Shared by the deploy tests: paths, the tools from `make check-tools` (.tools/), rendering."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "bulwark"
NAMESPACE = "bulwark"
# The value sets a user deploys; None is the chart's defaults.
VALUE_SETS: dict[str, Path | None] = {
    "default": None,
    "kind": CHART / "values-kind.yaml",
    "production": CHART / "values-production.yaml",
}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}

Docs = list[dict[str, Any]]


def tool(name: str) -> Path:
    """A check tool installed by `make check-tools` (helm/kubectl in .tools/bin)."""
    for path in (ROOT / ".tools" / "bin" / name, ROOT / ".tools" / "checks" / "bin" / name):
        if path.exists():
            return path
    pytest.fail(f"{name} is not installed: run `make check-tools` (tools/checks/install.sh)")


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def helm_template(values: Path | None, *extra: str) -> str:
    args: list[str | Path] = [tool("helm"), "template", "bulwark", CHART, "--namespace", NAMESPACE]
    if values is not None:
        args += ["--values", values]
    return run(*args, *extra).stdout


def load(text: str) -> Docs:
    return [d for d in yaml.safe_load_all(text) if d]


def pod_specs(docs: Docs) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every object that creates pods."""
    for doc in docs:
        if doc["kind"] not in POD_KINDS:
            continue
        spec = doc["spec"]
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if doc["kind"] != "Pod":
            spec = spec["template"]["spec"]
        yield f"{doc['kind']}/{doc['metadata']['name']}", spec
