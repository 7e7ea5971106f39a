"""gRPC credentials built from a `CertSource`: mutual TLS both ways, renewal-aware on the
server side (each new handshake gets the newest certificate)."""

from __future__ import annotations

import threading

import grpc

from bulwark_common.tls import CertSource, TlsMaterial


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    """Present our certificate and trust only servers chaining to the CA in `material`."""
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca_pem,
        private_key=material.key_pem,
        certificate_chain=material.cert_pem,
    )


def _server_config(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key_pem, material.cert_pem)], root_certificates=material.ca_pem
    )


def server_credentials(source: CertSource) -> grpc.ServerCredentials:
    """Require a client certificate from our CA; grpc asks the fetcher before each
    handshake, and it answers with a new configuration only after a renewal."""
    served = source.material()
    lock = threading.Lock()

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        nonlocal served
        material = source.material()
        with lock:
            if material is served:
                return None
            served = material
        return _server_config(material)

    return grpc.dynamic_ssl_server_credentials(
        _server_config(served), fetch, require_client_authentication=True
    )
