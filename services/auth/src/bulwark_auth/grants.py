"""The two OAuth2 grants auth serves: password, and refresh rotation with reuse detection."""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, cast

import redis
from sqlalchemy import Connection, CursorResult, exists, update
from sqlalchemy.orm import Session, aliased

from bulwark.auth.v1 import auth_pb2
from bulwark_auth import families
from bulwark_auth.bruteforce import LoginThrottle
from bulwark_auth.errors import invalid_grant, invalid_request, invalid_scope
from bulwark_auth.models import RefreshToken as TokenRow
from bulwark_auth.settings import AuthSettings
from bulwark_auth.timing import TypicalLatency
from bulwark_auth.tokens import (
    InvalidScope,
    TokenIssuer,
    format_scope,
    hash_refresh_token,
    new_refresh_token,
    parse_scope,
    resolve_scope,
)
from bulwark_auth.users_client import UsersClient, UsersUnavailable
from bulwark_common import revocation
from bulwark_common.db import Database
from bulwark_common.logging import audit
from bulwark_common.metrics import LOGIN_BACKOFFS, LOGINS, REDIS_ROUNDTRIP, REFRESH_REUSE
from bulwark_common.netaddr import source_bucket
from bulwark_common.scopes import allowed_scopes

TOKEN_TYPE = "Bearer"  # noqa: S105 - a token type name, not a secret
# Nothing we issue is this long; longer input is refused before any work is done on it.
MAX_TOKEN_LENGTH = 8192
MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 4096
_LOGIN_OK, _LOGIN_FAILED, _LOGIN_BACKOFF = (LOGINS.labels(r) for r in ("ok", "failed", "backoff"))
_THROTTLE_RTT = REDIS_ROUNDTRIP.labels("login_throttle")
# api tolerates this much clock skew on exp: family markers outlive tokens by as much.
ACCESS_LEEWAY_SECONDS = 60


@dataclass(frozen=True)
class _Issued:
    response: Any  # auth_pb2.TokenResponse
    family_id: str


class Grants:
    def __init__(
        self,
        settings: AuthSettings,
        db: Database,
        redis_client: redis.Redis,
        users: UsersClient,
        tokens: TokenIssuer,
        throttle: LoginThrottle,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis_client
        self.prefix = settings.redis_prefix
        self.users = users
        self.tokens = tokens
        self.throttle = throttle
        self.check_latency = TypicalLatency()

    # --- password grant -------------------------------------------------------------

    def password(self, request: Any) -> Any:
        username: str = request.username
        password: str = request.password
        client_ip: str = request.client_ip
        if not username or not password:
            raise invalid_request()
        if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
            raise invalid_request()
        # The attempt is counted before the password is checked (atomically, so concurrent
        # guesses count as sequential ones). In backoff: refused unchecked, with the same
        # answer as a wrong password so the lock itself tells an attacker nothing.
        source = source_bucket(client_ip, self.settings.ipv6_bucket_prefix)
        reserving = time.perf_counter()
        reservation = self.throttle.reserve(username, source)
        _THROTTLE_RTT.observe(time.perf_counter() - reserving)
        if not reservation.allowed:
            _LOGIN_BACKOFF.inc()
            audit("login.failure", username=username, client_ip=client_ip, reason="backoff")
            self.check_latency.imitate()  # as slow as a wrong password: no timing oracle
            raise invalid_grant()
        started = time.perf_counter()
        try:
            user = self.users.verify_credentials(username, password, client_ip)
        except UsersUnavailable:
            # Not checked, so not a failure: an outage must not put the owner in backoff.
            with contextlib.suppress(redis.RedisError):
                self.throttle.release(username, source, reservation)
            raise
        self.check_latency.record(time.perf_counter() - started)
        if user is None:
            _LOGIN_FAILED.inc()
            audit(
                "login.failure",
                username=username,
                client_ip=client_ip,
                reason="bad_credentials",
                failures=reservation.failures,
            )
            if reservation.backoff_seconds > 0:
                LOGIN_BACKOFFS.inc()
                audit(
                    "login.locked",
                    username=username,
                    client_ip=client_ip,
                    failures=reservation.failures,
                    backoff_seconds=reservation.backoff_seconds,
                )
            raise invalid_grant()
        self.throttle.succeeded(username, source)
        _LOGIN_OK.inc()
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

    def refresh(self, request: Any) -> Any:
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
            row = families.find(session, token_hash)
            if row is None:
                raise invalid_grant()
            usable = families.usable(session, row, now_dt)
        if not usable:
            self._reject_unusable(row, now_dt, client_ip)

        marker = self.redis.get(revocation.user_key(self.prefix, row.user_id))
        if revocation.is_void(None, marker, families.utc(row.issued_at).timestamp()):
            # Password change, disable or role change after this token was issued. The
            # marker expires after a day, so make the revocation durable in the database.
            families.revoke_user_before(self.db, row.user_id, float(cast(bytes, marker)), now_dt)
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
            families.revoke_family(self.db, row.family_id, now_dt)
            self._void_access_tokens(row.family_id)
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
                    expires_at=families.utc(row.expires_at),
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

    def _reject_unusable(self, row: TokenRow, now: datetime, client_ip: str) -> NoReturn:
        """Always raises invalid_grant. A used or revoked token presented again means it
        leaked (or a client raced itself): revoke the whole family."""
        with self.db.transaction() as session:
            current = families.find(session, row.token_hash)
            if current is None:
                raise invalid_grant()
            reused = current.used_at is not None or current.revoked_at is not None
            if not reused and families.utc(current.expires_at) <= now:
                raise invalid_grant()
            families.revoke_family_in(session, row.family_id, now)
        self._void_access_tokens(row.family_id)
        REFRESH_REUSE.inc()
        audit(
            "token.reuse_detected",
            user_id=row.user_id,
            client_ip=client_ip,
            family_id=row.family_id,
        )
        raise invalid_grant()

    def _void_access_tokens(self, family_id: str) -> None:
        """api refuses the family's access tokens from the next request on."""
        ttl = self.settings.access_token_ttl_seconds + ACCESS_LEEWAY_SECONDS
        revocation.revoke_family(self.redis, self.prefix, family_id, ttl)

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
        access = self.tokens.issue(user_id, scopes, roles, now=now, family_id=family_id)
        refresh = new_refresh_token()
        # Same instant as the access token's iat, so one revoked-before marker covers both.
        issued_at = datetime.fromtimestamp(access.iat, UTC)
        if expires_at is None:
            expires_at = issued_at + timedelta(seconds=self.settings.refresh_token_ttl_seconds)
        scope = format_scope(scopes)
        families.insert_row(
            db,
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
