"""Local access-token verification with auth's keys (JWKS over gRPC), cached.

The rules (ES256 only, a known `kid`, `typ: at+jwt`, iss, aud, exp, iat required) are
`bulwark_common.accesstokens`, shared with users. Keys are refreshed in the background every
`refresh_seconds` (so a key auth publishes ahead of a rotation is known before any token
carries it), and when an unknown kid appears, at most once per `min_refresh` seconds after a
successful fetch, so a flood of forged kids cannot turn into a flood of calls to auth.
Verified tokens are cached until they expire (signature checks are the expensive part;
revocation is checked per request elsewhere). An entry costs about 1 KB, half of it the
token itself (the key: a digest would save that but cost a hash on every request)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from bulwark_common import accesstokens
from bulwark_common.accesstokens import LEEWAY_SECONDS, Claims, InvalidToken, UnknownKid

__all__ = ["LEEWAY_SECONDS", "Claims", "InvalidToken", "Verifier"]

log = logging.getLogger("bulwark.api.tokens")

JwksFetcher = Callable[[], Awaitable[list[dict[str, str]]]]


class Verifier:
    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        issuer: str,
        audience: str,
        min_refresh_seconds: float = 10.0,
        cache_size: int = 10_000,
    ) -> None:
        self._fetch = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str, Any] = {}
        self.jwks: list[dict[str, str]] = []
        self._last_refresh = float("-inf")
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[str, Claims] = OrderedDict()
        self._cache_size = cache_size

    async def refresh(self, *, force: bool = False) -> None:
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._last_refresh < self._min_refresh:
                return
            # Only a successful fetch counts: a failed one (auth down) must not hold back the
            # next try once auth is back. Floods meanwhile are bounded per address (deps).
            jwks = await self._fetch()
            self._last_refresh = now
            keys = accesstokens.public_keys(jwks)
            if keys.keys() != self._keys.keys():
                # Tokens signed by a key that left the JWKS must stop passing.
                self._cache.clear()
            self._keys, self.jwks = keys, jwks

    def _verify(self, token: str) -> Claims:
        return accesstokens.verify(
            token, self._keys.get, issuer=self._issuer, audience=self._audience
        )

    async def keep_fresh(self, every_seconds: float) -> None:
        """Refetch the keys on a timer, for as long as the app runs (a task of its
        lifespan). A failed fetch is logged and tried again at the next tick."""
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await self.refresh(force=True)
            except Exception as exc:
                log.warning("JWKS refresh failed: %s", type(exc).__name__)

    def cached(self, token: str) -> Claims | None:
        """The claims of a token verified before and not yet expired, else None."""
        cached = self._cache.get(token)
        if cached is not None and cached.exp > time.time() - LEEWAY_SECONDS:
            return cached
        return None

    async def verify(self, token: str) -> Claims:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.exp > time.time() - LEEWAY_SECONDS:
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
        try:
            claims = self._verify(token)
        except UnknownKid:
            await self.refresh()
            claims = self._verify(token)
        self._cache[token] = claims
        self._prune(time.time() - LEEWAY_SECONDS)
        return claims

    def _prune(self, now: float) -> None:
        """Drop from the least recently used end: whatever exceeds the bound, and expired
        tokens, so a quiet hour does not keep the last busy hour's dead tokens in memory."""
        cache = self._cache
        while cache and (len(cache) > self._cache_size or next(iter(cache.values())).exp <= now):
            cache.popitem(last=False)
