"""TLS material for mTLS between the services, and where it comes from.

A `CertSource` hands out the current key, certificate chain and CA bundle of this service
and tells subscribers when they change (renewal). The Vault PKI source lives in
`bulwark_common.vault`; tests may build a source from their own CA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# Every service's identity: spiffe://bulwark/ns/<namespace>/sa/<service>.
TRUST_DOMAIN = "bulwark"


def spiffe_id(namespace: str, service: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service}"


@dataclass(frozen=True)
class TlsMaterial:
    key_pem: bytes = field(repr=False)
    cert_pem: bytes  # leaf first, then any intermediates
    ca_pem: bytes  # the CA(s) peers' certificates must chain to
    not_after: float  # Unix time the leaf expires


class CertSource(Protocol):
    def material(self) -> TlsMaterial:
        """The newest material; never blocks on the network."""
        ...

    def subscribe(self, callback: Callable[[TlsMaterial], None]) -> None:
        """Call `callback` (from any thread) after each renewal."""
        ...
