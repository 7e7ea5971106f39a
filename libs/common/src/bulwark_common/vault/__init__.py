"""The one secrets layer every service uses: a Vault/OpenBao session (hvac) that logs in,
reads KV v2, hands out dynamic database/Redis credentials and the service's mTLS certificate,
and keeps all of them renewed in the background. Contract: docs/identity-and-secrets.md."""

from bulwark_common.vault._retry import VaultUnavailable
from bulwark_common.vault.client import Vault
from bulwark_common.vault.leases import DatabaseCredentials, RedisCredentials
from bulwark_common.vault.pki import PkiCertificates

__all__ = [
    "DatabaseCredentials",
    "PkiCertificates",
    "RedisCredentials",
    "Vault",
    "VaultUnavailable",
]
