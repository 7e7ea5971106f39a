"""API keys: users owns them (they are a user's credentials and die with the account).

The Redis cache api reads on every keyed request (bulwark_common.apikeys) is written here
only. A cache fill holds a shared lock on the owner's row; everything that voids keys holds
the exclusive lock (UpdateUser and DeleteUser already take it) and rewrites Redis inside the
transaction and again after the commit, so a racing fill can never bring a voided key back.
A password change keeps the keys (they are not derived from it); disabling or deleting the
user, or deleting the key, ends them at once; a role change re-caches them with the new roles.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import redis
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from bulwark.users.v1 import users_pb2
from bulwark_common import apikeys
from bulwark_common.accesstokens import Claims
from bulwark_common.db import Database
from bulwark_common.logging import audit
from bulwark_common.rpc import Abort
from bulwark_common.scopes import SCOPES, allowed_scopes
from bulwark_users.accounts import FieldError, parse_id
from bulwark_users.models import ApiKey, User, utcnow

Code = grpc.StatusCode


def key_proto(key: ApiKey, last_used: datetime | None = None) -> Any:
    msg = users_pb2.ApiKey(id=key.id, name=key.name, scopes=sorted(key.scopes))
    msg.created_at.FromDatetime(key.created_at)
    msg.expires_at.FromDatetime(key.expires_at)
    used = max((t for t in (last_used, key.last_used_at) if t is not None), default=None)
    if used is not None:
        msg.last_used_at.FromDatetime(used)
    return msg


def _ttl(expires_at: datetime) -> int:
    return max(1, int(expires_at.timestamp() - time.time()) + 1)


class ApiKeyStore:
    def __init__(self, db: Database, redis_client: redis.Redis, prefix: str) -> None:
        self._db = db
        self._redis = redis_client
        self._prefix = prefix

    # --- the cache -----------------------------------------------------------------

    def _cache(self, key: ApiKey, roles: Iterable[str]) -> apikeys.KeyRecord:
        record = apikeys.KeyRecord(
            id=key.id,
            user_id=key.user_id,
            scopes=tuple(sorted(key.scopes)),
            roles=tuple(sorted(roles)),
            expires_at=int(key.expires_at.timestamp()),
        )
        self._redis.set(
            apikeys.record_key(self._prefix, key.key_hash), record.dumps(), ex=_ttl(key.expires_at)
        )
        return record

    def tombstone(self, keys: Iterable[tuple[str, datetime]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key_hash, expires_at in keys:
            pipe.set(
                apikeys.record_key(self._prefix, key_hash), apikeys.TOMBSTONE, ex=_ttl(expires_at)
            )
        pipe.execute()

    def forget(self, key_hashes: Iterable[str]) -> None:
        names = [apikeys.record_key(self._prefix, h) for h in key_hashes]
        if names:
            self._redis.delete(*names)

    @staticmethod
    def of_user(session: Session, user_id: str) -> list[tuple[str, datetime]]:
        rows = session.execute(
            select(ApiKey.key_hash, ApiKey.expires_at).where(ApiKey.user_id == user_id)
        ).all()
        return [(h, e) for h, e in rows]

    # --- the owner's operations ------------------------------------------------------

    def create(self, request: Any) -> Any:
        user_id = parse_id(request.user_id)
        name = request.name.strip()
        if not 1 <= len(name) <= 100:
            raise FieldError("name", "must be 1-100 characters")
        scopes = sorted(set(request.scopes))
        if not scopes or any(s not in SCOPES for s in scopes):
            raise FieldError("scopes", f"must name known scopes ({', '.join(sorted(SCOPES))})")
        max_seconds = apikeys.MAX_API_KEY_DAYS * 86400
        if not 1 <= request.expires_in_seconds <= max_seconds:
            raise FieldError("expires_in_days", f"must be > 0 and <= {apikeys.MAX_API_KEY_DAYS}")
        secret = apikeys.new_api_key()
        now = utcnow()
        with self._db.transaction() as session:
            user = session.get(User, user_id, with_for_update=True) if user_id else None
            if user is None or user.disabled:
                raise Abort(Code.NOT_FOUND, "user not found")
            wider = set(scopes) - allowed_scopes(user.roles)
            if wider:
                raise Abort(
                    Code.PERMISSION_DENIED, f"scopes beyond yours: {' '.join(sorted(wider))}"
                )
            live = session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(ApiKey.user_id == user.id, ApiKey.expires_at > now)
            )
            if (live or 0) >= apikeys.MAX_API_KEYS_PER_USER:
                raise Abort(
                    Code.FAILED_PRECONDITION,
                    f"at most {apikeys.MAX_API_KEYS_PER_USER} live keys: delete one first",
                )
            key = ApiKey(
                id=str(uuid.uuid4()),
                user_id=user.id,
                name=name,
                key_hash=apikeys.secret_hash(secret),
                scopes=scopes,
                created_at=now,
                expires_at=now + timedelta(seconds=request.expires_in_seconds),
            )
            session.add(key)
            session.flush()
            self._cache(key, user.roles)  # Redis down: nothing is created
        audit(
            "api_key.created",
            user_id=key.user_id,
            key_id=key.id,
            scopes=scopes,
            expires_at=key.expires_at.isoformat(),
            client_ip=request.client_ip or None,
        )
        return users_pb2.CreatedApiKey(key=key_proto(key), secret=secret)

    def list_keys(self, request: Any) -> Any:
        user_id = parse_id(request.user_id)
        if user_id is None:
            return users_pb2.ListApiKeysResponse()
        with self._db.reads() as session:
            keys = session.scalars(
                select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at)
            ).all()
        used: list[Any] = []
        if keys:
            used = self._redis.mget([apikeys.used_key(self._prefix, k.key_hash) for k in keys])
        items, newer = [], {}
        for key, raw in zip(keys, used or [None] * len(keys), strict=True):
            last = datetime.fromtimestamp(float(raw), UTC) if raw else None
            if last is not None and (key.last_used_at is None or last > key.last_used_at):
                newer[key.id] = last
            items.append(key_proto(key, last))
        self._keep_last_use(newer)
        return users_pb2.ListApiKeysResponse(items=items)

    def _keep_last_use(self, newer: dict[str, datetime]) -> None:
        """Copy what Redis knows into the table (only when someone looks), so a Redis
        restart does not forget a key's last use. Never lowers a stored time."""
        if not newer:
            return
        with self._db.transaction() as session:
            for key_id, last in newer.items():
                session.execute(
                    update(ApiKey)
                    .where(
                        ApiKey.id == key_id,
                        or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < last),
                    )
                    .values(last_used_at=last)
                )

    def delete(self, request: Any) -> Any:
        user_id, key_id = parse_id(request.user_id), parse_id(request.id)
        if user_id is None or key_id is None:
            raise Abort(Code.NOT_FOUND, "API key not found")
        with self._db.transaction() as session:
            session.get(User, user_id, with_for_update=True)
            key = session.scalar(
                select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id)
            )
            if key is None:
                raise Abort(Code.NOT_FOUND, "API key not found")
            voided = [(key.key_hash, key.expires_at)]
            session.delete(key)
            session.flush()
            self.tombstone(voided)
        self.tombstone(voided)
        audit(
            "api_key.deleted",
            user_id=user_id,
            key_id=key_id,
            reason="deleted",
            client_ip=request.client_ip or None,
        )
        return users_pb2.DeleteApiKeyResponse()

    def end_all(
        self, session: Session, user_id: str, *, delete_rows: bool
    ) -> list[tuple[str, datetime]]:
        """Inside a transaction holding the user's row lock: tombstone (and optionally
        delete) every key of the user. The caller tombstones the result again after commit."""
        voided = self.of_user(session, user_id)
        if voided:
            if delete_rows:
                session.execute(delete(ApiKey).where(ApiKey.user_id == user_id))
            self.tombstone(voided)
        return voided

    # --- api's cache miss ------------------------------------------------------------

    def resolve(self, request: Any) -> Any:
        key_hash: str = request.key_hash
        with self._db.transaction() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            if key is None:
                raise Abort(Code.NOT_FOUND, "API key not found")
            # The shared lock, then a second look: a void that committed meanwhile wins.
            user = session.scalar(
                select(User).where(User.id == key.user_id).with_for_update(read=True)
            )
            key = session.scalar(
                select(ApiKey)
                .where(ApiKey.key_hash == key_hash)
                .execution_options(populate_existing=True)
            )
            if key is None or user is None or user.disabled or key.expires_at <= utcnow():
                raise Abort(Code.NOT_FOUND, "API key not found")
            record = self._cache(key, user.roles)
        return users_pb2.ApiKeyGrant(
            id=record.id,
            user_id=record.user_id,
            scopes=record.scopes,
            roles=record.roles,
            expires_at=record.expires_at,
        )

    def claims(self, secret: str) -> Claims | None:
        """users' own check of a key api forwarded as the end user's credential."""
        if len(secret) > apikeys.MAX_SECRET_LENGTH:
            return None
        key_hash = apikeys.secret_hash(secret)
        with self._db.reads() as session:
            row = session.execute(
                select(ApiKey, User)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.key_hash == key_hash)
            ).first()
        if row is None:
            return None
        key, user = row
        if (
            user.disabled
            or key.expires_at <= utcnow()
            or not hmac.compare_digest(key.key_hash, key_hash)
        ):
            return None
        return Claims(
            sub=user.id,
            jti=f"apikey:{key.id}",
            iat=key.created_at.timestamp(),
            exp=int(key.expires_at.timestamp()),
            scopes=frozenset(key.scopes) & allowed_scopes(user.roles),
            roles=frozenset(user.roles),
            key_id=key.id,
        )
