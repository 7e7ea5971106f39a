"""Attack 9: enumeration and timing. Login for an unknown user, a disabled user, a wrong
password and an account in backoff gets the same answer in the same time (medians within
10 %, a benchmark-style check over many interleaved samples). Registration answers 409 for
a taken username or email (README: Security choices) and its rate limit keeps harvesting
slow."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from random import shuffle

import httpx
import pytest

from bulwark_devstack.stack import Stack
from bulwark_devstack.target import Attackable, module_stack
from bulwark_devstack.testkit import bearer, random_ip, strong_password, unique_name

ROUNDS = 81
TOLERANCE = 0.10


@pytest.fixture(scope="module")
def timed(stack_factory: Callable[..., Stack]) -> Iterator[Attackable]:
    with module_stack(
        stack_factory,
        {
            # Room for the samples, and a backoff that outlasts them.
            "api": {"API_TOKEN_RATE": "100000/minute"},
            "auth": {"AUTH_BACKOFF_BASE_SECONDS": "60", "AUTH_BACKOFF_MAX_SECONDS": "600"},
        },
    ) as target:
        yield target


def test_enumeration_login_failures_look_alike(timed: Attackable) -> None:
    wrong, disabled, locked = timed.register(), timed.register(), timed.register()
    locked_ip = random_ip()
    with timed.client() as http:
        admin = bearer(timed.login(timed.admin, http)["access_token"])
        r = http.patch(f"/v1/users/{disabled.id}", headers=admin, json={"disabled": True})
        assert r.status_code == 200
    cases = {
        "unknown": (unique_name(), strong_password(), None),
        "disabled": (disabled.username, disabled.password, None),
        "wrong": (wrong.username, "not-" + wrong.password, None),
        "backoff": (locked.username, "not-" + locked.password, locked_ip),
    }
    clients = {name: timed.client() for name in cases}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    answers: dict[str, set[tuple[int, str]]] = {name: set() for name in cases}
    try:
        for c in clients.values():
            c.get("/healthz")
        for _ in range(3):  # puts `locked` in backoff from its address
            _try(clients["backoff"], *cases["backoff"][:2], locked_ip)
        _try(clients["wrong"], *cases["wrong"][:2], random_ip())  # warm every path once
        for _ in range(ROUNDS):
            # A new order each round: no case always goes first, or always follows the
            # backoff case (which skips argon2, so the check after it starts colder: a
            # fixed rotation made whichever case came next ~4 % slower).
            order = list(cases)
            shuffle(order)
            for name in order:
                # A fresh address per try (except in backoff): the backoff is per source.
                ip = cases[name][2] or random_ip()
                status, body, seconds = _try(clients[name], *cases[name][:2], ip)
                answers[name].add((status, body))
                samples[name].append(seconds)
    finally:
        for c in clients.values():
            c.close()

    assert len({a for s in answers.values() for a in s}) == 1, answers
    # Per-round ratios against the wrong-password case, then their median: robust to the
    # load of whatever else runs on the machine (as the login benchmark does).
    ratios = {
        name: statistics.median(t / w for t, w in zip(s, samples["wrong"], strict=True))
        for name, s in samples.items()
    }
    shown = {k: round(v, 3) for k, v in ratios.items()}
    assert all(1 - TOLERANCE <= r <= 1 + TOLERANCE for r in ratios.values()), (
        f"median time relative to a wrong password: {shown}"
    )


def _try(http: httpx.Client, username: str, password: str, ip: str) -> tuple[int, str, float]:
    form = {"grant_type": "password", "username": username, "password": password}
    started = time.perf_counter()
    r = http.post("/v1/auth/token", data=form, headers={"X-Forwarded-For": ip})
    return r.status_code, r.text, time.perf_counter() - started


def test_enumeration_registration_harvesting_is_rate_limited(target: Attackable) -> None:
    taken = target.register()
    with target.client() as http:
        codes = []
        for _ in range(12):  # API_REGISTER_RATE defaults to 10/minute per address
            body = {"username": unique_name(), "email": taken.email, "password": strong_password()}
            codes.append(http.post("/v1/users", json=body).status_code)
    assert set(codes[:10]) == {409}
    assert codes[10:] == [429, 429]
