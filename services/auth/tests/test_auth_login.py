"""Password grant through a real auth server, real PostgreSQL and Redis."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from bulwark.auth.v1 import auth_pb2
from bulwark_auth.models import RefreshToken
from bulwark_auth.tokens import hash_refresh_token
from bulwark_devstack.infra import free_port  # type: ignore[import-untyped,unused-ignore]


def _fails(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as excinfo:
        call()
    err: Any = excinfo.value
    return err.code(), err.details()


INVALID_GRANT = (grpc.StatusCode.UNAUTHENTICATED, "invalid_grant")


def test_password_grant_issues_a_verifiable_pair(auth: Any) -> None:
    user = auth.users.add("alice")
    resp = auth.login("alice")
    assert resp.token_type == "Bearer"
    assert resp.expires_in == 900
    assert resp.scope == "items:read items:write profile:read profile:write"
    claims = auth.decode(resp.access_token)
    assert claims["sub"] == user.id
    assert claims["roles"] == ["user"]
    assert claims["scope"] == "items:read items:write profile:read profile:write"

    with auth.db.transaction() as s:
        row = s.execute(select(RefreshToken)).scalar_one()
    # Only the hash is stored; the row ties the token to the user and a fresh family.
    assert row.token_hash == hash_refresh_token(resp.refresh_token)
    assert resp.refresh_token not in (row.token_hash, row.id, row.family_id)
    assert row.user_id == user.id and row.parent_id is None
    assert row.used_at is None and row.revoked_at is None
    assert abs(row.issued_at.timestamp() - claims["iat"]) < 0.001
    assert 29.9 * 86400 < (row.expires_at - row.issued_at).total_seconds() <= 30 * 86400


def test_admin_gets_admin_scope_and_can_ask_for_less(auth: Any) -> None:
    auth.users.add("root", roles=("user", "admin"))
    assert auth.login("root").scope == (
        "items:admin items:read items:write profile:read profile:write users:admin"
    )
    narrow = auth.login("root", scope="users:admin")
    assert narrow.scope == "users:admin"
    assert auth.decode(narrow.access_token)["scope"] == "users:admin"


def test_scope_beyond_roles_is_invalid_scope(auth: Any) -> None:
    auth.users.add("alice")
    assert _fails(lambda: auth.login("alice", scope="items:read users:admin")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_scope",
    )
    assert _fails(lambda: auth.login("alice", scope="bogus")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_scope",
    )


def test_bad_password_unknown_user_and_disabled_look_the_same(auth: Any) -> None:
    auth.users.add("alice")
    auth.users.add("mallory", disabled=True)
    assert _fails(lambda: auth.login("alice", password="wrong")) == INVALID_GRANT
    assert _fails(lambda: auth.login("nobody")) == INVALID_GRANT
    assert _fails(lambda: auth.login("mallory")) == INVALID_GRANT


def test_empty_credentials_are_invalid_request(auth: Any) -> None:
    expected = (grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")
    assert _fails(lambda: auth.login("", password="x")) == expected
    assert _fails(lambda: auth.login("alice", password="")) == expected


def test_backoff_refuses_even_the_right_password_then_expires(
    auth_factory: Any,
    postgres_url: str,
    redis_url: str,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A backoff long enough that no round trip outlasts it (0.3 s raced gRPC under load).
    with auth_factory(
        AUTH_DATABASE_URL=postgres_url,
        REDIS_URL=redis_url,
        BULWARK_REDIS_PREFIX=redis_prefix,
        backoff_base_seconds=3.0,
        backoff_max_seconds=3.0,
    ) as auth:
        _backoff_then_expiry(auth, caplog)


def _backoff_then_expiry(auth: Any, caplog: pytest.LogCaptureFixture) -> None:
    auth.users.add("alice")
    caplog.set_level(logging.INFO, logger="bulwark.audit")
    for _ in range(3):  # backoff_free_failures
        assert _fails(lambda: auth.login("alice", password="wrong")) == INVALID_GRANT
    locked = [r for r in caplog.records if r.getMessage() == "login.locked"]
    assert len(locked) == 1
    assert locked[0].__dict__["username"] == "alice"
    assert locked[0].__dict__["client_ip"] == "203.0.113.7"

    calls = auth.users.verify_calls
    # In backoff: the right password gets the same answer, and users is never asked.
    assert _fails(lambda: auth.login("alice")) == INVALID_GRANT
    assert auth.users.verify_calls == calls

    # Never permanent: poll until the backoff has passed; success resets.
    deadline = time.monotonic() + auth.settings.backoff_base_seconds + 5
    while True:
        try:
            assert auth.login("alice").access_token
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline, "backoff did not expire"
            time.sleep(0.1)
    assert auth.redis.exists(f"{auth.prefix}login:fail:203.0.113.7 alice") == 0


def test_audit_never_carries_secrets(auth: Any, caplog: pytest.LogCaptureFixture) -> None:
    auth.users.add("alice")
    caplog.set_level(logging.INFO, logger="bulwark.audit")
    resp = auth.login("alice")
    _fails(lambda: auth.login("alice", password="hunter2-wrong"))
    refreshed = auth.refresh(resp.refresh_token)
    events = [r.getMessage() for r in caplog.records]
    assert events == ["token.issued", "login.failure", "token.refreshed"]
    dumped = " ".join(str(r.__dict__) for r in caplog.records)
    for secret in (
        "correct horse",
        "hunter2-wrong",
        resp.access_token,
        resp.refresh_token,
        refreshed.refresh_token,
    ):
        assert secret not in dumped


def test_users_unreachable_is_unavailable(
    auth_factory: Any, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    with auth_factory(
        AUTH_DATABASE_URL=postgres_url,
        REDIS_URL=redis_url,
        BULWARK_REDIS_PREFIX=redis_prefix,
        users_target=f"127.0.0.1:{free_port()}",  # nobody listens
    ) as auth:
        started = time.monotonic()
        assert _fails(lambda: auth.login("alice")) == (
            grpc.StatusCode.UNAVAILABLE,
            "temporarily_unavailable",
        )
        assert time.monotonic() - started < 2 * auth.settings.grpc_deadline_seconds
        # Keys do not depend on users.
        assert auth.stub.GetJwks(auth_pb2.GetJwksRequest()).keys


def test_jwks_lists_the_current_key(auth: Any, keyring: Any) -> None:
    jwks = auth.stub.GetJwks(auth_pb2.GetJwksRequest())
    assert [k.kid for k in jwks.keys] == [keyring.current.kid]
    key = jwks.keys[0]
    assert (key.kty, key.crv, key.alg, key.use) == ("EC", "P-256", "ES256", "sig")


def test_redis_down_fails_closed(auth_factory: Any, postgres_url: str, redis_prefix: str) -> None:
    # Without Redis the backoff cannot be enforced: refuse rather than allow unthrottled guessing.
    with auth_factory(
        AUTH_DATABASE_URL=postgres_url,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        BULWARK_REDIS_PREFIX=redis_prefix,
    ) as auth:
        auth.users.add("alice")
        assert _fails(lambda: auth.login("alice")) == (
            grpc.StatusCode.UNAVAILABLE,
            "temporarily_unavailable",
        )
