"""The locust file users run against their deployment: headless for a few seconds against a
real stack (an admin among the users), and not one request may fail."""

from __future__ import annotations

import csv
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bulwark_devstack.infra import venv_script
from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import create_admin, strong_password, unique_name

LOCUSTFILE = Path(__file__).resolve().parents[2] / "tools" / "loadtest" / "locustfile.py"


@pytest.mark.timeout(300)  # a stack start on a busy machine, then ~15 s of load
def test_locust_journeys_run_without_failures(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = stack_factory(env={"api": {"API_TRUSTED_PROXIES": '["127.0.0.1/32"]'}})
    admin, password = unique_name("adm"), strong_password()
    create_admin(stack, admin, password)
    env = {
        **os.environ,
        "BULWARK_LOADTEST_ADMIN_USERNAME": admin,
        "BULWARK_LOADTEST_ADMIN_PASSWORD": password,
    }
    done = subprocess.run(
        [venv_script("locust"), "-f", str(LOCUSTFILE), "--host", stack.config.api_url,
         "--headless", "-u", "6", "-r", "6", "-t", "12s", "--only-summary",
         "--csv", str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    output = done.stdout[-3000:] + done.stderr[-3000:]
    with (tmp_path / "run_stats.csv").open() as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 20, output
    assert int(total["Failure Count"]) == 0, output
    assert done.returncode == 0, output
    # Every journey ran: registration, both grants, items, and the admin's listing.
    for name in ("/v1/users", "POST /v1/auth/token (password)", "/v1/items?limit=20"):
        assert any(n == name or n.endswith(name) for n in rows), (name, sorted(rows))
    assert "/v1/users/me" in rows and "/v1/items?all=true&limit=50" in rows, sorted(rows)
