"""The UsersService gRPC servicer (sync server: argon2 runs in the worker threads).

Revocation and Redis failures: changing a password, disabling, deleting or changing roles
writes the user's revocation marker twice, once inside the DB transaction just before it
commits and once after the commit. If Redis is down at the first write, the transaction rolls
back and the RPC fails UNAVAILABLE with nothing changed, so the caller can simply retry. The
write after the commit voids tokens issued between the two (a login racing the change); if
that one fails the RPC also fails UNAVAILABLE although the change is committed: tokens from
before the change are already void, and we prefer a loud error to a silent gap.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

import grpc
import redis
from sqlalchemy import Text, bindparam, cast, func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from bulwark.users.v1 import users_pb2, users_pb2_grpc
from bulwark_common import revocation
from bulwark_common.db import Database, psycopg_sql
from bulwark_common.events import USER_DELETED
from bulwark_common.logging import audit
from bulwark_common.rpc import Abort, rpc_errors
from bulwark_users.accounts import (
    Conflict,
    FieldError,
    check_password,
    conflict_field,
    create_user,
    normalize_email,
    normalize_roles,
    normalize_username,
    parse_id,
)
from bulwark_users.apikeys import ApiKeyStore
from bulwark_users.clients import ClientStore
from bulwark_users.models import User, UserEvent, utcnow
from bulwark_users.outbox import Outbox
from bulwark_users.passwords import Passwords

log = logging.getLogger("bulwark.users")

SERVICE_NAME: str = users_pb2.DESCRIPTOR.services_by_name["UsersService"].full_name
DEFAULT_LIMIT = 50
MAX_LIMIT = 100

Code = grpc.StatusCode
# Compiled once and cached by SQLAlchemy; the login path runs it on every attempt.
_BY_USERNAME = select(User.__table__).where(User.__table__.c.username == bindparam("username"))
# Enabled accounts with the admin role. Roles are a JSON list on both backends; its text
# form holds the quoted name, so the match is exact ("admin", never "admins").
_ACTIVE_ADMINS = (
    select(User.id)
    .where(User.disabled.is_(False), cast(User.roles, Text).like('%"admin"%'))
    .order_by(User.id)
)
LAST_ADMIN = "the last active admin cannot be demoted, disabled or deleted"


def _lock_active_admins(session: Session) -> set[str]:
    """Lock every active admin's row (PostgreSQL; SQLite serialises writers anyway) and
    return their ids. Every change that can remove an admin takes these locks first and in
    one order (by id), so two such changes run one after the other without deadlocking,
    and the second sees the first: two admins cannot each demote "the other last one"."""
    return set(session.scalars(_ACTIVE_ADMINS.with_for_update()))


def _is_active_admin(user: User) -> bool:
    return "admin" in user.roles and not user.disabled


_rpc = rpc_errors(
    log,
    mapping={
        FieldError: lambda exc: (Code.INVALID_ARGUMENT, str(exc)),
        Conflict: lambda exc: (Code.ALREADY_EXISTS, str(exc)),
    },
    redis_details="token revocation store unavailable",
    database_details="database unavailable",
    internal_details="internal error",
)


def to_proto(user: User | Row[Any] | _UserRow) -> Any:
    """An ORM user or a Core row of the users table, as the wire message."""
    msg = users_pb2.User(
        id=user.id,
        username=user.username,
        email=user.email,
        roles=sorted(user.roles),
        disabled=user.disabled,
    )
    msg.created_at.FromDatetime(user.created_at)
    return msg


class _UserRow(NamedTuple):
    """What to_proto needs of a user, in GetUser's column order."""

    id: str
    username: str
    email: str
    roles: list[str]
    disabled: bool
    created_at: datetime


_USERS = User.__table__
_GET_USER = select(*(_USERS.c[name] for name in _UserRow._fields)).where(
    _USERS.c.id == bindparam("id")
)
# The same read as psycopg's SQL, for Database.fetch_row on PostgreSQL: psycopg returns the
# JSON roles decoded and created_at time-zone aware, all that to_proto needs.
_GET_USER_PG = psycopg_sql(_GET_USER)


def _or_none(value: str) -> str | None:
    return value or None


def _who(request: Any) -> dict[str, str | None]:
    """The audit fields naming who asked for an admin or self-service change, and from where."""
    return {"actor_id": _or_none(request.actor_id), "client_ip": _or_none(request.client_ip)}


class UsersServicer(users_pb2_grpc.UsersServiceServicer):  # type: ignore[misc]
    def __init__(
        self, db: Database, passwords: Passwords, redis_client: redis.Redis, redis_prefix: str
    ) -> None:
        self._db = db
        self._passwords = passwords
        self._redis = redis_client
        self._prefix = redis_prefix
        self._outbox = Outbox(db, redis_client, redis_prefix)
        self.api_keys = ApiKeyStore(db, redis_client, redis_prefix)
        self._clients = ClientStore(db, redis_client, redis_prefix, self._outbox)

    def register(self, server: grpc.Server) -> Iterable[str]:
        users_pb2_grpc.add_UsersServiceServicer_to_server(self, server)
        self._outbox.start()  # relays what a crash or an outage left unpublished
        return [SERVICE_NAME]

    def close(self) -> None:
        self._outbox.stop()

    def _revoke(self, user_id: str) -> None:
        revocation.revoke_user_tokens(self._redis, self._prefix, user_id)

    @staticmethod
    def _require_id(raw: str) -> str:
        # Validate before querying: a malformed id is simply not found.
        user_id = parse_id(raw)
        if user_id is None:
            raise Abort(Code.NOT_FOUND, "user not found")
        return user_id

    @_rpc
    def CreateUser(self, request: Any, context: grpc.ServicerContext) -> Any:
        user = create_user(
            self._db,
            self._passwords,
            username=request.username,
            email=request.email,
            password=request.password,
            roles=request.roles,
        )
        audit(
            "user.created",
            user_id=user.id,
            username=user.username,
            roles=user.roles,
            actor_id=request.actor_id or user.id,
            client_ip=request.client_ip,
        )
        return to_proto(user)

    @_rpc
    def GetUser(self, request: Any, context: grpc.ServicerContext) -> Any:
        user_id = self._require_id(request.id)
        # The hot read behind GET /v1/users/me: no ORM session or identity map, and on
        # PostgreSQL not even a SQLAlchemy Connection (profiled: each was most of this
        # handler's CPU in turn).
        user: _UserRow | Row[Any] | None
        if self._db.postgres:
            row = self._db.fetch_row(_GET_USER_PG, {"id": user_id})
            user = None if row is None else _UserRow(*row)
        else:
            with self._db.connect() as conn:
                user = conn.execute(_GET_USER, {"id": user_id}).first()
        if user is None:
            raise Abort(Code.NOT_FOUND, "user not found")
        return to_proto(user)

    @_rpc
    def ListUsers(self, request: Any, context: grpc.ServicerContext) -> Any:
        limit = request.limit or DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise FieldError("limit", f"must be between 1 and {MAX_LIMIT}")
        if request.offset < 0:
            raise FieldError("offset", "must not be negative")
        with self._db.sessions() as session:
            total = session.scalar(select(func.count()).select_from(User)) or 0
            users = session.scalars(
                select(User).order_by(User.created_at, User.id).limit(limit).offset(request.offset)
            ).all()
        return users_pb2.ListUsersResponse(items=[to_proto(u) for u in users], total=total)

    @_rpc
    def UpdateUser(self, request: Any, context: grpc.ServicerContext) -> Any:
        user_id = self._require_id(request.id)
        who = _who(request)
        # What can be checked without the stored row is checked before any lock is taken.
        new_email = normalize_email(request.email) if request.HasField("email") else None
        new_roles = normalize_roles(request.roles.roles) if request.HasField("roles") else None
        self_service = request.HasField("current_password")
        can_remove_admin = new_roles is not None or request.HasField("disabled")
        changed: list[str] = []
        old_roles: list[str] = []
        revoke = False
        voided_keys: list[Any] = []
        recached_keys: list[Any] = []
        try:
            with self._db.transaction() as session:
                admins = _lock_active_admins(session) if can_remove_admin else set()
                # Row lock (PostgreSQL): concurrent updates of one user apply one at a time.
                user = session.scalar(select(User).where(User.id == user_id).with_for_update())
                if user is None:
                    raise Abort(Code.NOT_FOUND, "user not found")
                if self_service and not self._passwords.verify(
                    user.password_hash, request.current_password
                ):
                    audit("user.update_denied", user_id=user_id, reason="current_password", **who)
                    raise Abort(Code.INVALID_ARGUMENT, "current_password: incorrect")
                if new_email is not None and new_email != user.email:
                    taken = session.scalar(
                        select(User.id).where(User.email == new_email, User.id != user_id)
                    )
                    if taken is not None:
                        raise Conflict("email")
                    user.email = new_email
                    changed.append("email")
                if request.HasField("password"):
                    check_password(request.password, username=user.username, email=user.email)
                    user.password_hash = self._passwords.hash(request.password)
                    changed.append("password")
                    revoke = True
                if new_roles is not None and new_roles != sorted(user.roles):
                    old_roles = sorted(user.roles)
                    user.roles = new_roles
                    changed.append("roles")
                    revoke = True
                if request.HasField("disabled") and request.disabled != user.disabled:
                    user.disabled = request.disabled
                    changed.append("disabled")
                    revoke = revoke or request.disabled
                if admins == {user_id} and not _is_active_admin(user):
                    audit("user.update_denied", user_id=user_id, reason="last_admin", **who)
                    raise Abort(Code.FAILED_PRECONDITION, LAST_ADMIN)  # rolls it all back
                if changed:
                    user.updated_at = utcnow()
                    session.flush()  # surface constraint errors before touching Redis
                if revoke:
                    self._revoke(user_id)  # Redis down: roll back, change nothing
                if "disabled" in changed and user.disabled:
                    voided_keys = self.api_keys.end_all(session, user_id, delete_rows=True)
                elif "roles" in changed:
                    # Cached with the old roles: the next use re-caches them (apikeys.py).
                    recached_keys = [h for h, _ in self.api_keys.of_user(session, user_id)]
                    self.api_keys.forget(recached_keys)
        except IntegrityError as exc:
            raise Conflict(conflict_field(exc) or "email") from None
        if revoke:
            self._revoke(user_id)  # after commit: also voids tokens issued meanwhile
        self.api_keys.tombstone(voided_keys)
        self.api_keys.forget(recached_keys)
        if voided_keys:
            audit(
                "api_key.deleted",
                user_id=user_id,
                keys=len(voided_keys),
                reason="user_disabled",
                **who,
            )
        if changed:
            audit("user.updated", user_id=user_id, changed=changed, **who)
        if "password" in changed:
            event = "user.password_changed" if self_service else "user.password_reset"
            audit(event, user_id=user_id, **who)
        if "roles" in changed:
            audit(
                "user.roles_changed",
                user_id=user_id,
                old_roles=old_roles,
                new_roles=user.roles,
                **who,
            )
        if "disabled" in changed:
            audit("user.disabled" if user.disabled else "user.enabled", user_id=user_id, **who)
        return to_proto(user)

    @_rpc
    def DeleteUser(self, request: Any, context: grpc.ServicerContext) -> Any:
        user_id = self._require_id(request.id)
        who = _who(request)
        with self._db.transaction() as session:
            admins = _lock_active_admins(session)
            user = session.get(User, user_id, with_for_update=True)
            if user is None:
                raise Abort(Code.NOT_FOUND, "user not found")
            if admins == {user_id}:
                audit("user.delete_denied", user_id=user_id, reason="last_admin", **who)
                raise Abort(Code.FAILED_PRECONDITION, LAST_ADMIN)
            voided_keys = self.api_keys.end_all(session, user_id, delete_rows=True)
            session.delete(user)
            # Same transaction: the deletion and the news of it commit together.
            session.add(UserEvent(id=str(uuid.uuid4()), kind=USER_DELETED, user_id=user_id))
            session.flush()
            self._revoke(user_id)
        self._revoke(user_id)
        self.api_keys.tombstone(voided_keys)
        self._outbox.publish_quietly()
        audit("user.deleted", user_id=user_id, **who)
        return users_pb2.DeleteUserResponse()

    @_rpc
    def VerifyCredentials(self, request: Any, context: grpc.ServicerContext) -> Any:
        client_ip = _or_none(request.client_ip)
        try:
            username: str | None = normalize_username(request.username)
        except FieldError:
            username = None  # cannot exist; still pay for a hash below
        user = None
        if username is not None:
            with self._db.connect() as conn:
                row = conn.execute(_BY_USERNAME, {"username": username}).mappings().first()
            # A transient User from a Core row: the ORM session costs more than the query.
            user = User(**row) if row is not None else None
        # Exactly one argon2 verification on every path (a dummy one for unknown users), and
        # one answer for every failure, so neither timing nor reply reveals which it was.
        ok = self._passwords.verify(user.password_hash if user else None, request.password)
        if user is None or not ok or user.disabled:
            reason = "unknown_user" if user is None else "disabled" if ok else "bad_password"
            audit(
                "login.failure",
                user_id=user.id if user else None,
                reason=reason,
                client_ip=client_ip,
            )
            return users_pb2.VerifyCredentialsResponse(ok=False)
        if self._passwords.needs_rehash(user.password_hash):
            self._upgrade_hash(user, request.password)
        audit("login.success", user_id=user.id, client_ip=client_ip)
        return users_pb2.VerifyCredentialsResponse(ok=True, user=to_proto(user))

    # --- machine credentials (apikeys.py, clients.py) -----------------------------------

    @_rpc
    def CreateApiKey(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.api_keys.create(request)

    @_rpc
    def ListApiKeys(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.api_keys.list_keys(request)

    @_rpc
    def DeleteApiKey(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.api_keys.delete(request)

    @_rpc
    def ResolveApiKey(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.api_keys.resolve(request)

    @_rpc
    def CreateClient(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._clients.create(request)

    @_rpc
    def ListClients(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._clients.list_clients(request)

    @_rpc
    def DeleteClient(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._clients.delete(request)

    @_rpc
    def VerifyClientCredentials(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._clients.verify(request)

    def _upgrade_hash(self, user: User, password: str) -> None:
        """Re-hash with the current parameters. Conditional on the old hash, so a password
        change that raced this login is never overwritten; a failure does not fail the login."""
        new_hash = self._passwords.hash(password)
        try:
            with self._db.transaction() as session:
                session.execute(
                    update(User)
                    .where(User.id == user.id, User.password_hash == user.password_hash)
                    .values(password_hash=new_hash)
                )
        except SQLAlchemyError as exc:
            log.warning("password rehash not stored: %s", type(exc).__name__)
            return
        user.password_hash = new_hash
