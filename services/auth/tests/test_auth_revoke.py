"""RevokeToken (RFC 7009) through a real server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from sqlalchemy import select

from bulwark_auth.keys import Keyring, generate_pem
from bulwark_auth.models import RefreshToken
from bulwark_auth.tokens import TokenIssuer
from bulwark_common import revocation

INVALID_GRANT = (grpc.StatusCode.UNAUTHENTICATED, "invalid_grant")


def _fails(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as excinfo:
        call()
    err: Any = excinfo.value
    return err.code(), err.details()


@pytest.mark.parametrize("hint", ["", "refresh_token", "access_token"])
def test_revoking_a_refresh_token_revokes_its_family(auth: Any, hint: str) -> None:
    auth.users.add("alice")
    first = auth.login("alice")
    second = auth.refresh(first.refresh_token)
    other = auth.login("alice")

    auth.revoke(second.refresh_token, hint=hint)
    assert _fails(lambda: auth.refresh(second.refresh_token)) == INVALID_GRANT
    with auth.db.transaction() as s:
        rows = list(s.execute(select(RefreshToken)).scalars())
    family = {r.family_id for r in rows if r.revoked_at is not None}
    assert len(family) == 1 and len([r for r in rows if r.revoked_at is not None]) == 2
    assert auth.refresh(other.refresh_token).access_token  # other sessions unaffected


@pytest.mark.parametrize("hint", ["", "access_token", "refresh_token"])
def test_revoking_an_access_token_denylists_its_jti(auth: Any, hint: str) -> None:
    auth.users.add("alice")
    resp = auth.login("alice")
    claims = auth.decode(resp.access_token)
    auth.revoke(resp.access_token, hint=hint)

    key = revocation.jti_key(auth.prefix, claims["jti"])
    assert auth.redis.get(key) == b"1"
    ttl = auth.redis.ttl(key)
    assert 0 < ttl <= claims["exp"] - int(claims["iat"]) + 1
    assert ttl >= auth.settings.access_token_ttl_seconds - 5
    # The refresh token from the same login is untouched (RFC 7009 leaves that open).
    assert auth.refresh(resp.refresh_token).access_token


def test_unknown_garbage_and_foreign_tokens_are_ok(auth: Any) -> None:
    stranger = TokenIssuer(
        Keyring.from_pems(generate_pem()), auth.settings.issuer, auth.settings.audience, 900
    ).issue("someone", {"items:read"}, ["user"])
    for token in ("nope", "a.b.c", "x" * 100_000, stranger.token):
        auth.revoke(token)
        auth.revoke(token, hint="access_token")
    assert not list(auth.redis.scan_iter(match=f"{auth.prefix}revoked:*"))


def test_empty_token_is_invalid_request(auth: Any) -> None:
    assert _fails(lambda: auth.revoke("")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )
