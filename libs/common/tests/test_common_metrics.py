"""Multi-process mode (api with several workers): every process writes its values to
PROMETHEUS_MULTIPROC_DIR and one scrape adds them up; stale files of earlier processes are
dropped at start. Real processes, real files, promtool on the output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bulwark_devstack import infra
from bulwark_devstack.scrape import value

WORKER = """
from bulwark_common import metrics
metrics.LOGINS.labels("ok").inc(3)
metrics.HTTP_REQUESTS.labels("/v1/items/{item_id}", "GET", "200").inc()
"""
SCRAPER = """
import sys
from bulwark_common import metrics
body, content_type = metrics.exposition()
sys.stdout.write(body.decode())
"""
PREPARE = """
from bulwark_common import metrics
metrics.prepare_multiprocess_dir()
"""


def _python(code: str, directory: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_workers_add_up_in_one_scrape_and_pass_promtool(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"  # created on import: only /tmp is writable in pods
    for _ in range(2):
        _python(WORKER, directory)
    text = _python(SCRAPER, directory)
    assert value(text, "bulwark_auth_logins_total", result="ok") == 6
    assert value(text, "bulwark_http_requests_total", route="/v1/items/{item_id}") == 2
    assert value(text, "process_resident_memory_bytes") > 0
    try:
        tool = infra.promtool()
    except infra.MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)
    done = subprocess.run(
        [tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_start_drops_the_files_of_earlier_processes(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    _python(WORKER, directory)
    assert list(directory.glob("*.db"))
    _python(PREPARE, directory)
    text = _python(SCRAPER, directory)
    assert value(text, "bulwark_auth_logins_total", result="ok") == 0
