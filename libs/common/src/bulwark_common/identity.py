"""Who is calling: the peer's service identity from its mTLS certificate, and the caller
matrix (method -> services allowed to call it) enforced before any handler runs."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from cryptography import x509

from bulwark_common.logging import audit
from bulwark_common.tls import TRUST_DOMAIN

# Full method name ("/pkg.Service/Method") or a whole service ("/pkg.Service/*") -> callers.
Callers = Mapping[str, frozenset[str]]

_USERS = "/bulwark.users.v1.UsersService/"
_AUTH = "/bulwark.auth.v1.AuthService/"
# The suite's caller matrix (docs/identity-and-secrets.md): both servers pass this one map;
# entries for the other service's methods are simply never looked up. A method's own entry
# takes precedence over its service-wide "/*" entry.
SUITE_CALLERS: Callers = {
    f"{_USERS}VerifyCredentials": frozenset({"auth"}),
    f"{_USERS}GetUser": frozenset({"api", "auth"}),
    **{
        f"{_USERS}{m}": frozenset({"api"})
        for m in (
            "CreateUser",
            "ListUsers",
            "UpdateUser",
            "DeleteUser",
            # machine credentials: a user's API keys, admins' OAuth2 clients
            "CreateApiKey",
            "ListApiKeys",
            "DeleteApiKey",
            "ResolveApiKey",
            "CreateClient",
            "ListClients",
            "DeleteClient",
        )
    },
    # the client_credentials grant, as VerifyCredentials is for the password grant
    f"{_USERS}VerifyClientCredentials": frozenset({"auth"}),
    # users verifies admin tokens itself with auth's public keys, read from Vault (no
    # users -> auth edge).
    f"{_AUTH}*": frozenset({"api"}),
}

HEALTH_SERVICE = "/grpc.health.v1.Health/"
REFLECTION_SERVICES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("rpc_caller", default=None)


def current_caller() -> str | None:
    """The calling service's name inside a handler (None without mTLS): for audit logs."""
    return _caller.get()


def parse_spiffe_id(uri: str) -> tuple[str, str] | None:
    """(namespace, service) of `spiffe://bulwark/ns/<namespace>/sa/<service>`, else None."""
    parts = uri.split("/")
    if (
        len(parts) == 7
        and parts[:3] == ["spiffe:", "", TRUST_DOMAIN]
        and parts[3] == "ns"
        and parts[5] == "sa"
        and parts[4]
        and parts[6]
    ):
        return parts[4], parts[6]
    return None


@functools.lru_cache(maxsize=64)
def certificate_identity(cert_pem: bytes) -> tuple[str, str] | None:
    """(namespace, service) named by the first certificate in `cert_pem` (one URI SAN)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    return parse_spiffe_id(uris[0]) if len(uris) == 1 else None


class CallerPolicy:
    """Decides whether a verified peer may call a method. Fail closed: a method with neither
    its own entry nor a service-wide one is denied to everybody."""

    def __init__(self, namespace: str, callers: Callers, *, reflection: bool = False) -> None:
        self.namespace = namespace
        self._callers = dict(callers)
        self._reflection = reflection

    def peer_id(self, context: grpc.ServicerContext) -> str | None:
        # grpc core sets peer_spiffe_id only for a verified chain with exactly one
        # well-formed SPIFFE URI SAN, so there is no certificate to parse here.
        ids = context.auth_context().get("peer_spiffe_id")
        return ids[0].decode() if ids and len(ids) == 1 else None

    def service_of(self, peer_id: str | None) -> str | None:
        parsed = parse_spiffe_id(peer_id) if peer_id else None
        return parsed[1] if parsed and parsed[0] == self.namespace else None

    def allows(self, method: str, service: str) -> bool:
        allowed = self._callers.get(method)
        if allowed is None:
            allowed = self._callers.get(method[: method.rfind("/") + 1] + "*")
        if allowed is not None:
            return service in allowed
        if method.startswith(HEALTH_SERVICE):
            return True
        return self._reflection and method.startswith(REFLECTION_SERVICES)

    def admit(self, method: str, context: grpc.ServicerContext) -> str:
        """The caller's service name, or abort the call (the handler never runs)."""
        peer_id = self.peer_id(context)
        service = self.service_of(peer_id)
        if service is None:
            code, reason = grpc.StatusCode.UNAUTHENTICATED, "no service identity"
        elif not self.allows(method, service):
            code, reason = grpc.StatusCode.PERMISSION_DENIED, "caller not allowed"
        else:
            return service
        audit("rpc.denied", peer_id=peer_id, method=method, reason=reason, peer=context.peer())
        context.abort(code, reason)
        raise AssertionError("context.abort returns only by raising")  # pragma: no cover


Behavior = Callable[[Any, grpc.ServicerContext], Any]


def _guard_unary(policy: CallerPolicy, method: str, behavior: Behavior) -> Behavior:
    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        token = _caller.set(policy.admit(method, context))
        try:
            return behavior(request, context)
        finally:
            _caller.reset(token)

    return guarded


def _guard_streaming(policy: CallerPolicy, method: str, behavior: Behavior) -> Behavior:
    def guarded(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        # Admit before the first response; the body runs while the server iterates.
        caller = policy.admit(method, context)
        _caller.set(caller)
        try:
            yield from behavior(request, context)
        finally:
            _caller.set(None)

    return guarded


class CallerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Wraps every handler so the policy runs first. The auth context exists only on the
    handler's ServicerContext, hence wrapping rather than deciding in intercept_service."""

    def __init__(self, policy: CallerPolicy) -> None:
        self._policy = policy

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        handler = continuation(details)
        policy = self._policy
        if handler is None:
            # No such method: deny like any unlisted one (callers learn nothing either way).
            def deny(request: bytes, context: grpc.ServicerContext) -> bytes:
                policy.admit(method, context)
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "method not found")
                raise AssertionError  # pragma: no cover

            return grpc.unary_unary_rpc_method_handler(deny)
        if handler.unary_unary:
            return handler._replace(unary_unary=_guard_unary(policy, method, handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=_guard_unary(policy, method, handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(
                unary_stream=_guard_streaming(policy, method, handler.unary_stream)
            )
        return handler._replace(
            stream_stream=_guard_streaming(policy, method, handler.stream_stream)
        )
