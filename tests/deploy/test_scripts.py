"""The deploy scripts that cannot run here (the kind path needs a Docker engine and a node
image) are at least syntax- and lint-checked, and the workflow names existing targets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bulwark_devstack import infra

sys.path.insert(0, str(Path(__file__).parent))
from deploykit import ROOT

SCRIPTS = [
    *sorted((ROOT / "deploy").rglob("*.sh")),
    *sorted((ROOT / "tools").rglob("*.sh")),
    ROOT / ".ci" / "run",
]


def test_the_kind_path_scripts_exist() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in SCRIPTS}
    assert {"deploy/kind/kind.sh", "deploy/kind/cluster-checks.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_script_parses_and_is_shellcheck_clean(script: Path) -> None:
    shell = "sh" if script.read_text().startswith("#!/bin/sh") else "bash"
    done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    try:
        shellcheck = infra.check_tool("shellcheck")
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)
    done = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_kind_workflow_runs_a_make_target_that_exists() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "kind.yml").read_text())
    runs = " ".join(s.get("run", "") for s in workflow["jobs"]["kind"]["steps"])
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    for used in re.findall(r"make ([a-z -]+)", runs):
        assert set(used.split()) <= targets, used
