"""Attack 2: lockout as denial of service. 100 addresses that know a username keep failing
its logins; the owner, from their own address, must still get in at once: backoff is kept
per account *and* source, and the global per-account cap only takes away the free failures
of other sources (README: Security choices, login backoff)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from bulwark_devstack.target import Attackable

ATTACKERS = 100
OWNER_BOUND_SECONDS = 0.0  # the owner's first attempt is never held back by others' failures


def test_lockout_dos_owner_still_logs_in_during_attack(target: Attackable) -> None:
    owner = target.register()
    attackers = [f"198.18.{i // 250}.{i % 250 + 1}" for i in range(ATTACKERS)]

    def hammer(ip: str) -> list[int]:
        form = {"grant_type": "password", "username": owner.username, "password": "guess"}
        with target.client(ip) as http:
            return [http.post("/v1/auth/token", data=form).status_code for _ in range(3)]

    with ThreadPoolExecutor(8) as pool:
        codes = [c for batch in pool.map(hammer, attackers) for c in batch]
    assert set(codes) == {400}

    started = time.monotonic()
    with target.client("192.0.2.10") as http:
        r = http.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": owner.username, "password": owner.password},
        )
    assert r.status_code == 200, f"owner locked out by {ATTACKERS} addresses: {r.text}"
    assert time.monotonic() - started <= OWNER_BOUND_SECONDS + 5  # one round trip
