"""API keys and client secrets: the formats and the Redis cache contract users (owner of the
keys) and api (verifier at the edge) share.

A key is `bwk_` + 256 random bits (base64url); a client secret is `bwc_` + 256 random bits.
Only their SHA-256 is stored. A fast hash is right here, unlike for passwords: a 256-bit
random secret cannot be guessed however fast the hash, while argon2 would cost ~50 ms of CPU
per request and, salted, could not be looked up by its value.

Redis (all under the deployment prefix), written by users only:
- `apikey:<hash>`: the live key's grant as JSON (KeyRecord), or `revoked` (a tombstone that
  outlives the key, so nothing can re-cache it); expires with the key;
- `apikey-used:<hash>`: Unix time of the last use, written by api in its one round trip.
users writes a record while holding a shared lock on the owner's row, and every change that
voids keys (delete, user disabled or deleted, roles changed) holds the exclusive lock and
rewrites Redis before and after its commit: a cache fill cannot resurrect a voided key."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

API_KEY_PREFIX = "bwk_"
CLIENT_SECRET_PREFIX = "bwc_"  # noqa: S105
TOMBSTONE = b"revoked"
# Expiry is required and capped: a forgotten key dies within a year at the latest.
MAX_API_KEY_DAYS = 365
MAX_API_KEYS_PER_USER = 20
# Longer input is no key of ours: refused before hashing.
MAX_SECRET_LENGTH = 128


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_client_secret() -> str:
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def record_key(prefix: str, key_hash: str) -> str:
    return f"{prefix}apikey:{key_hash}"


def used_key(prefix: str, key_hash: str) -> str:
    return f"{prefix}apikey-used:{key_hash}"


@dataclass(frozen=True)
class KeyRecord:
    id: str
    user_id: str
    scopes: tuple[str, ...]
    roles: tuple[str, ...]
    expires_at: int  # Unix seconds

    def dumps(self) -> str:
        return json.dumps(
            {
                "i": self.id,
                "u": self.user_id,
                "s": self.scopes,
                "r": self.roles,
                "e": self.expires_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: bytes | str) -> KeyRecord:
        data = json.loads(raw)
        return cls(
            id=str(data["i"]),
            user_id=str(data["u"]),
            scopes=tuple(data["s"]),
            roles=tuple(data["r"]),
            expires_at=int(data["e"]),
        )
