"""Access-token claims, scopes and refresh-token material."""

from __future__ import annotations

import time

import jwt
import pytest

from bulwark_auth.keys import Keyring, generate_pem
from bulwark_auth.tokens import (
    InvalidScope,
    TokenIssuer,
    hash_refresh_token,
    new_refresh_token,
    resolve_scope,
)
from bulwark_common.scopes import ROLE_SCOPES, allowed_scopes

ISS = "http://127.0.0.1:8080"
AUD = "bulwark-api"


@pytest.fixture
def issuer(keyring: Keyring) -> TokenIssuer:
    return TokenIssuer(keyring, ISS, AUD, 900)


def test_access_token_header_and_claims(issuer: TokenIssuer, keyring: Keyring) -> None:
    before = time.time()
    access = issuer.issue("user-1", {"items:write", "items:read"}, ["user"])
    header = jwt.get_unverified_header(access.token)
    assert header == {"alg": "ES256", "kid": keyring.current.kid, "typ": "at+jwt"}
    claims = jwt.decode(
        access.token, keyring.current.public_key, algorithms=["ES256"], audience=AUD, issuer=ISS
    )
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "scope", "roles"}
    assert claims["sub"] == "user-1"
    assert claims["scope"] == "items:read items:write"
    assert claims["roles"] == ["user"]
    assert claims["jti"] == access.jti and len(access.jti) == 32
    int(access.jti, 16)  # uuid4 hex
    # iat: float with millisecond precision (compared with the revoked-before marker).
    assert isinstance(claims["iat"], float)
    assert claims["iat"] == round(claims["iat"], 3)
    assert before - 0.001 <= claims["iat"] <= time.time()
    assert isinstance(claims["exp"], int)
    assert claims["exp"] == int(claims["iat"]) + 900


def test_iat_keeps_milliseconds(issuer: TokenIssuer) -> None:
    access = issuer.issue("u", {"items:read"}, ["user"], now=1_700_000_000.123456)
    claims = jwt.decode(access.token, options={"verify_signature": False})
    assert claims["iat"] == 1_700_000_000.123
    assert access.exp == 1_700_000_900


def test_each_token_gets_a_fresh_jti(issuer: TokenIssuer) -> None:
    assert issuer.issue("u", {"a"}, []).jti != issuer.issue("u", {"a"}, []).jti


def test_verify_accepts_own_and_rejects_others(issuer: TokenIssuer) -> None:
    access = issuer.issue("u", {"items:read"}, ["user"])
    assert issuer.verify(access.token)["jti"] == access.jti

    stranger = TokenIssuer(Keyring.from_pems(generate_pem()), ISS, AUD, 900)
    with pytest.raises(jwt.InvalidTokenError):
        issuer.verify(stranger.issue("u", {"items:read"}, ["user"]).token)
    other_aud = TokenIssuer(issuer.keyring, ISS, "someone-else", 900)
    with pytest.raises(jwt.InvalidTokenError):
        issuer.verify(other_aud.issue("u", {"items:read"}, ["user"]).token)
    expired = issuer.issue("u", {"items:read"}, ["user"], now=time.time() - 3600)
    with pytest.raises(jwt.ExpiredSignatureError):
        issuer.verify(expired.token)
    with pytest.raises(jwt.InvalidTokenError):
        issuer.verify("garbage")
    # Same key, but not an access token (typ): refused.
    forged = jwt.encode(
        {"sub": "u"},
        issuer.keyring.current.private_key,
        algorithm="ES256",
        headers={"kid": issuer.keyring.current.kid},
    )
    with pytest.raises(jwt.InvalidTokenError):
        issuer.verify(forged)


def test_role_scopes() -> None:
    user = {"items:read", "items:write", "profile:read", "profile:write"}
    assert ROLE_SCOPES["user"] == user
    assert ROLE_SCOPES["admin"] == user | {"items:admin", "users:admin"}
    assert allowed_scopes(["user"]) == user
    assert allowed_scopes(["user", "admin"]) == ROLE_SCOPES["admin"]
    assert allowed_scopes(["unknown-role"]) == frozenset()


def test_resolve_scope() -> None:
    user = allowed_scopes(["user"])
    assert resolve_scope("", user) == user
    assert resolve_scope("   ", user) == user
    assert resolve_scope("items:read", user) == {"items:read"}
    assert resolve_scope("items:read  items:read", user) == {"items:read"}
    with pytest.raises(InvalidScope):
        resolve_scope("items:read users:admin", user)
    with pytest.raises(InvalidScope):
        resolve_scope("", frozenset())  # nothing to grant


def test_refresh_tokens_are_random_and_stored_hashed() -> None:
    tokens = {new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert token.startswith("bwr_") and len(token) == 4 + 43  # prefix, 32 bytes base64url
    digest = hash_refresh_token(token)
    assert len(digest) == 64 and token not in digest
    assert digest == hash_refresh_token(token)
