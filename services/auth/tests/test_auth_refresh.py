"""Refresh rotation, reuse detection and concurrent refresh, through a real server."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy import select, update

from bulwark_auth.models import RefreshToken
from bulwark_auth.tokens import hash_refresh_token
from bulwark_common import revocation

INVALID_GRANT = (grpc.StatusCode.UNAUTHENTICATED, "invalid_grant")
INVALID_SCOPE = (grpc.StatusCode.INVALID_ARGUMENT, "invalid_scope")


def _fails(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as excinfo:
        call()
    err: Any = excinfo.value
    return err.code(), err.details()


def _rows(auth: Any) -> list[RefreshToken]:
    with auth.db.transaction() as s:
        return list(s.execute(select(RefreshToken).order_by(RefreshToken.issued_at)).scalars())


def test_refresh_rotates_within_the_family(auth: Any) -> None:
    user = auth.users.add("alice")
    first = auth.login("alice")
    second = auth.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    claims = auth.decode(second.access_token)
    assert (
        claims["sub"] == user.id
        and claims["scope"] == "items:read items:write profile:read profile:write"
    )
    third = auth.refresh(second.refresh_token)
    assert third.refresh_token not in (first.refresh_token, second.refresh_token)

    a, b, c = _rows(auth)
    assert a.family_id == b.family_id == c.family_id
    assert (b.parent_id, c.parent_id) == (a.id, b.id)
    assert a.used_at is not None and b.used_at is not None and c.used_at is None
    assert not any(r.revoked_at for r in (a, b, c))
    # The family keeps the lifetime of the login: rotation does not extend it.
    assert a.expires_at == b.expires_at == c.expires_at


def test_reuse_revokes_the_whole_family(auth: Any, caplog: pytest.LogCaptureFixture) -> None:
    auth.users.add("alice")
    first = auth.login("alice")
    second = auth.refresh(first.refresh_token)
    caplog.set_level(logging.INFO, logger="bulwark.audit")

    # The stolen, already used token comes back: refused, and the family is burnt...
    assert _fails(lambda: auth.refresh(first.refresh_token)) == INVALID_GRANT
    # ...so the legitimate descendant no longer works either.
    assert _fails(lambda: auth.refresh(second.refresh_token)) == INVALID_GRANT
    assert all(r.revoked_at is not None for r in _rows(auth))

    reuse = [r for r in caplog.records if r.getMessage() == "token.reuse_detected"]
    assert reuse
    assert reuse[0].__dict__["family_id"] == _rows(auth)[0].family_id
    assert reuse[0].__dict__["client_ip"] == "203.0.113.7"
    assert reuse[0].__dict__["user_id"] == auth.users.accounts["alice"].user.id


def test_other_families_survive_a_reuse(auth: Any) -> None:
    auth.users.add("alice")
    phone = auth.login("alice")
    laptop = auth.login("alice")
    auth.refresh(phone.refresh_token)
    _fails(lambda: auth.refresh(phone.refresh_token))
    assert auth.refresh(laptop.refresh_token).access_token


def test_concurrent_refresh_exactly_one_wins(auth: Any) -> None:
    auth.users.add("alice")
    token = auth.login("alice").refresh_token
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        try:
            result: Any = auth.refresh(token)
        except grpc.RpcError as exc:
            result = (exc.code(), exc.details())
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    winners = [o for o in outcomes if not isinstance(o, tuple)]
    losers = [o for o in outcomes if isinstance(o, tuple)]
    assert len(outcomes) == n
    assert len(winners) == 1
    assert losers == [INVALID_GRANT] * (n - 1)  # no INTERNAL, UNKNOWN, ...
    rows = _rows(auth)
    assert len(rows) == 2  # the original and exactly one child


def test_unknown_and_expired_tokens(auth: Any) -> None:
    auth.users.add("alice")
    assert _fails(lambda: auth.refresh("no-such-token")) == INVALID_GRANT
    assert _fails(lambda: auth.refresh("x" * 100_000)) == INVALID_GRANT
    assert _fails(lambda: auth.refresh("")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )
    token = auth.login("alice").refresh_token
    with auth.db.transaction() as s:
        s.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_refresh_token(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert _fails(lambda: auth.refresh(token)) == INVALID_GRANT
    # Expiry is not reuse: nothing was revoked.
    assert all(r.revoked_at is None for r in _rows(auth))


def test_scope_can_narrow_but_never_widen(auth: Any) -> None:
    auth.users.add("root", roles=("user", "admin"))
    narrow = auth.login("root", scope="items:read items:write")
    # Widening back to a scope the user's roles allow is still refused...
    assert _fails(lambda: auth.refresh(narrow.refresh_token, scope="users:admin")) == INVALID_SCOPE
    # ...and does not burn the token.
    narrower = auth.refresh(narrow.refresh_token, scope="items:read")
    assert narrower.scope == "items:read"
    assert auth.decode(narrower.access_token)["scope"] == "items:read"
    # An empty scope keeps the (narrowed) grant; it does not reset to the roles' maximum.
    assert auth.refresh(narrower.refresh_token).scope == "items:read"


def test_refresh_drops_scopes_the_user_lost(auth: Any) -> None:
    auth.users.add("root", roles=("user", "admin"))
    token = auth.login("root").refresh_token
    auth.users.set_roles("root", ["user"])
    resp = auth.refresh(token)
    assert resp.scope == "items:read items:write profile:read profile:write"
    assert auth.decode(resp.access_token)["roles"] == ["user"]


def test_disabled_or_deleted_user_cannot_refresh(auth: Any) -> None:
    auth.users.add("alice")
    auth.users.add("bob")
    alice = auth.login("alice").refresh_token
    bob = auth.login("bob").refresh_token

    auth.users.set_disabled("alice")
    assert _fails(lambda: auth.refresh(alice)) == INVALID_GRANT
    auth.users.set_disabled("alice", False)
    assert _fails(lambda: auth.refresh(alice)) == INVALID_GRANT  # family stays revoked

    del auth.users.accounts["bob"]  # GetUser: NOT_FOUND
    assert _fails(lambda: auth.refresh(bob)) == INVALID_GRANT
    assert all(r.revoked_at is not None for r in _rows(auth))


def test_revoked_before_marker_voids_older_refresh_tokens(auth: Any) -> None:
    user = auth.users.add("alice")
    old = auth.login("alice").refresh_token
    time.sleep(0.002)
    # What users writes on a password change.
    revocation.revoke_user_tokens(auth.redis, auth.prefix, user.id)
    time.sleep(0.002)
    new = auth.login("alice").refresh_token

    assert _fails(lambda: auth.refresh(old)) == INVALID_GRANT
    assert auth.refresh(new).access_token  # issued after the marker: fine

    # The refusal is also written down, so it outlives the marker's TTL.
    auth.redis.delete(revocation.user_key(auth.prefix, user.id))
    assert _fails(lambda: auth.refresh(old)) == INVALID_GRANT


def test_users_down_on_refresh_keeps_the_token(
    auth_factory: Any, postgres_url: str, redis_url: str, redis_prefix: str, users: Any
) -> None:
    fake, _ = users
    fake.add("alice")
    settings = {
        "AUTH_DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "BULWARK_REDIS_PREFIX": redis_prefix,
    }
    with auth_factory(**settings) as auth:
        token = auth.login("alice").refresh_token
    from bulwark_devstack.infra import free_port  # type: ignore[import-untyped,unused-ignore]

    with auth_factory(**settings, users_target=f"127.0.0.1:{free_port()}") as auth:
        assert _fails(lambda: auth.refresh(token)) == (
            grpc.StatusCode.UNAVAILABLE,
            "temporarily_unavailable",
        )
    with auth_factory(**settings) as auth:
        assert auth.refresh(token).access_token  # not burnt by the outage
