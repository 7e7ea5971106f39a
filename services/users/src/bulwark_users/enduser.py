"""Defence in depth for what api asks on behalf of an end user.

users does not take api's word that the person behind a call may do it: api forwards the
end user's access token (`authorization: Bearer <jwt>` metadata), and users verifies it
with auth's public keys (read from Vault, never from api) and applies its own rule per
method before the handler runs. A compromised api can then act only as the users whose
valid tokens it holds, not as an admin it invents.

auth's calls (VerifyCredentials, GetUser on refresh) carry no end user: the caller matrix
already limits auth to those two methods."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from bulwark_common import accesstokens
from bulwark_common.accesstokens import Claims, InvalidToken, UnknownKid
from bulwark_common.apikeys import API_KEY_PREFIX
from bulwark_common.logging import audit

log = logging.getLogger("bulwark.users.enduser")

JWKS_PATH = "auth/jwks"
ADMIN_SCOPE = "users:admin"
SERVICE = "/bulwark.users.v1.UsersService/"


class JwksStore(Protocol):
    def kv_read(self, path: str) -> dict[str, Any] | None: ...


class PublicKeys:
    """auth's published keys from Vault: re-read every `refresh_seconds`, and on an unknown
    kid at most once per `min_refresh_seconds` (a forged kid cannot flood Vault)."""

    def __init__(
        self, store: JwksStore, refresh_seconds: float = 30.0, min_refresh_seconds: float = 1.0
    ) -> None:
        self._store = store
        self._refresh = refresh_seconds
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str, Any] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def key_for(self, kid: str) -> Any | None:
        now = time.monotonic()
        key = self._keys.get(kid)
        stale = now - self._loaded_at > self._refresh
        if key is None or stale:
            with self._lock:
                if now - self._loaded_at >= self._min_refresh:
                    self._load()
            key = self._keys.get(kid)
        return key

    def _load(self) -> None:
        self._loaded_at = time.monotonic()
        try:
            data = self._store.kv_read(JWKS_PATH) or {}
        except Exception as exc:  # Vault down or nothing published: keep what we have
            log.warning("cannot read auth's public keys from Vault: %s", type(exc).__name__)
            return
        self._keys = accesstokens.public_keys(data.get("keys", []))


class EndUserTokens:
    """Verified end-user claims from call metadata, cached until the token expires."""

    def __init__(
        self,
        keys: PublicKeys,
        *,
        issuer: str,
        audience: str,
        cache_size: int = 10_000,
        api_keys: Callable[[str], Claims | None] | None = None,
    ) -> None:
        self._keys = keys
        # API keys (bwk_...) api forwards as they came: checked against our own table each
        # time, never cached here (a deleted key must stop at once).
        self._api_keys = api_keys
        self._issuer = issuer
        self._audience = audience
        self._cache: OrderedDict[str, Claims] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def claims(self, metadata: tuple[tuple[str, str | bytes], ...] | None) -> Claims | None:
        token = _bearer(metadata)
        if token is None:
            return None
        if token.startswith(API_KEY_PREFIX):
            return self._api_keys(token) if self._api_keys is not None else None
        with self._lock:
            cached = self._cache.get(token)
        if cached is not None and cached.exp > time.time() - accesstokens.LEEWAY_SECONDS:
            return cached
        try:
            claims = accesstokens.verify(
                token, self._keys.key_for, issuer=self._issuer, audience=self._audience
            )
        except UnknownKid:
            return None
        except InvalidToken as exc:
            log.info("end-user token refused: %s", exc)
            return None
        with self._lock:
            self._cache[token] = claims
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return claims


def _bearer(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :]
    return None


def _admin(claims: Claims | None, _request: Any) -> bool:
    return claims is not None and claims.is_admin and ADMIN_SCOPE in claims.scopes


def _self_or_admin(claims: Claims | None, request: Any) -> bool:
    return claims is not None and (claims.sub == request.id or _admin(claims, request))


def _update(claims: Claims | None, request: Any) -> bool:
    # Roles and the disabled flag are admin business even on one's own account.
    self_service = not request.HasField("roles") and not request.HasField("disabled")
    return _admin(claims, request) or (self_service and _self_or_admin(claims, request))


def _create(claims: Claims | None, request: Any) -> bool:
    # Self-registration gets the default roles; asking for roles is an admin act.
    return not request.roles or _admin(claims, request)


def _own_keys(claims: Claims | None, request: Any) -> bool:
    # A person's own keys; an OAuth2 client has none.
    return claims is not None and claims.client_id is None and claims.sub == request.user_id


def _new_key(claims: Claims | None, request: Any) -> bool:
    # Not with a key: a leaked key must not be able to mint keys that outlive its revocation.
    return _own_keys(claims, request) and claims is not None and claims.key_id is None


def _verifying(_claims: Claims | None, _request: Any) -> bool:
    # api resolving a key it was shown (there is no end user before that): the request
    # carries the key's hash, which only someone holding the key can know.
    return True


# What api must prove about the end user, per users method. A method api may call but
# that is missing here is refused (fail closed).
RULES: dict[str, Callable[[Claims | None, Any], bool]] = {
    "CreateUser": _create,
    "GetUser": _self_or_admin,
    "ListUsers": _admin,
    "UpdateUser": _update,
    "DeleteUser": _admin,
    "CreateApiKey": _new_key,
    "ListApiKeys": _own_keys,
    "DeleteApiKey": _own_keys,
    "ResolveApiKey": _verifying,
    "CreateClient": _admin,
    "ListClients": _admin,
    "DeleteClient": _admin,
}
# Callers that act on their own account of things, not for an end user.
SERVICE_CALLERS = frozenset({"auth"})


class EndUserInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Applies RULES to api's calls before the handler runs; PERMISSION_DENIED otherwise."""

    def __init__(
        self, tokens: EndUserTokens, caller_of: Callable[[grpc.ServicerContext], str | None]
    ) -> None:
        self._tokens = tokens
        self._caller_of = caller_of

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        method = details.method
        if handler is None or not method.startswith(SERVICE) or handler.unary_unary is None:
            return handler
        rule = RULES.get(method[len(SERVICE) :])
        behaviour = handler.unary_unary
        tokens, caller_of = self._tokens, self._caller_of

        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            caller = caller_of(context)
            if caller not in SERVICE_CALLERS:
                claims = tokens.claims(context.invocation_metadata())
                if rule is None or not rule(claims, request):
                    audit(
                        "rpc.denied",
                        reason="end_user",
                        method=method,
                        peer=caller,
                        actor_id=claims.sub if claims else None,
                    )
                    context.abort(
                        grpc.StatusCode.PERMISSION_DENIED, "end user not allowed this call"
                    )
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
