"""Signing keys: kid = RFC 7638 thumbprint, JWKS shape, loading, rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bulwark_auth import cli
from bulwark_auth.keys import (
    CURRENT,
    PREVIOUS,
    Keyring,
    SigningKey,
    SigningKeyError,
    generate_pem,
    load_keyring,
    rotate_keys,
    thumbprint,
)
from bulwark_auth.tokens import TokenIssuer


def _verify_with_jwks(token: str, jwks: list[dict[str, str]]) -> dict[str, object]:
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks if k["kid"] == kid)
    claims: dict[str, object] = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience="bulwark-api"
    )
    return claims


def test_thumbprint_is_rfc7638_canonical_sha256() -> None:
    key = SigningKey.from_pem(generate_pem())
    jwk = key.jwk
    # Required members only, lexicographic order, no whitespace (RFC 7638 section 3).
    canonical = f'{{"crv":"P-256","kty":"EC","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
    digest = hashlib.sha256(canonical.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert key.kid == expected == thumbprint(jwk)
    assert len(key.kid) == 43 and "=" not in key.kid


def test_thumbprint_ignores_optional_members() -> None:
    key = SigningKey.from_pem(generate_pem())
    assert thumbprint({**key.jwk, "kid": "other", "use": "enc"}) == key.kid


def test_jwk_is_the_public_key() -> None:
    key = SigningKey.from_pem(generate_pem())
    assert set(key.jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
    assert (key.jwk["kty"], key.jwk["crv"], key.jwk["alg"], key.jwk["use"]) == (
        "EC",
        "P-256",
        "ES256",
        "sig",
    )
    assert "d" not in key.jwk
    public = jwt.PyJWK(key.jwk).key
    assert public.public_numbers() == key.public_key.public_numbers()
    # x and y are 32 bytes each, unpadded base64url.
    assert len(key.jwk["x"]) == len(key.jwk["y"]) == 43


def test_non_p256_and_garbage_keys_are_refused() -> None:
    from cryptography.hazmat.primitives import serialization

    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SigningKeyError, match="P-256"):
        SigningKey.from_pem(p384)
    with pytest.raises(SigningKeyError):
        SigningKey.from_pem(b"not a key")


def test_dev_generates_a_missing_key_with_private_permissions(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    ring = load_keyring(key_dir, "dev")
    path = key_dir / CURRENT
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert ring.previous is None
    # Loading again reads the same key instead of generating another.
    assert load_keyring(key_dir, "dev").current.kid == ring.current.kid


def test_production_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="no signing key"):
        load_keyring(tmp_path / "keys", "production")
    assert not (tmp_path / "keys").exists()


def test_rotation_keeps_previous_key_verifying(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    before = load_keyring(key_dir, "dev")
    old_token = TokenIssuer(before, "iss", "bulwark-api", 900).issue("u1", {"items:read"}, ["user"])

    after = rotate_keys(key_dir)
    assert after.previous is not None
    assert after.previous.kid == before.current.kid
    assert after.current.kid != before.current.kid
    for name in (CURRENT, PREVIOUS):
        assert stat.S_IMODE((key_dir / name).stat().st_mode) == 0o600
    assert not list(key_dir.glob(".*tmp"))

    jwks = after.jwks()
    assert [k["kid"] for k in jwks] == [after.current.kid, before.current.kid]
    assert _verify_with_jwks(old_token.token, jwks)["sub"] == "u1"

    new_token = TokenIssuer(after, "iss", "bulwark-api", 900).issue("u2", {"items:read"}, ["user"])
    assert jwt.get_unverified_header(new_token.token)["kid"] == after.current.kid
    assert _verify_with_jwks(new_token.token, jwks)["sub"] == "u2"

    # A second rotation drops the oldest key: tokens signed with it no longer verify.
    again = rotate_keys(key_dir)
    assert before.current.kid not in {k["kid"] for k in again.jwks()}


def test_rotate_keys_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_dir = tmp_path / "keys"
    monkeypatch.setenv("AUTH_SIGNING_KEY_DIR", str(key_dir))
    monkeypatch.setenv("BULWARK_ENV", "dev")  # key files: dev without Vault only
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    cli.main(["rotate-keys"])  # provisions the first key
    first = load_keyring(key_dir, "production")
    cli.main(["rotate-keys"])
    second = load_keyring(key_dir, "production")
    assert second.previous is not None and second.previous.kid == first.current.kid


def test_keyring_from_pem_bytes_dedupes_identical_previous() -> None:
    pem = generate_pem()
    ring = Keyring.from_pems(pem, pem)  # what a crash mid-rotation could leave behind
    assert ring.previous is None and len(ring.jwks()) == 1
    ring.self_test()


def test_unknown_kid_has_no_verification_key(keyring: Keyring) -> None:
    assert keyring.verification_key(keyring.current.kid) is not None
    assert keyring.verification_key("nope") is None
    assert json.dumps(keyring.jwks())  # serialisable as-is
