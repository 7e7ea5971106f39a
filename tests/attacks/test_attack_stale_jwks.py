"""Attack 6: stale JWKS after an outage. A failed JWKS fetch must not count as a refresh: once
auth answers again, a token with a new kid is accepted on the next request, not only after
api's refresh floor (API_JWKS_MIN_REFRESH_SECONDS) has passed."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from bulwark_devstack.target import Attackable
from bulwark_devstack.testkit import bearer

FLOOR_SECONDS = 10.0  # api's default refresh floor


def test_stale_jwks_new_kid_accepted_right_after_auth_returns(
    own_stack: Callable[..., Attackable],
) -> None:
    # No timer refresh: only the unknown-kid path may teach api the new key here.
    target = own_stack({"api": {"API_JWKS_REFRESH_SECONDS": "300"}})
    stack = target.stack
    user = target.register()
    with target.client() as http:
        old = target.login(user, http)["access_token"]
        assert http.get("/v1/users/me", headers=bearer(old)).status_code == 200
        last_good_fetch = time.monotonic()  # at the latest: api verified this token now

        # A rotated key that auth signs with once restarted; api has not seen it.
        stack.rotate_keys()
        stack.restart("auth")
        new = target.login(user, http)["access_token"]
        assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]

        # The floor since the last good fetch has passed: api may fetch again. Now an outage
        # (auth frozen), and an unknown kid makes api try, and fail, to fetch the JWKS.
        time.sleep(max(0.0, last_good_fetch + FLOOR_SECONDS + 0.5 - time.monotonic()))
        pid = stack.procs["auth"].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            forged = jwt.encode(
                {"sub": "x"},
                ec.generate_private_key(ec.SECP256R1()),
                algorithm="ES256",
                headers={"kid": secrets.token_hex(8), "typ": "at+jwt"},
            )
            assert http.get("/v1/users/me", headers=bearer(forged)).status_code in (401, 503)
        finally:
            os.kill(pid, signal.SIGCONT)  # auth is back

        r = http.get("/v1/users/me", headers=bearer(new))
        assert r.status_code == 200, f"new kid refused right after the outage: {r.text}"
