from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_healthz_answers_while_the_process_lives(http: httpx.Client) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_says_ready_and_nothing_more(http: httpx.Client) -> None:
    # Which dependency is up or down is for the management port, not for clients.
    r = http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok"}
