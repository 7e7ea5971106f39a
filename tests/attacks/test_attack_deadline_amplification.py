"""Attack 7: deadline amplification. api gives a login 1 s; auth must not then wait its own
fresh 5 s for users: every hop gets what is left of the caller's deadline, and a hop whose
budget is spent gives up at once instead of stacking timeouts."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import datetime

from bulwark_devstack.target import Attackable, read_log

API_BUDGET = 1.0
AUTH_OWN_DEADLINE = 5.0


def _when(record: dict[str, object]) -> float:
    return datetime.strptime(str(record["time"]), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_deadline_amplification_auth_gives_up_with_api(
    own_stack: Callable[..., Attackable],
) -> None:
    target = own_stack(
        {
            "api": {"BULWARK_GRPC_DEADLINE_SECONDS": str(API_BUDGET)},
            "auth": {"BULWARK_GRPC_DEADLINE_SECONDS": str(AUTH_OWN_DEADLINE)},
        },
    )
    stack = target.stack
    user = target.register()
    target.login(user)  # auth's connection to users is up: calls on it hang, not fail fast
    pid = stack.procs["users"].pid
    os.kill(pid, signal.SIGSTOP)  # users hangs: every call to it runs into its deadline
    try:
        with target.client() as http:
            started = time.time()
            form = {"grant_type": "password", "username": user.username, "password": "x" * 12}
            r = http.post("/v1/auth/token", data=form)
            answered = time.time() - started
        assert r.status_code == 503
        assert answered < API_BUDGET + 1.0

        # auth's own call to users: it must end with api's budget, not auth's own deadline.
        deadline = time.monotonic() + AUTH_OWN_DEADLINE + 5
        gave_up: list[dict[str, object]] = []
        while not gave_up:
            gave_up = [
                rec
                for rec in read_log(stack, "auth")
                if rec.get("message") == "users unavailable" and _when(rec) >= started - 1
            ]
            assert time.monotonic() < deadline, "auth never gave up on users"
            time.sleep(0.1)
        waited = _when(gave_up[0]) - started
        assert waited < API_BUDGET + 0.5, f"auth waited {waited:.1f}s for users, api {API_BUDGET}s"
    finally:
        os.kill(pid, signal.SIGCONT)
