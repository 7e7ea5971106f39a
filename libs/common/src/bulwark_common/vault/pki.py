"""This service's mTLS certificate from Vault's PKI engine (a `bulwark_common.tls.CertSource`),
re-issued in the background at 2/3 of its TTL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography import x509

from bulwark_common import metrics
from bulwark_common.tls import TlsMaterial, spiffe_id
from bulwark_common.vault._retry import _Renewer, log

if TYPE_CHECKING:
    from bulwark_common.vault.client import Vault


class PkiCertificates(_Renewer):
    """Issues `spiffe://bulwark/ns/<namespace>/sa/<service>` (+ DNS `<service>`, its cluster
    names and `localhost`, IP 127.0.0.1; EC P-256 per the PKI role) from
    `<pki mount>/issue/<prefix>-<service>`."""

    def __init__(self, vault: Vault, service: str, namespace: str, ttl_seconds: int) -> None:
        self.service = service
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds
        self.role = f"{vault.prefix}-{service}"
        self._material: TlsMaterial | None = None
        self._issued_at = 0.0
        self._subscribers: list[Callable[[TlsMaterial], None]] = []
        super().__init__(vault, f"certificate {self.role}", f"vault-pki-{service}")
        metrics.track_certificate(service, lambda: self.material().not_after - time.time())

    def material(self) -> TlsMaterial:
        material = self._material
        assert material is not None  # issued in __init__
        return material

    def subscribe(self, callback: Callable[[TlsMaterial], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def _issue(self) -> None:
        vault = self._vault
        ns = self.namespace
        names = [self.service, f"{self.service}.{ns}.svc", f"{self.service}.{ns}.svc.cluster.local"]
        resp = vault.client.secrets.pki.generate_certificate(
            self.role,
            common_name=self.service,
            extra_params={
                "alt_names": ",".join([*names[1:], "localhost"]),
                "ip_sans": "127.0.0.1",
                "uri_sans": spiffe_id(ns, self.service),
                "ttl": f"{self.ttl_seconds}s",
                "private_key_format": "pkcs8",
            },
            mount_point=vault.settings.vault_pki_mount,
        )
        data = resp["data"]
        cert_pem = data["certificate"].encode()
        chain = data.get("ca_chain") or [data["issuing_ca"]]
        not_after = x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc.timestamp()
        material = TlsMaterial(
            key_pem=data["private_key"].encode(),
            cert_pem=cert_pem,
            ca_pem="\n".join(chain).encode() + b"\n",
            not_after=not_after,
        )
        with self._lock:
            first = self._material is None
            self._material = material
            self._issued_at = time.time()
            subscribers = list(self._subscribers)
        vault.report(self._component, None)
        log.info(
            "vault: certificate for %s valid until %s",
            spiffe_id(ns, self.service),
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(not_after)),
        )
        if not first:
            for callback in subscribers:
                callback(material)

    def _schedule(self) -> tuple[float | None, float]:
        not_after = self.material().not_after
        due = self._issued_at + (not_after - self._issued_at) * 2 / 3
        return due - time.time(), not_after
