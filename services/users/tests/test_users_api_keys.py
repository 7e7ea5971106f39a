"""users' API-key store against real PostgreSQL and Redis: the cache api reads is written on
creation and on a miss, tombstoned on deletion (a fill cannot bring the key back), the last
use api records in Redis survives Redis forgetting it once listed, and scopes never exceed
the owner's roles."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis

from bulwark.users.v1 import users_pb2
from bulwark_common import apikeys, kv
from bulwark_common.db import Database, database_url
from bulwark_common.rpc import Abort
from bulwark_devstack import infra
from bulwark_users.accounts import FieldError
from bulwark_users.apikeys import ApiKeyStore
from bulwark_users.models import User, migrate, utcnow


@pytest.fixture
def store(
    postgres_admin_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[tuple[ApiKeyStore, redis.Redis, Database]]:
    with infra.temporary_database(postgres_admin_url) as db_url:
        db = Database(database_url(db_url, tmp_path, "users"))
        migrate(db.url)
        client = kv.client(redis_url)
        try:
            yield ApiKeyStore(db, client, redis_prefix), client, db
        finally:
            client.close()
            db.dispose()


def _user(db: Database, roles: list[str]) -> str:
    user_id = str(uuid.uuid4())
    with db.transaction() as session:
        session.add(
            User(
                id=user_id,
                username=f"u{user_id[:8]}",
                email=f"{user_id[:8]}@example.com",
                password_hash="x",
                roles=roles,
                disabled=False,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    return user_id


def _create(s: ApiKeyStore, user_id: str, scopes: list[str], seconds: int = 3600) -> Any:
    return s.create(
        users_pb2.CreateApiKeyRequest(
            user_id=user_id, name="k", scopes=scopes, expires_in_seconds=seconds
        )
    )


def test_cache_written_on_create_tombstoned_on_delete(store: Any) -> None:
    s, r, db = store
    user_id = _user(db, ["user"])
    created = _create(s, user_id, ["items:read"])
    key_hash = apikeys.secret_hash(created.secret)
    cached = apikeys.KeyRecord.loads(r.get(apikeys.record_key(s._prefix, key_hash)))
    assert (cached.user_id, cached.scopes, cached.roles) == (user_id, ("items:read",), ("user",))
    r.delete(apikeys.record_key(s._prefix, key_hash))  # evicted: a miss refills it
    grant = s.resolve(users_pb2.ResolveApiKeyRequest(key_hash=key_hash))
    assert grant.user_id == user_id and list(grant.scopes) == ["items:read"]
    assert r.get(apikeys.record_key(s._prefix, key_hash)) is not None
    s.delete(users_pb2.DeleteApiKeyRequest(user_id=user_id, id=created.key.id))
    assert r.get(apikeys.record_key(s._prefix, key_hash)) == apikeys.TOMBSTONE
    with pytest.raises(Abort) as info:
        s.resolve(users_pb2.ResolveApiKeyRequest(key_hash=key_hash))
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert r.get(apikeys.record_key(s._prefix, key_hash)) == apikeys.TOMBSTONE
    assert s.claims(created.secret) is None


def test_scopes_no_wider_than_the_roles(store: Any) -> None:
    s, _, db = store
    user_id = _user(db, ["user"])
    with pytest.raises(Abort) as info:
        _create(s, user_id, ["items:read", "users:admin"])
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert s.list_keys(users_pb2.ListApiKeysRequest(user_id=user_id)).items == []


def test_last_use_survives_redis_forgetting_it(store: Any) -> None:
    s, r, db = store
    user_id = _user(db, ["user"])
    created = _create(s, user_id, ["items:read"])
    used = apikeys.used_key(s._prefix, apikeys.secret_hash(created.secret))
    r.set(used, f"{time.time() - 30:.0f}")  # as api's script records a use
    [listed] = s.list_keys(users_pb2.ListApiKeysRequest(user_id=user_id)).items
    assert listed.HasField("last_used_at")
    r.delete(used)
    [again] = s.list_keys(users_pb2.ListApiKeysRequest(user_id=user_id)).items
    assert again.last_used_at == listed.last_used_at


def test_expiry_and_claims(store: Any) -> None:
    s, _, db = store
    user_id = _user(db, ["admin", "user"])
    created = _create(s, user_id, ["users:admin"], seconds=1)
    claims = s.claims(created.secret)
    assert claims is not None and claims.sub == user_id and claims.key_id == created.key.id
    assert claims.scopes == {"users:admin"} and claims.is_admin
    deadline = time.monotonic() + 5
    while s.claims(created.secret) is not None:
        assert time.monotonic() < deadline, "an expired key still passes users' check"
        time.sleep(0.1)
    with pytest.raises(FieldError):  # capped
        _create(s, user_id, ["items:read"], seconds=apikeys.MAX_API_KEY_DAYS * 86400 + 1)
