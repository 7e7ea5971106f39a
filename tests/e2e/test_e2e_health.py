from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_healthz_answers_while_the_process_lives(http: httpx.Client) -> None:
    r = http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_reports_every_dependency_healthy(http: httpx.Client) -> None:
    r = http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {
        "auth": "ok",
        "users": "ok",
        "database": "ok",
        "redis": "ok",
        "vault": "ok",
    }
