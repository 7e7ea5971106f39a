"""ES256 signing keys: a Keyring of the current key (signs) and the previous one (still
verifies tokens issued before the last rotation).

A Keyring is built from PEM bytes, so where the PEMs come from is the caller's business:
today files in a key directory (`load_keyring`), later possibly a secret store. Keys are
parsed once, at startup, never per call."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger("bulwark.auth.keys")

ALGORITHM = "ES256"
CURRENT = "current.pem"
PREVIOUS = "previous.pem"


class SigningKeyError(RuntimeError):
    """A signing key is missing or unusable; the message says which and what to do."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk_members(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The required members of an EC public JWK (RFC 7518 6.2.1)."""
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 JWK thumbprint of an EC key: SHA-256 over the required members, sorted,
    without whitespace, base64url without padding."""
    required = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey
    public_key: ec.EllipticCurvePublicKey = field(repr=False)
    kid: str
    jwk: dict[str, str] = field(repr=False)

    @classmethod
    def from_private_key(cls, private_key: ec.EllipticCurvePrivateKey) -> SigningKey:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise SigningKeyError(f"signing key must be P-256, not {private_key.curve.name}")
        public_key = private_key.public_key()
        members = public_jwk_members(public_key)
        kid = thumbprint(members)
        jwk = {**members, "kid": kid, "alg": ALGORITHM, "use": "sig"}
        return cls(private_key=private_key, public_key=public_key, kid=kid, jwk=jwk)

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise SigningKeyError(f"not an unencrypted PKCS8 PEM private key ({exc})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SigningKeyError("signing key must be an EC (P-256) private key")
        return cls.from_private_key(key)


def generate_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class _KeySet:
    current: SigningKey
    previous: SigningKey | None
    next: SigningKey | None
    by_kid: dict[str, SigningKey]


class Keyring:
    """The current key signs. Current, previous (tokens issued before the last rotation)
    and next (published ahead of a rotation so verifiers know it before any token carries
    it) verify and are published as the JWKS.

    `replace` swaps in a newer set atomically (one attribute store): signing threads see
    either the old set or the new one, never a mix."""

    def __init__(
        self,
        current: SigningKey,
        previous: SigningKey | None = None,
        next_key: SigningKey | None = None,
    ) -> None:
        self._set = self._build(current, previous, next_key)

    @staticmethod
    def _build(
        current: SigningKey, previous: SigningKey | None, next_key: SigningKey | None
    ) -> _KeySet:
        # A crash mid-rotation can leave duplicates: publish each key once.
        if previous is not None and previous.kid == current.kid:
            previous = None
        if next_key is not None and next_key.kid in (current.kid, getattr(previous, "kid", "")):
            next_key = None
        keys = [k for k in (current, previous, next_key) if k is not None]
        return _KeySet(current, previous, next_key, {k.kid: k for k in keys})

    @classmethod
    def from_pems(
        cls, current: bytes, previous: bytes | None = None, next_pem: bytes | None = None
    ) -> Keyring:
        return cls(
            SigningKey.from_pem(current),
            SigningKey.from_pem(previous) if previous is not None else None,
            SigningKey.from_pem(next_pem) if next_pem is not None else None,
        )

    def replace(self, other: Keyring) -> None:
        self._set = other._set

    @property
    def current(self) -> SigningKey:
        return self._set.current

    @property
    def previous(self) -> SigningKey | None:
        return self._set.previous

    @property
    def next(self) -> SigningKey | None:
        return self._set.next

    @property
    def keys(self) -> list[SigningKey]:
        return list(self._set.by_kid.values())

    def verification_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        key = self._set.by_kid.get(kid)
        return key.public_key if key is not None else None

    def jwks(self) -> list[dict[str, str]]:
        return [dict(k.jwk) for k in self.keys]

    def self_test(self) -> None:
        """Health check: the current key can still sign, and its public half verifies."""
        key = self.current
        signature = key.private_key.sign(b"bulwark-health", ec.ECDSA(hashes.SHA256()))
        key.public_key.verify(signature, b"bulwark-health", ec.ECDSA(hashes.SHA256()))


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a private file whole or not at all: 0600 temp file, fsync, rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_pem(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("signing key file is readable by others", extra={"path": str(path)})
    return path.read_bytes()


def _ensure_dir(key_dir: Path) -> None:
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)


def load_keyring(key_dir: Path, environment: str) -> Keyring:
    """Read current.pem (and previous.pem when present). In dev a missing current key is
    generated; anywhere else it is an error, because a silently new key would invalidate
    every token the fleet issued and differ between replicas."""
    current_path = key_dir / CURRENT
    previous_path = key_dir / PREVIOUS
    if not current_path.exists():
        if environment != "dev":
            raise SigningKeyError(
                f"no signing key at {current_path}: provision one (bulwark-auth rotate-keys "
                "creates it) or set AUTH_SIGNING_KEY_DIR"
            )
        _ensure_dir(key_dir)
        _write_atomic(current_path, generate_pem())
        log.info("generated a dev signing key", extra={"path": str(current_path)})
    try:
        current = SigningKey.from_pem(_read_pem(current_path))
        previous = SigningKey.from_pem(_read_pem(previous_path)) if previous_path.exists() else None
    except SigningKeyError as exc:
        raise SigningKeyError(f"unusable signing key in {key_dir}: {exc}") from None
    return Keyring(current, previous)


def rotate_keys(key_dir: Path) -> Keyring:
    """current -> previous, fresh current. Each step is an atomic rename, and there is a
    valid current.pem at every moment. Running servers pick the new key up on restart;
    the previous key keeps verifying tokens issued before the rotation."""
    _ensure_dir(key_dir)
    current_path = key_dir / CURRENT
    if current_path.exists():
        old = current_path.read_bytes()
        SigningKey.from_pem(old)  # never demote garbage into previous.pem
        _write_atomic(key_dir / PREVIOUS, old)
    _write_atomic(current_path, generate_pem())
    return load_keyring(key_dir, "production")
