"""The end user's access token travels with api's calls to users, so users can check for
itself that the person behind an admin call is an admin (see users' `enduser` module).

`current_claims` stores the verified bearer token in a context variable for the request's
task; the interceptor on the users channel adds it as `authorization` metadata."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import grpc

ACCESS_TOKEN: ContextVar[str | None] = ContextVar("bulwark_access_token", default=None)


class ForwardAccessToken(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        token = ACCESS_TOKEN.get()
        if token is not None:
            metadata = [*(details.metadata or ()), ("authorization", f"Bearer {token}")]
            details = details._replace(metadata=metadata)
        return await continuation(details, request)
