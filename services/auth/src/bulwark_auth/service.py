"""The AuthService servicer: password grant, refresh rotation with reuse detection,
revocation (RFC 7009) and the JWKS.

Errors follow auth.proto: the status message is the OAuth2 error code. Infrastructure
failures (users, PostgreSQL, Redis unreachable) are UNAVAILABLE, anything unexpected is
INTERNAL with a generic message: a caller never sees UNKNOWN or a stack trace."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, cast

import grpc
import jwt
import redis
from sqlalchemy import Connection, CursorResult, Table, exists, insert, select, update
from sqlalchemy.orm import Session, aliased

from bulwark.auth.v1 import auth_pb2, auth_pb2_grpc
from bulwark.users.v1 import users_pb2, users_pb2_grpc
from bulwark_auth.bruteforce import LoginThrottle
from bulwark_auth.keys import Keyring
from bulwark_auth.models import RefreshToken as TokenRow
from bulwark_auth.settings import AuthSettings
from bulwark_auth.tokens import (
    InvalidScope,
    TokenIssuer,
    allowed_scopes,
    format_scope,
    hash_refresh_token,
    new_refresh_token,
    parse_scope,
    resolve_scope,
)
from bulwark_common import revocation
from bulwark_common.db import Database
from bulwark_common.logging import audit
from bulwark_common.rpc import Abort, rpc_errors

log = logging.getLogger("bulwark.auth")

SERVICE_NAME: str = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
TOKEN_TYPE = "Bearer"  # noqa: S105 - a token type name, not a secret
# Nothing we issue is this long; longer input is refused before any work is done on it.
MAX_TOKEN_LENGTH = 8192
MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 4096


def invalid_grant() -> Abort:
    return Abort(grpc.StatusCode.UNAUTHENTICATED, "invalid_grant")


def invalid_request() -> Abort:
    return Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")


def invalid_scope() -> Abort:
    return Abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid_scope")


class UsersUnavailable(Exception):
    """users did not answer usefully (down, deadline, internal error)."""


class UsersClient:
    """The two users calls auth needs, over a deadline-bound channel."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = users_pb2_grpc.UsersServiceStub(channel)

    def verify_credentials(self, username: str, password: str, client_ip: str) -> Any | None:
        """The user when the credentials are valid for an enabled account, else None."""
        try:
            resp = self._stub.VerifyCredentials(
                users_pb2.VerifyCredentialsRequest(
                    username=username, password=password, client_ip=client_ip
                )
            )
        except grpc.RpcError as exc:
            raise UsersUnavailable(_code_name(exc)) from None
        if not resp.ok or not resp.HasField("user") or resp.user.disabled:
            return None
        return resp.user

    def get_user(self, user_id: str) -> Any | None:
        """The user, or None when it no longer exists."""
        try:
            return self._stub.GetUser(users_pb2.GetUserRequest(id=user_id))
        except grpc.RpcError as exc:
            if _code(exc) == grpc.StatusCode.NOT_FOUND:
                return None
            raise UsersUnavailable(_code_name(exc)) from None


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(exc, "code", None)
    return cast(grpc.StatusCode, code()) if callable(code) else None


def _code_name(exc: grpc.RpcError) -> str:
    code = _code(exc)
    return code.name if code is not None else "unknown"


def _users_unavailable(exc: Exception) -> tuple[grpc.StatusCode, str]:
    log.warning("users unavailable", extra={"code": str(exc)})
    return grpc.StatusCode.UNAVAILABLE, "temporarily_unavailable"


# Statuses carry the OAuth2 error code as their message (see auth.proto).
_rpc = rpc_errors(
    log,
    mapping={UsersUnavailable: _users_unavailable},
    redis_details="temporarily_unavailable",
    database_details="temporarily_unavailable",
    internal_details="server_error",
)


# A Core INSERT on the table with bound parameters: compiled once and cached, where the ORM
# unit of work or .values() would rebuild and coerce the statement on every token.
_INSERT_TOKEN = insert(cast(Table, TokenRow.__table__))


@dataclass(frozen=True)
class _Issued:
    response: Any  # auth_pb2.TokenResponse
    family_id: str


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        settings: AuthSettings,
        db: Database,
        keyring: Keyring,
        redis_client: redis.Redis,
        users_channel: grpc.Channel,
    ) -> None:
        self.settings = settings
        self.db = db
        self.keyring = keyring
        self.redis = redis_client
        self.prefix = settings.redis_prefix
        self.users = UsersClient(users_channel)
        self.tokens = TokenIssuer(
            keyring, settings.issuer, settings.audience, settings.access_token_ttl_seconds
        )
        self.throttle = LoginThrottle(
            redis_client,
            settings.redis_prefix,
            free_failures=settings.backoff_free_failures,
            base_seconds=settings.backoff_base_seconds,
            max_seconds=settings.backoff_max_seconds,
            window_seconds=settings.failure_window_seconds,
        )

    # --- password grant -------------------------------------------------------------

    @_rpc
    def IssueToken(self, request: Any, context: grpc.ServicerContext) -> Any:
        username: str = request.username
        password: str = request.password
        client_ip: str = request.client_ip
        if not username or not password:
            raise invalid_request()
        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            raise invalid_request()
        # In backoff: refuse before the password is even checked, with the same answer as a
        # wrong password so the lock itself tells an attacker nothing.
        standing = self.throttle.standing(username)
        if standing.in_backoff:
            audit("login.failure", username=username, client_ip=client_ip, reason="backoff")
            raise invalid_grant()
        user = self.users.verify_credentials(username, password, client_ip)
        if user is None:
            failure = self.throttle.record_failure(username)
            audit(
                "login.failure",
                username=username,
                client_ip=client_ip,
                reason="bad_credentials",
                failures=failure.failures,
            )
            if failure.backoff_seconds > 0:
                audit(
                    "login.locked",
                    username=username,
                    client_ip=client_ip,
                    failures=failure.failures,
                    backoff_seconds=failure.backoff_seconds,
                )
            raise invalid_grant()
        if standing.has_failures:
            self.throttle.record_success(username)
        try:
            scopes = resolve_scope(request.scope, allowed_scopes(user.roles))
        except InvalidScope:
            raise invalid_scope() from None
        now = time.time()
        # One INSERT: atomic by itself, so no transaction (and no BEGIN/COMMIT round trips).
        with self.db.connect() as conn:
            issued = self._issue_pair(
                conn,
                user_id=user.id,
                roles=list(user.roles),
                scopes=scopes,
                family_id=str(uuid.uuid4()),
                parent_id=None,
                expires_at=None,
                now=now,
            )
        audit(
            "token.issued",
            user_id=user.id,
            client_ip=client_ip,
            family_id=issued.family_id,
            scope=issued.response.scope,
        )
        return issued.response

    # --- refresh grant --------------------------------------------------------------

    @_rpc
    def RefreshToken(self, request: Any, context: grpc.ServicerContext) -> Any:
        token: str = request.refresh_token
        client_ip: str = request.client_ip
        if not token:
            raise invalid_request()
        if len(token) > MAX_TOKEN_LENGTH:
            raise invalid_grant()
        token_hash = hash_refresh_token(token)
        now = time.time()
        now_dt = datetime.fromtimestamp(now, UTC)

        # Read first, without locks: reuse, expiry, revocation and the user check are all
        # decided before anything is written, and no database connection is held across the
        # call to users. The UPDATE below re-checks everything atomically.
        with self.db.transaction() as session:
            row = self._find(session, token_hash)
            if row is None:
                raise invalid_grant()
            usable = self._usable(session, row, now_dt)
        if not usable:
            self._reject_unusable(row, now_dt, client_ip)

        marker = self.redis.get(revocation.user_key(self.prefix, row.user_id))
        if revocation.is_void(None, marker, _utc(row.issued_at).timestamp()):
            # Password change, disable or role change after this token was issued. The
            # marker expires after a day, so make the revocation durable in the database.
            self._revoke_user_before(row.user_id, float(cast(bytes, marker)), now_dt)
            audit(
                "token.revoked",
                user_id=row.user_id,
                client_ip=client_ip,
                family_id=row.family_id,
                reason="user_tokens_revoked",
            )
            raise invalid_grant()

        user = self.users.get_user(row.user_id)
        if user is None or user.disabled:
            self._revoke_family(row.family_id, now_dt)
            audit(
                "token.revoked",
                user_id=row.user_id,
                client_ip=client_ip,
                family_id=row.family_id,
                reason="user_not_found" if user is None else "user_disabled",
            )
            raise invalid_grant()

        granted = parse_scope(row.scope)
        requested = parse_scope(request.scope) or granted
        if not requested <= granted:
            raise invalid_scope()  # narrowing only; the token stays usable
        # Roles may have shrunk since login: never carry a scope the user lost.
        scopes = requested & allowed_scopes(user.roles)
        if not scopes:
            raise invalid_grant()

        with self.db.transaction() as session:
            # The single atomic step: of concurrent refreshes of one token exactly one sees
            # rowcount 1; the others fall through to reuse handling below.
            other = aliased(TokenRow)
            family_revoked = exists().where(
                other.family_id == row.family_id, other.revoked_at.is_not(None)
            )
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(TokenRow)
                    .where(
                        TokenRow.token_hash == token_hash,
                        TokenRow.used_at.is_(None),
                        TokenRow.revoked_at.is_(None),
                        TokenRow.expires_at > now_dt,
                        ~family_revoked,
                    )
                    .values(used_at=now_dt)
                    .execution_options(synchronize_session=False)
                ),
            )
            won = result.rowcount == 1
            if won:
                issued = self._issue_pair(
                    session,
                    user_id=row.user_id,
                    roles=list(user.roles),
                    scopes=scopes,
                    family_id=row.family_id,
                    parent_id=row.id,
                    expires_at=_utc(row.expires_at),
                    now=now,
                )
        if not won:
            self._reject_unusable(row, now_dt, client_ip)
        audit(
            "token.refreshed",
            user_id=row.user_id,
            client_ip=client_ip,
            family_id=row.family_id,
            scope=issued.response.scope,
        )
        return issued.response

    def _find(self, session: Session, token_hash: str) -> TokenRow | None:
        return session.execute(
            select(TokenRow).where(TokenRow.token_hash == token_hash)
        ).scalar_one_or_none()

    def _usable(self, session: Session, row: TokenRow, now: datetime) -> bool:
        if row.used_at is not None or row.revoked_at is not None:
            return False
        if _utc(row.expires_at) <= now:
            return False
        # Revocation is sticky per family: a row added after a family was revoked (a
        # rotation racing the revocation) is still refused, because older rows stay revoked.
        revoked = session.execute(
            select(TokenRow.id)
            .where(TokenRow.family_id == row.family_id, TokenRow.revoked_at.is_not(None))
            .limit(1)
        ).first()
        return revoked is None

    def _reject_unusable(self, row: TokenRow, now: datetime, client_ip: str) -> NoReturn:
        """Always raises invalid_grant. A used or revoked token presented again means it
        leaked (or a client raced itself): revoke the whole family."""
        with self.db.transaction() as session:
            current = self._find(session, row.token_hash)
            if current is None:
                raise invalid_grant()
            reused = current.used_at is not None or current.revoked_at is not None
            if not reused and _utc(current.expires_at) <= now:
                raise invalid_grant()
            self._revoke_family_in(session, row.family_id, now)
        audit(
            "token.reuse_detected",
            user_id=row.user_id,
            client_ip=client_ip,
            family_id=row.family_id,
        )
        raise invalid_grant()

    def _issue_pair(
        self,
        db: Session | Connection,
        *,
        user_id: str,
        roles: list[str],
        scopes: frozenset[str],
        family_id: str,
        parent_id: str | None,
        expires_at: datetime | None,
        now: float,
    ) -> _Issued:
        access = self.tokens.issue(user_id, scopes, roles, now=now)
        refresh = new_refresh_token()
        # Same instant as the access token's iat, so one revoked-before marker covers both.
        issued_at = datetime.fromtimestamp(access.iat, UTC)
        if expires_at is None:
            expires_at = issued_at + timedelta(seconds=self.settings.refresh_token_ttl_seconds)
        scope = format_scope(scopes)
        db.execute(
            _INSERT_TOKEN,
            {
                "id": str(uuid.uuid4()),
                "token_hash": hash_refresh_token(refresh),
                "family_id": family_id,
                "parent_id": parent_id,
                "user_id": user_id,
                "scope": scope,
                "issued_at": issued_at,
                "expires_at": expires_at,
            },
        )
        response = auth_pb2.TokenResponse(
            access_token=access.token,
            token_type=TOKEN_TYPE,
            expires_in=self.settings.access_token_ttl_seconds,
            refresh_token=refresh,
            scope=scope,
        )
        return _Issued(response=response, family_id=family_id)

    def _revoke_family(self, family_id: str, now: datetime) -> None:
        with self.db.transaction() as session:
            self._revoke_family_in(session, family_id, now)

    @staticmethod
    def _revoke_family_in(session: Session, family_id: str, now: datetime) -> None:
        session.execute(
            update(TokenRow)
            .where(TokenRow.family_id == family_id, TokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )

    def _revoke_user_before(self, user_id: str, before: float, now: datetime) -> None:
        cutoff = datetime.fromtimestamp(before, UTC)
        with self.db.transaction() as session:
            session.execute(
                update(TokenRow)
                .where(
                    TokenRow.user_id == user_id,
                    TokenRow.issued_at <= cutoff,
                    TokenRow.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )

    # --- revocation -----------------------------------------------------------------

    @_rpc
    def RevokeToken(self, request: Any, context: grpc.ServicerContext) -> Any:
        token: str = request.token
        client_ip: str = request.client_ip
        if not token:
            raise invalid_request()
        if len(token) <= MAX_TOKEN_LENGTH:
            # The hint only orders the attempts (RFC 7009 2.1).
            attempts = [self._revoke_refresh, self._revoke_access]
            if request.token_type_hint == "access_token":  # noqa: S105
                attempts.reverse()
            for attempt in attempts:
                if attempt(token, client_ip):
                    break
        # Unknown, expired or foreign tokens: OK, so the answer reveals nothing.
        return auth_pb2.RevokeTokenResponse()

    def _revoke_refresh(self, token: str, client_ip: str) -> bool:
        now = datetime.now(UTC)
        with self.db.transaction() as session:
            row = self._find(session, hash_refresh_token(token))
            if row is None:
                return False
            self._revoke_family_in(session, row.family_id, now)
        audit(
            "token.revoked",
            user_id=row.user_id,
            client_ip=client_ip,
            family_id=row.family_id,
            kind="refresh_token",
        )
        return True

    def _revoke_access(self, token: str, client_ip: str) -> bool:
        try:
            claims = self.tokens.verify(token)
        except jwt.InvalidTokenError:
            return False
        # A Redis failure propagates (UNAVAILABLE): never say "revoked" when it is not.
        revocation.revoke_jti(self.redis, self.prefix, claims["jti"], int(claims["exp"]))
        audit(
            "token.revoked",
            user_id=claims["sub"],
            client_ip=client_ip,
            jti=claims["jti"],
            kind="access_token",
        )
        return True

    # --- keys -----------------------------------------------------------------------

    @_rpc
    def GetJwks(self, request: Any, context: grpc.ServicerContext) -> Any:
        return auth_pb2.GetJwksResponse(keys=[auth_pb2.Jwk(**jwk) for jwk in self.keyring.jwks()])


def add_to_server(servicer: AuthServicer, server: grpc.Server) -> list[str]:
    auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME]
