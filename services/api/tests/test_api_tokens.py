"""Unit tests of api's local token verification: every forgery is refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import time
import tracemalloc
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from bulwark_api.tokens import LEEWAY_SECONDS, InvalidToken, Verifier

ISS, AUD = "https://issuer.test", "bulwark-api"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Keys:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "kid-" + uuid.uuid4().hex[:8]
        jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwk = {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}
        self.fetches = 0

    async def fetch(self) -> list[dict[str, str]]:
        self.fetches += 1
        return [self.jwk]

    def claims(self, **over: Any) -> dict[str, Any]:
        now = time.time()
        base = {
            "iss": ISS,
            "aud": AUD,
            "sub": str(uuid.uuid4()),
            "iat": round(now, 3),
            "exp": int(now) + 900,
            "jti": uuid.uuid4().hex,
            "scope": "items:read",
            "roles": ["user"],
        }
        base.update(over)
        return base

    def sign(self, claims: dict[str, Any] | None = None, **headers: Any) -> str:
        hdr = {"kid": self.kid, "typ": "at+jwt", **headers}
        return jwt.encode(claims or self.claims(), self.key, algorithm="ES256", headers=hdr)


@pytest.fixture
def keys() -> Keys:
    return Keys()


def verifier(keys: Keys) -> Verifier:
    return Verifier(keys.fetch, issuer=ISS, audience=AUD, min_refresh_seconds=60)


def verify(keys: Keys, token: str) -> Any:
    return asyncio.run(verifier(keys).verify(token))


def test_valid_token_passes(keys: Keys) -> None:
    claims = verify(keys, keys.sign())
    assert claims.scopes == {"items:read"} and claims.roles == {"user"}


def test_alg_none_is_refused(keys: Keys) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": keys.kid}).encode())
    token = f"{header}.{_b64(json.dumps(keys.claims()).encode())}."
    with pytest.raises(InvalidToken):
        verify(keys, token)


def test_hs256_with_the_public_key_as_secret_is_refused(keys: Keys) -> None:
    pem = keys.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": keys.kid}).encode())
    payload = _b64(json.dumps(keys.claims()).encode())
    sig = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken):
        verify(keys, f"{header}.{payload}.{_b64(sig)}")


def test_unknown_kid_is_refused_and_refetch_is_rate_limited(keys: Keys) -> None:
    v = verifier(keys)

    async def run() -> None:
        for _ in range(5):
            with pytest.raises(InvalidToken):
                await v.verify(keys.sign(kid="forged"))

    asyncio.run(run())
    assert keys.fetches == 1


def test_key_from_another_issuer_is_refused(keys: Keys) -> None:
    other = Keys()
    other.kid = keys.kid  # same kid, different key
    with pytest.raises(InvalidToken):
        verify(keys, other.sign())


@pytest.mark.parametrize(
    "over",
    [
        {"iss": "https://evil.test"},
        {"aud": "someone-else"},
        {"exp": int(time.time()) - 60},
        {"nbf": int(time.time()) + 600},
        {"iat": "yesterday"},
    ],
)
def test_wrong_claims_are_refused(keys: Keys, over: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        verify(keys, keys.sign(keys.claims(**over)))


def test_missing_required_claim_is_refused(keys: Keys) -> None:
    claims = keys.claims()
    del claims["jti"]
    with pytest.raises(InvalidToken):
        verify(keys, keys.sign(claims))


def test_tampered_payload_is_refused(keys: Keys) -> None:
    header, _, sig = keys.sign().split(".")
    forged = _b64(json.dumps(keys.claims(roles=["admin"])).encode())
    with pytest.raises(InvalidToken):
        verify(keys, f"{header}.{forged}.{sig}")


def test_refresh_tokens_and_id_tokens_are_not_access_tokens(keys: Keys) -> None:
    with pytest.raises(InvalidToken):
        verify(keys, keys.sign(typ="JWT"))


def test_verified_tokens_are_cached_but_expiry_still_applies(keys: Keys) -> None:
    v = verifier(keys)
    # Expired already, but inside the clock-skew leeway for at least one more second (ceil:
    # int() could leave only microseconds when the clock is just short of a whole second).
    token = keys.sign(keys.claims(exp=math.ceil(time.time()) - LEEWAY_SECONDS + 1))

    async def run() -> None:
        assert (await v.verify(token)).sub
        assert (await v.verify(token)).sub  # from the cache
        deadline = time.monotonic() + 5
        while True:  # poll until the cached entry has expired too
            try:
                await v.verify(token)
            except InvalidToken:
                break
            assert time.monotonic() < deadline, "a cached token outlived its expiry"
            await asyncio.sleep(0.05)

    asyncio.run(run())


def test_the_cache_is_bounded_and_drops_expired_tokens(keys: Keys) -> None:
    v = Verifier(keys.fetch, issuer=ISS, audience=AUD, cache_size=3)
    short = keys.sign(keys.claims(exp=math.ceil(time.time()) - LEEWAY_SECONDS + 1))
    fresh = [keys.sign() for _ in range(4)]

    async def run() -> None:
        await v.verify(short)
        deadline = time.monotonic() + 5
        while v.cached(short) is not None:  # until the short-lived token has expired
            assert time.monotonic() < deadline, "a cached token outlived its expiry"
            await asyncio.sleep(0.05)
        await v.verify(fresh[0])  # the expired entry goes when a new one arrives
        assert [v.cached(t) is not None for t in (short, fresh[0])] == [False, True]
        for token in fresh[1:]:
            await v.verify(token)  # one over the bound: the least recently used goes
        assert [v.cached(t) is not None for t in fresh] == [False, True, True, True]

    asyncio.run(run())


def test_a_cached_token_costs_little_memory(keys: Keys) -> None:
    # The soak showed api's RSS growing while the 10,000-entry cache filled (~1.8 KB an
    # entry then). Claims use slots and share their scope and role sets.
    tokens = [keys.sign() for _ in range(2000)]
    v = Verifier(keys.fetch, issuer=ISS, audience=AUD)

    async def fill() -> None:
        for token in tokens:
            await v.verify(token)

    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        asyncio.run(fill())
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    per_entry = grown / len(tokens)  # the tokens themselves were allocated before
    assert per_entry < 700, f"{per_entry:.0f} bytes per cached token besides the token"
