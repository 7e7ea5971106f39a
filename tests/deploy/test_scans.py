"""Static scanners, all from `make check-tools`: checkov (helm, kubernetes, dockerfile) with
zero failures, hadolint clean, bandit clean on the services."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from deploykit import CHART, ROOT, run, tool

CHECKOV_CONFIG = ROOT / "tools" / "checks" / "checkov.yaml"
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "deploy" / "images" / "base.Dockerfile"]


def checkov(*args: str | Path) -> str:
    env = {**os.environ, "PATH": f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(tool("checkov")), "--config-file", str(CHECKOV_CONFIG), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"checkov found failures:\n{proc.stdout}\n{proc.stderr}"
    assert "Failed checks: 0" in proc.stdout, proc.stdout
    return proc.stdout


def test_checkov_helm_chart() -> None:
    skips = yaml.safe_load(CHECKOV_CONFIG.read_text())["skip-check"]
    # checkov renders the chart into the `default` namespace itself; the installed release
    # lives where --namespace says (the kubernetes run below checks namespace `bulwark`).
    skips = [*skips, "CKV_K8S_21"]
    checkov("-d", CHART, "--framework", "helm", "--skip-check", ",".join(skips))


def test_checkov_kubernetes_manifests() -> None:
    checkov("-d", ROOT / "deploy" / "k8s", "--framework", "kubernetes")


def test_checkov_dockerfiles() -> None:
    checkov(*(a for f in DOCKERFILES for a in ("-f", f)), "--framework", "dockerfile")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    run(tool("hadolint"), "--failure-threshold", "info", dockerfile)


def test_bandit_services_clean() -> None:
    sources = sorted(glob.glob(str(ROOT / "services" / "*" / "src")))
    assert len(sources) == 3
    run(tool("bandit"), "-q", "-c", ROOT / "tools" / "checks" / "bandit.yaml", "-r", *sources)
