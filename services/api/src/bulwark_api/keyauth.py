"""`Authorization: Bearer bwk_...`: a user's API key in place of an access token. deps'
`current_claims` sends only bearer values with that prefix here, so JWTs pay nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from fastapi import Response

from bulwark.users.v1 import users_pb2
from bulwark_api.backends import Backends
from bulwark_api.enduser import ACCESS_TOKEN
from bulwark_api.keyguard import claims_of
from bulwark_api.problems import Problem, from_rpc
from bulwark_common import apikeys
from bulwark_common.accesstokens import Claims
from bulwark_common.metrics import RATE_LIMITED


def _refused() -> Problem:
    return Problem(
        401,
        "the API key is invalid, expired or revoked",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def api_key_claims(
    backends: Backends,
    response: Response,
    key: str,
    limit_address: Callable[[], Awaitable[None]],
) -> Claims:
    if len(key) > apikeys.MAX_SECRET_LENGTH:
        await limit_address()
        raise _refused()
    key_hash = apikeys.secret_hash(key)
    check = await backends.keys.check(key_hash, backends.settings.api_key_rate)
    if check.revoked:
        raise _refused()
    record = check.record
    if record is None:
        # Not cached: counted against the address first (random keys cost users a query).
        await limit_address()
        try:
            grant = await backends.users.ResolveApiKey(
                users_pb2.ResolveApiKeyRequest(key_hash=key_hash)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise _refused() from None
            raise from_rpc(exc) from None
        record = apikeys.KeyRecord(
            id=grant.id,
            user_id=grant.user_id,
            scopes=tuple(grant.scopes),
            roles=tuple(grant.roles),
            expires_at=grant.expires_at,
        )
        await backends.keys.record_use(key_hash, record.expires_at)
    claims = claims_of(record)
    if claims is None:
        raise _refused()
    response.headers.update(check.rate.headers())
    if not check.rate.allowed:
        RATE_LIMITED.labels("api_key").inc()
        raise Problem(429, "rate limit exceeded, retry later", headers=check.rate.headers())
    ACCESS_TOKEN.set(key)  # users checks the key itself (its enduser module)
    return claims
