"""A throwaway certificate authority for tests: issues service identities shaped like the
Vault PKI ones (SPIFFE URI SAN, DNS SANs, EC P-256), short-lived on demand, and a
`CertSource` that re-issues them when a test says so (renewal without Vault)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bulwark_common import grpcio
from bulwark_common.identity import current_caller
from bulwark_common.tls import TlsMaterial, spiffe_id

# Certificates start a little in the past so clock granularity never makes a fresh one
# "not yet valid".
_BACKDATE = dt.timedelta(seconds=60)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertAuthority:
    """A self-signed root that issues leaf certificates (no intermediates)."""

    def __init__(self, name: str = "bulwark test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = self._cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        service: str,
        *,
        namespace: str = "default",
        ttl: float = 3600.0,
        uris: list[str] | None = None,
    ) -> TlsMaterial:
        """A leaf for `service`: URI SAN spiffe://bulwark/ns/<namespace>/sa/<service> unless
        `uris` replaces it ([] = none), DNS SANs `<service>` and localhost, IP 127.0.0.1."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        # Whole seconds, as X.509 stores it: not_after is then exactly when it expires.
        not_after = (now + dt.timedelta(seconds=ttl)).replace(microsecond=0)
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(u)
            for u in (uris if uris is not None else [spiffe_id(namespace, service)])
        ]
        names += [x509.DNSName(service), x509.DNSName("localhost")]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return TlsMaterial(
            key_pem=_pem_key(key),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            ca_pem=self.ca_pem,
            not_after=not_after.timestamp(),
        )


class StaticCerts:
    """A `CertSource` whose material changes only when `reissue` is called."""

    def __init__(
        self, ca: CertAuthority, service: str, *, namespace: str = "default", ttl: float = 3600.0
    ) -> None:
        self._ca = ca
        self._service = service
        self._namespace = namespace
        self._ttl = ttl
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[TlsMaterial], None]] = []
        self._material = ca.issue(service, namespace=namespace, ttl=ttl)
        self.issued = 1

    def material(self) -> TlsMaterial:
        return self._material

    def subscribe(self, callback: Callable[[TlsMaterial], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def reissue(self, ttl: float | None = None) -> TlsMaterial:
        """A fresh key and certificate, announced to every subscriber (like a renewal)."""
        material = self._ca.issue(
            self._service, namespace=self._namespace, ttl=self._ttl if ttl is None else ttl
        )
        with self._lock:
            self._material = material
            self.issued += 1
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(material)
        return material


# An mTLS server with a small caller matrix, for tests of the identity plumbing.

ECHO = "bulwark.test.v1.Echo"
OTHER = "bulwark.test.v1.Other"
OPEN = f"/{ECHO}/Open"  # covered by the service-wide entry: auth and api
HOLD = f"/{ECHO}/Hold"  # as Open, but answers only once Echo.release is set
AUTH_ONLY = f"/{ECHO}/AuthOnly"  # its own entry: auth only
UNLISTED = f"/{OTHER}/Unlisted"  # no entry at all: nobody
CALLERS = {
    f"/{ECHO}/*": frozenset({"auth", "api"}),
    AUTH_ONLY: frozenset({"auth"}),
}


@dataclass
class Echo:
    """Records every call that reached a handler: method, caller, peer certificate. Hold
    keeps its worker busy until `release` is set (a stand-in for a long password check)."""

    calls: list[tuple[str, str | None]] = field(default_factory=list)
    peer_certs: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def handler(self, method: str) -> grpc.RpcMethodHandler:
        def behaviour(request: bytes, context: grpc.ServicerContext) -> bytes:
            cert = context.auth_context().get("x509_pem_cert", [b""])[0]
            with self.lock:
                self.calls.append((method, current_caller()))
                self.peer_certs.append(cert)
            if method == "Hold" and not self.release.wait(30):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "never released")
            return request

        return grpc.unary_unary_rpc_method_handler(behaviour)

    def register(self, server: grpc.Server) -> list[str]:
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    ECHO, {m: self.handler(m) for m in ("Open", "AuthOnly", "Hold")}
                ),
                grpc.method_handlers_generic_handler(OTHER, {"Unlisted": self.handler("U")}),
            )
        )
        return [ECHO, OTHER]


@dataclass
class Running:
    server: grpcio.Server
    echo: Echo
    certs: StaticCerts

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def health_target(self) -> str:
        return f"127.0.0.1:{self.server.health_port}"


def start_echo_server(
    certs: StaticCerts, *, reflection: bool = False, port: int = 0, channelz: bool = False
) -> Running:
    """Started on `port` (0: a free one; main mTLS) and a free health-only port, SERVING;
    stop with .server.stop(0)."""
    echo = Echo()
    server = grpcio.build_server(
        name="echo",
        host="127.0.0.1",
        port=port,
        register=echo.register,
        checks={},
        max_workers=8,
        tls=certs,
        callers=CALLERS,
        health_port=0,
        reflection=reflection,
        channelz_on_health_port=channelz,
    )
    server.start()
    server.monitor.check_once()  # no checks: SERVING now, not at the monitor's first tick
    return Running(server, echo, certs)
