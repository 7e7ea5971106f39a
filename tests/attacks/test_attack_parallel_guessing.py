"""Attack 1: parallel password guessing. Many truly concurrent wrong guesses for one account
must cost the attacker what the same guesses made one after the other cost: the attempt is
reserved in Redis before the password is checked."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bulwark_devstack.target import Attackable
from bulwark_devstack.testkit import random_ip

FREE_FAILURES = 3  # auth's default AUTH_BACKOFF_FREE_FAILURES
BASE_SECONDS = 1.0  # auth's default AUTH_BACKOFF_BASE_SECONDS
BURST = 25


def admitted_by_schedule(elapsed: float) -> int:
    """How many further checks the backoff schedule admits within `elapsed` seconds."""
    admitted, waited, step = 0, 0.0, BASE_SECONDS
    while waited + step <= elapsed:
        waited += step
        step *= 2
        admitted += 1
    return admitted


def test_parallel_password_guessing_counts_every_concurrent_guess(target: Attackable) -> None:
    victim = target.register()
    ip = random_ip()
    clients = [target.client(ip) for _ in range(BURST)]
    for c in clients:  # warm every connection, so the burst is one burst
        c.get("/healthz")
    barrier = threading.Barrier(BURST)

    def guess(client: httpx.Client) -> int:
        barrier.wait()
        form = {"grant_type": "password", "username": victim.username, "password": "wrong-guess"}
        return client.post("/v1/auth/token", data=form).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(BURST) as pool:
        codes = list(pool.map(guess, clients))
    elapsed = time.monotonic() - started
    for c in clients:
        c.close()
    assert set(codes) == {400}, codes

    checked = [
        r
        for r in target.log_records("auth")
        if r.get("event") == "login.failure"
        and r.get("username") == victim.username
        and r.get("reason") == "bad_credentials"
    ]
    bound = FREE_FAILURES + admitted_by_schedule(elapsed)
    assert len(checked) <= bound, f"{len(checked)} password checks for {BURST} guesses"
