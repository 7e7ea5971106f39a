"""Attack 13: probe endpoints as a map. The public port's /healthz and /readyz answer a
status only; the details (what is down) are on the management port (API_MANAGEMENT_PORT),
which the chart does not expose through the Service clients use."""

from __future__ import annotations

import os
import signal
import time

import httpx

from bulwark_devstack.target import Attackable

NAMES = ("auth", "users", "database", "redis", "vault")


def test_probe_map_public_readyz_names_nothing(target: Attackable) -> None:
    public = httpx.get(f"{target.url}/readyz", timeout=10)
    assert public.status_code == 200 and public.json() == {"status": "ok"}
    assert httpx.get(f"{target.url}/healthz", timeout=10).json() == {"status": "ok"}
    mgmt = f"http://127.0.0.1:{target.stack.config.management_port}"
    detailed = httpx.get(f"{mgmt}/readyz", timeout=10).json()
    assert set(detailed["checks"]) == set(NAMES)
    assert httpx.get(f"{mgmt}/healthz", timeout=10).status_code == 200
    # The management port serves probes only, not the API.
    assert httpx.get(f"{mgmt}/v1/items", timeout=10).status_code == 404


def test_probe_map_outage_is_not_named_publicly(target: Attackable) -> None:
    stack = target.stack
    pid = stack.procs["users"].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 15
        while (r := httpx.get(f"{target.url}/readyz", timeout=10)).status_code != 503:
            assert time.monotonic() < deadline, "readyz never noticed users was down"
            time.sleep(0.2)
        assert not any(name in r.text for name in NAMES), r.text
        mgmt = f"http://127.0.0.1:{stack.config.management_port}"
        assert "users" in httpx.get(f"{mgmt}/readyz", timeout=10).text
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while httpx.get(f"{target.url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
