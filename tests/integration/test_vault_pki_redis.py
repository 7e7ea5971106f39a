"""The service certificate from Vault's PKI (identity, renewal before expiry) and the
per-service Redis ACL user (only the deployment's keys)."""

from __future__ import annotations

import ipaddress
import threading
import time

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bulwark_common.tls import TlsMaterial, spiffe_id
from bulwark_common.vault import RedisCredentials
from bulwark_devstack.vault_testing import VaultStack


def test_certificate_carries_the_spiffe_identity_and_renews_before_expiry(
    vault_stack: VaultStack,
) -> None:
    vault = vault_stack.connect("auth")
    ns = vault_stack.provisioned.namespace
    certs = vault.certificates(ttl_seconds=6)
    first = certs.material()
    leaf = x509.load_pem_x509_certificate(first.cert_pem)

    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe_id(ns, "auth")]
    assert {"auth", "localhost"} <= set(sans.get_values_for_type(x509.DNSName))
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    key = load_pem_private_key(first.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    ca = x509.load_pem_x509_certificates(first.ca_pem)
    leaf.verify_directly_issued_by(ca[0])
    assert first.not_after - time.time() <= 6.5

    renewed: list[tuple[float, TlsMaterial]] = []
    called = threading.Event()

    def on_renewal(material: TlsMaterial) -> None:
        renewed.append((time.time(), material))
        called.set()

    certs.subscribe(on_renewal)
    assert called.wait(timeout=10), "no renewal within 10 s of a 6 s certificate"
    at, material = renewed[0]
    assert at < first.not_after  # before the old one expired
    assert material.not_after > first.not_after
    assert certs.material() in [m for _, m in renewed]
    assert vault.readiness() is None


def test_redis_user_touches_only_the_deployment_prefix(vault_stack: VaultStack) -> None:
    vault = vault_stack.connect("users")
    creds = vault.database_credentials(f"{vault_stack.prefix}-users-redis")
    assert f"_{vault_stack.prefix}-users-redis_".upper() in creds.current()[0]
    client = redis.Redis.from_url(
        vault_stack.redis_url, credential_provider=RedisCredentials(creds)
    )
    try:
        mine = f"{vault_stack.redis_prefix}k"
        assert client.set(mine, "1")
        assert client.get(mine) == b"1"
        assert client.incr(mine) == 2
        for denied in (
            lambda: client.set("elsewhere:k", "1"),
            lambda: client.get("bulwark:users:k"),
            lambda: client.flushall(),
            lambda: client.keys("*"),
            lambda: client.config_get("*"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                denied()
    finally:
        client.close()
