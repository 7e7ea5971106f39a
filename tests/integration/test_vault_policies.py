"""Least privilege in Vault: each service's token gets its own secrets and is refused every
other service's KV path, database roles, PKI role, and the signing-key write path."""

from __future__ import annotations

from collections.abc import Callable

import hvac.exceptions
import pytest

from bulwark_common.tls import spiffe_id
from bulwark_devstack.vault_testing import VaultStack

SERVICES = ("users", "auth", "api")


def _refused(call: Callable[..., object], *args: object, **kwargs: object) -> None:
    with pytest.raises(hvac.exceptions.Forbidden):
        call(*args, **kwargs)


def test_each_service_is_refused_every_other_services_secrets(vault_stack: VaultStack) -> None:
    p = vault_stack.prefix
    root = hvac.Client(url=vault_stack.server.addr, token=vault_stack.server.root_token)
    for svc in SERVICES:
        root.secrets.kv.v2.create_or_update_secret(f"{p}/{svc}/config", secret={"who": svc})
    ns = vault_stack.provisioned.namespace

    for svc in SERVICES:
        client = vault_stack.connect(svc).client
        kv, db, pki = client.secrets.kv.v2, client.secrets.database, client.secrets.pki
        # Its own: allowed.
        assert kv.read_secret_version(f"{p}/{svc}/config", raise_on_deleted_version=True)["data"][
            "data"
        ] == {"who": svc}
        assert db.generate_credentials(f"{p}-{svc}")["data"]["username"].startswith(f"v-{p}-")
        cert = pki.generate_certificate(
            f"{p}-{svc}", svc, extra_params={"uri_sans": spiffe_id(ns, svc), "ttl": "60s"}
        )
        assert "BEGIN CERTIFICATE" in cert["data"]["certificate"]
        # Its own PKI role never issues another identity.
        for other in SERVICES:
            if other == svc:
                continue
            with pytest.raises(hvac.exceptions.InvalidRequest):
                pki.generate_certificate(
                    f"{p}-{svc}", svc, extra_params={"uri_sans": spiffe_id(ns, other)}
                )
        # Everyone else's: refused.
        for other in SERVICES:
            if other == svc:
                continue
            _refused(kv.read_secret_version, f"{p}/{other}/config", raise_on_deleted_version=True)
            _refused(kv.read_secret_metadata, f"{p}/{other}/config")
            for kind in ("", "-migrate", "-redis"):
                _refused(db.generate_credentials, f"{p}-{other}{kind}")
            _refused(pki.generate_certificate, f"{p}-{other}", other)
        # No service writes signing keys, not even auth (which reads them), nor its own KV.
        _refused(kv.create_or_update_secret, f"{p}/auth/signing-keys", secret={"current": "x"})
        _refused(kv.create_or_update_secret, f"{p}/{svc}/config", secret={"who": "me"})


def test_only_the_operator_role_writes_signing_keys(vault_stack: VaultStack) -> None:
    keys = vault_stack.connect("auth-keys")
    assert keys.kv_write("auth/signing-keys", {"current": "pem-1"}, cas=0) == 1
    with pytest.raises(hvac.exceptions.InvalidRequest):
        keys.kv_write("auth/signing-keys", {"current": "lost update"}, cas=0)
    assert keys.kv_write("auth/signing-keys", {"current": "pem-2", "previous": "pem-1"}, cas=1) == 2
    # The operator role touches nothing else.
    _refused(keys.kv_read, "users/config")
    _refused(keys.client.secrets.database.generate_credentials, f"{keys.prefix}-auth")
    _refused(keys.client.secrets.pki.generate_certificate, f"{keys.prefix}-auth", "auth")

    auth = vault_stack.connect("auth")
    assert auth.kv_read("auth/signing-keys") == {"current": "pem-2", "previous": "pem-1"}
    assert auth.kv_metadata_version("auth/signing-keys") == 2
