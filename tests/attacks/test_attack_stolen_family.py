"""Attack 10: a stolen refresh family outlives reuse detection. Presenting a spent refresh
token revokes the family; the access tokens issued from it must stop working within 1 s."""

from __future__ import annotations

import time

import httpx

from bulwark_devstack.target import Attackable
from bulwark_devstack.testkit import bearer

WITHIN_SECONDS = 1.0


def _refresh(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": token})


def test_stolen_family_access_tokens_die_with_reuse_detection(target: Attackable) -> None:
    victim = target.register()
    with target.client() as http:
        first = target.login(victim, http)
        second = _refresh(http, first["refresh_token"]).json()
        for t in (first, second):
            assert http.get("/v1/users/me", headers=bearer(t["access_token"])).status_code == 200

        assert _refresh(http, first["refresh_token"]).status_code == 400  # reuse detected
        detected = time.monotonic()
        alive = {first["access_token"], second["access_token"]}
        while alive and time.monotonic() - detected <= WITHIN_SECONDS:
            alive = {
                t for t in alive if http.get("/v1/users/me", headers=bearer(t)).status_code != 401
            }
        assert not alive, f"{len(alive)} access token(s) of the revoked family still work"


def test_revoking_a_refresh_token_ends_its_access_tokens(target: Attackable) -> None:
    victim = target.register()
    with target.client() as http:
        tokens = target.login(victim, http)
        r = http.post("/v1/auth/revoke", data={"token": tokens["refresh_token"]})
        assert r.status_code == 200
        me = http.get("/v1/users/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 401
