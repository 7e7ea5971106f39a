"""Attack 8: token tricks. Forged or bent tokens are refused (401, never 500 and never 200);
the tests that need a token signed with auth's own key read it from the stack's key
directory (what an attacker who stole it, or auth itself, could sign)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from bulwark_devstack.stack import Stack
from bulwark_devstack.target import Attackable, User, module_stack
from bulwark_devstack.testkit import bearer
from bulwark_devstack.vault import signing_key_pem


@pytest.fixture(scope="module")
def tricks(stack_factory: Callable[..., Stack]) -> Iterator[Attackable]:
    # Floor 0: api refetches the JWKS on every unknown kid, so rotations show at once.
    with module_stack(stack_factory, {"api": {"API_JWKS_MIN_REFRESH_SECONDS": "0"}}) as target:
        yield target


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(header: dict[str, Any], claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """A JWS built by hand, so the header says exactly what the test wants."""
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    sig = ECAlgorithm(ECAlgorithm.SHA256).sign(head.encode(), key)
    return head + "." + _b64(sig)


def _auth_key(target: Attackable) -> ec.EllipticCurvePrivateKey:
    assert target.stack.config.vault is not None
    pem = signing_key_pem(target.stack.config.vault)
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _genuine(target: Attackable, http: httpx.Client, user: User) -> tuple[dict[str, Any], dict]:
    token = target.login(user, http)["access_token"]
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def _me(http: httpx.Client, token: str) -> int:
    return http.get("/v1/users/me", headers=bearer(token)).status_code


def test_token_tricks_attacker_key_in_jwk_jku_x5u_headers(tricks: Attackable) -> None:
    user = tricks.register()
    mine = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(ECAlgorithm.to_jwk(mine.public_key()))
    with tricks.client() as http:
        header, claims = _genuine(tricks, http, user)
        for extra in (
            {"jwk": public},
            {"jku": "https://attacker.example/jwks.json"},
            {"x5u": "https://attacker.example/cert.pem"},
        ):
            for kid in (header["kid"], secrets.token_hex(8)):
                forged = _sign({**header, **extra, "kid": kid}, claims, mine)
                assert _me(http, forged) == 401, extra


def test_token_tricks_crit_and_alg_case(tricks: Attackable) -> None:
    user = tricks.register()
    key = _auth_key(tricks)
    with tricks.client() as http:
        header, claims = _genuine(tricks, http, user)
        assert _me(http, _sign(header, claims, key)) == 200  # the signing is right...
        for bent in (
            {**header, "crit": ["exp"]},
            {**header, "crit": ["x-unknown"], "x-unknown": True},
            {**header, "alg": "es256"},
            {**header, "alg": "ES256 "},
            {**header, "alg": "none"},
        ):
            assert _me(http, _sign(bent, claims, key)) == 401, bent  # ...the header is not


@pytest.mark.parametrize(
    "kid", ["../../../../etc/passwd", "' OR '1'='1", 'kid"; DROP TABLE users; --', "\u0000"]
)
def test_token_tricks_kid_with_path_or_sql(tricks: Attackable, kid: str) -> None:
    mine = ec.generate_private_key(ec.SECP256R1())
    forged = _sign({"alg": "ES256", "typ": "at+jwt", "kid": kid}, {"sub": "x"}, mine)
    with tricks.client() as http:
        assert _me(http, forged) == 401


def test_token_tricks_one_megabyte_token(tricks: Attackable) -> None:
    huge = "eyJ" + "A" * (1 << 20)
    with tricks.client() as http:
        try:
            code = _me(http, huge)
        except httpx.RemoteProtocolError:
            return  # the server closed the connection on the oversized header: refused
        assert 400 <= code < 500


def test_token_tricks_token_in_query_string(tricks: Attackable) -> None:
    user = tricks.register()
    with tricks.client() as http:
        token = tricks.login(user, http)["access_token"]
        for name in ("access_token", "token"):
            assert http.get("/v1/users/me", params={name: token}).status_code == 401


def test_token_tricks_refresh_as_access_and_access_as_refresh(tricks: Attackable) -> None:
    user = tricks.register()
    with tricks.client() as http:
        tokens = tricks.login(user, http)
        assert _me(http, tokens["refresh_token"]) == 401
        r = http.post(
            "/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["access_token"]},
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert _me(http, tokens["access_token"]) == 200  # neither attempt cost the pair


def test_token_tricks_key_of_the_previous_rotation_after_its_grace(tricks: Attackable) -> None:
    user = tricks.register()
    stack = tricks.stack
    with tricks.client() as http:
        old = tricks.login(user, http)["access_token"]
        assert _me(http, old) == 200
        for _ in range(2):  # after two rotations the old key is no longer even "previous"
            stack.rotate_keys()
        stack.restart("auth")
        fresh = tricks.login(user, http)["access_token"]
        assert _me(http, fresh) == 200  # api has fetched the new JWKS
        assert _me(http, old) == 401
