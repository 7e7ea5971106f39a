"""Attack 5: rate-limit evasion. Every X-Forwarded-For line counts (not only the first, which
the client writes), an IPv6 host is one /64 (not 2^64 addresses), and requests without a
valid token are counted against their address before any signature is checked."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bulwark_devstack.stack import Stack
from bulwark_devstack.target import Attackable, module_stack
from bulwark_devstack.testkit import random_ip

LIMIT = 5


@pytest.fixture(scope="module")
def tight(stack_factory: Callable[..., Stack]) -> Iterator[Attackable]:
    rates = {"API_REGISTER_RATE": f"{LIMIT}/minute", "API_ANONYMOUS_RATE": f"{LIMIT}/minute"}
    with module_stack(stack_factory, {"api": rates}) as target:
        yield target


def _register_junk(http: httpx.Client, headers: list[tuple[str, str]]) -> int:
    # An empty body: refused (422) after it was counted, so nothing is created.
    return http.post("/v1/users", json={}, headers=httpx.Headers(headers)).status_code


def test_rate_limit_evasion_second_forwarded_for_line(tight: Attackable) -> None:
    real = random_ip()
    with httpx.Client(base_url=tight.url, timeout=20) as http:
        codes = [
            # The client writes the first line freely; the proxy's line names the real peer.
            _register_junk(http, [("X-Forwarded-For", random_ip()), ("X-Forwarded-For", real)])
            for _ in range(LIMIT + 1)
        ]
    assert codes[:LIMIT] == [422] * LIMIT
    assert codes[LIMIT] == 429, "a forged first X-Forwarded-For line picked a fresh bucket"


def test_rate_limit_evasion_ipv6_addresses_of_one_host(tight: Attackable) -> None:
    net = f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}"
    with httpx.Client(base_url=tight.url, timeout=20) as http:
        codes = [
            _register_junk(http, [("X-Forwarded-For", f"{net}::{i + 1:x}")])
            for i in range(LIMIT + 1)
        ]
    assert codes[LIMIT] == 429, "each address of one IPv6 /64 had a bucket of its own"


def test_rate_limit_evasion_forged_tokens_are_counted_before_verification(
    tight: Attackable,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with tight.client() as http:
        codes = []
        for _ in range(LIMIT + 1):
            forged = jwt.encode(
                {"sub": secrets.token_hex(8)},
                key,
                algorithm="ES256",
                headers={"kid": secrets.token_hex(8), "typ": "at+jwt"},
            )
            codes.append(
                http.get("/v1/items", headers={"Authorization": f"Bearer {forged}"}).status_code
            )
    assert codes[:LIMIT] == [401] * LIMIT
    assert codes[LIMIT] == 429, "invalid tokens reached signature verification unlimited"


def test_rate_limit_evasion_missing_tokens_are_counted(tight: Attackable) -> None:
    with tight.client() as http:
        codes = [http.get("/v1/items").status_code for _ in range(LIMIT + 1)]
    assert codes[LIMIT] == 429
