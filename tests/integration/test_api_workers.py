"""API_WORKERS=2: two api processes behind one port, each a whole api (its own token
checks, Redis guard and reads); SIGTERM to the supervisor stops them all."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import bearer, sign_up


def _children(pid: int) -> set[int]:
    """The live processes whose parent is `pid` (from /proc/<n>/stat's ppid field)."""
    kids: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.add(int(stat.parent.name))
    return kids


def test_two_workers_share_the_port_and_stop_together(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory(env={"api": {"API_WORKERS": "2"}})
    api = stack.config.api_url
    supervisor = stack.procs["api"].pid
    workers = _children(supervisor)
    assert len(workers) == 2, workers

    token = sign_up(api).access_token
    created = httpx.post(f"{api}/v1/items", json={"name": "w"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    # New connections are spread over both workers; every one answers the same.
    for _ in range(20):
        with httpx.Client(base_url=api) as fresh:
            r = fresh.get(created.headers["location"], headers=bearer(token))
            assert r.status_code == 200, r.text
            assert r.json()["name"] == "w"
            assert r.headers["x-content-type-options"] == "nosniff"

    # Graceful: each worker drains and closes its pools (slow on a loaded machine).
    assert stack.stop("api", timeout=90) == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.1)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]
