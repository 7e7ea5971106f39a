"""mTLS on the gRPC port and the caller matrix: who is refused, with which status, and that
a refused call never reaches its handler."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from bulwark_common import grpcio
from bulwark_common.tls import spiffe_id
from bulwark_devstack import health
from bulwark_devstack.testca import (
    AUTH_ONLY,
    OPEN,
    UNLISTED,
    CertAuthority,
    Echo,
    Running,
    StaticCerts,
    start_echo_server,
)

Code = grpc.StatusCode


def call(channel: grpc.Channel, method: str) -> Code:
    try:
        channel.unary_unary(method)(b"", timeout=5)  # empty: a valid message of any type
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return Code.OK


def mtls(target: str, certs: StaticCerts, server_name: str = "users") -> grpc.Channel:
    return grpcio.channel(target, 5.0, tls=certs, server_name=server_name)


def raw_channel(target: str, creds: grpc.ChannelCredentials) -> grpc.Channel:
    return grpc.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", "users")])


def test_right_service_passes_and_handler_sees_its_name(ca: CertAuthority, users: Running) -> None:
    with mtls(users.target, StaticCerts(ca, "auth")) as channel:
        assert [call(channel, m) for m in (OPEN, AUTH_ONLY)] == [Code.OK, Code.OK]
    assert users.echo.calls == [("Open", "auth"), ("AuthOnly", "auth")]


def test_wrong_service_is_denied_per_method_before_the_handler(
    ca: CertAuthority, users: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bulwark.audit")
    with mtls(users.target, StaticCerts(ca, "api")) as channel:
        codes = {m: call(channel, m) for m in (OPEN, AUTH_ONLY, UNLISTED, "/x.Nope/Gone")}
    assert codes == {
        OPEN: Code.OK,
        AUTH_ONLY: Code.PERMISSION_DENIED,
        UNLISTED: Code.PERMISSION_DENIED,  # no matrix entry: fail closed
        "/x.Nope/Gone": Code.PERMISSION_DENIED,
    }
    assert users.echo.calls == [("Open", "api")]
    denied = [r.__dict__ for r in caplog.records if r.getMessage() == "rpc.denied"]
    assert [(d["method"], d["reason"]) for d in denied] == [
        (AUTH_ONLY, "caller not allowed"),
        (UNLISTED, "caller not allowed"),
        ("/x.Nope/Gone", "caller not allowed"),
    ]
    assert {d["peer_id"] for d in denied} == {spiffe_id("default", "api")}


def test_unlisted_method_is_denied_even_to_a_listed_service(
    ca: CertAuthority, users: Running
) -> None:
    with mtls(users.target, StaticCerts(ca, "auth")) as channel:
        assert call(channel, UNLISTED) == Code.PERMISSION_DENIED
    assert users.echo.calls == []


@pytest.mark.parametrize(
    "uris",
    [
        [],  # no SPIFFE id at all
        [spiffe_id("other-ns", "auth")],  # right service, another namespace
        ["spiffe://elsewhere/ns/default/sa/auth"],  # another trust domain
        [spiffe_id("default", "auth"), spiffe_id("default", "api")],  # ambiguous
    ],
)
def test_certificate_without_our_identity_is_unauthenticated(
    ca: CertAuthority, users: Running, caplog: pytest.LogCaptureFixture, uris: list[str]
) -> None:
    caplog.set_level(logging.INFO, logger="bulwark.audit")
    material = ca.issue("auth", uris=uris)
    creds = grpc.ssl_channel_credentials(ca.ca_pem, material.key_pem, material.cert_pem)
    with raw_channel(users.target, creds) as channel:
        assert call(channel, OPEN) == Code.UNAUTHENTICATED
        assert call(channel, "/grpc.health.v1.Health/Check") == Code.UNAUTHENTICATED
    assert users.echo.calls == []
    assert [r.__dict__["reason"] for r in caplog.records if r.getMessage() == "rpc.denied"] == [
        "no service identity"
    ] * 2


def test_plaintext_client_is_refused(users: Running) -> None:
    with grpc.insecure_channel(users.target) as channel:
        assert call(channel, OPEN) == Code.UNAVAILABLE
    assert users.echo.calls == []


def test_client_without_certificate_is_refused(ca: CertAuthority, users: Running) -> None:
    with raw_channel(users.target, grpc.ssl_channel_credentials(ca.ca_pem)) as channel:
        assert call(channel, OPEN) == Code.UNAVAILABLE
    assert users.echo.calls == []


def test_client_certificate_from_another_ca_is_refused(ca: CertAuthority, users: Running) -> None:
    # The client trusts our server, so only its own certificate can be the reason.
    forged = CertAuthority("not ours").issue("auth")
    creds = grpc.ssl_channel_credentials(ca.ca_pem, forged.key_pem, forged.cert_pem)
    with raw_channel(users.target, creds) as channel:
        assert call(channel, OPEN) == Code.UNAVAILABLE
    assert users.echo.calls == []


def test_client_refuses_a_server_with_another_identity(ca: CertAuthority, users: Running) -> None:
    # The server is "users"; a client that wants "auth" must not talk to it.
    with mtls(users.target, StaticCerts(ca, "api"), server_name="auth") as channel:
        assert call(channel, OPEN) == Code.UNAVAILABLE
    # A client that trusts another CA refuses our server too.
    other = StaticCerts(CertAuthority("not ours"), "api")
    with mtls(users.target, other) as channel:
        assert call(channel, OPEN) == Code.UNAVAILABLE
    assert users.echo.calls == []


def test_health_only_port_answers_health_and_nothing_else(
    ca: CertAuthority, users: Running
) -> None:
    assert health.check(users.health_target) == "SERVING"
    assert health.check(users.health_target, "bulwark.test.v1.Echo") == "SERVING"
    with grpc.insecure_channel(users.health_target) as channel:
        assert call(channel, OPEN) == Code.UNIMPLEMENTED
    assert users.echo.calls == []


def test_health_over_mtls_on_the_main_port(ca: CertAuthority, users: Running) -> None:
    material = ca.issue("api")
    tls = health.ClientTls(material.cert_pem, material.key_pem, ca.ca_pem, "users")
    assert health.check(users.target, tls=tls) == "SERVING"
    assert health.check(users.target) == "UNAVAILABLE"  # plaintext on the mTLS port
    wrong_name = health.ClientTls(material.cert_pem, material.key_pem, ca.ca_pem, "auth")
    assert health.check(users.target, tls=wrong_name) == "UNAVAILABLE"


def test_mtls_channel_needs_the_callee_name(ca: CertAuthority) -> None:
    with pytest.raises(ValueError, match="server_name"):
        grpcio.channel("127.0.0.1:1", 1.0, tls=StaticCerts(ca, "api"))


def reflected_services(channel: grpc.Channel) -> list[str]:
    """Reflection is a bidirectional stream: this also exercises the streaming guard."""
    db = ProtoReflectionDescriptorDatabase(channel)
    return sorted(db.get_services())


def test_reflection_only_when_enabled_and_only_for_known_peers(ca: CertAuthority) -> None:
    running = start_echo_server(StaticCerts(ca, "users"), reflection=True)
    try:
        with mtls(running.target, StaticCerts(ca, "api")) as channel:
            assert "bulwark.test.v1.Echo" in reflected_services(channel)
        stranger = ca.issue("api", uris=[spiffe_id("other-ns", "api")])
        creds = grpc.ssl_channel_credentials(ca.ca_pem, stranger.key_pem, stranger.cert_pem)
        with raw_channel(running.target, creds) as channel, pytest.raises(grpc.RpcError) as denied:
            reflected_services(channel)
        assert denied.value.code() == Code.UNAUTHENTICATED
    finally:
        running.server.stop(0)


def test_reflection_is_off_by_default(ca: CertAuthority, users: Running) -> None:
    with (
        mtls(users.target, StaticCerts(ca, "api")) as channel,
        pytest.raises(grpc.RpcError) as denied,
    ):
        reflected_services(channel)
    assert denied.value.code() == Code.PERMISSION_DENIED


def test_without_tls_the_server_is_plaintext_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = Echo()
    server = grpcio.build_server(
        name="dev", host="127.0.0.1", port=0, register=echo.register, checks={}
    )
    server.start()
    try:
        assert any(
            r.levelno == logging.WARNING and "plaintext" in r.getMessage() for r in caplog.records
        )
        with grpcio.channel(f"127.0.0.1:{server.port}", 5.0) as channel:
            assert call(channel, OPEN) == Code.OK
    finally:
        server.stop(0)
    assert echo.calls == [("Open", None)]  # no identity without mTLS


def test_probe_cli_over_mtls(ca: CertAuthority, users: Running, tmp_path: Path) -> None:
    material = ca.issue("api")
    files = {"cert": material.cert_pem, "key": material.key_pem, "ca": ca.ca_pem}
    for name, pem in files.items():
        (tmp_path / name).write_bytes(pem)
    tls_args = [f"--tls-{n}={tmp_path / n}" for n in files]
    with pytest.raises(SystemExit) as ok:
        health.main([users.target, *tls_args, "--server-name=users"])
    assert ok.value.code == 0
    with pytest.raises(SystemExit) as plain:
        health.main([users.health_target])
    assert plain.value.code == 0
    with pytest.raises(SystemExit) as incomplete:
        health.main([users.target, *tls_args])  # no --server-name
    assert incomplete.value.code == 2


def test_generated_stubs_work_on_renewing_channels(ca: CertAuthority, users: Running) -> None:
    request = health_pb2.HealthCheckRequest(service="bulwark.test.v1.Echo")
    certs = StaticCerts(ca, "api")
    with mtls(users.target, certs) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert stub.Check(request).status == health_pb2.HealthCheckResponse.SERVING
        certs.reissue()  # the same stub carries on over the new channel
        assert stub.Check(request).status == health_pb2.HealthCheckResponse.SERVING

    async def aio() -> tuple[int, int]:
        channel = grpcio.aio_channel(users.target, 5.0, tls=certs, server_name="users")
        stub = health_pb2_grpc.HealthStub(channel)
        first = await stub.Check(request)
        certs.reissue()
        second = await stub.Check(request)
        await channel.close()
        return first.status, second.status

    serving = health_pb2.HealthCheckResponse.SERVING
    assert asyncio.run(aio()) == (serving, serving)
    assert users.echo.calls == []  # health answered; the echo handlers never ran


class _Counting(grpc.ServerInterceptor):  # type: ignore[misc]
    """Counts how often the chain is asked for a handler and how often a handler runs."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.ran = 0

    def intercept_service(self, continuation, details):  # type: ignore[no-untyped-def]
        self.built.append(details.method)
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary

        def counted(request, context):  # type: ignore[no-untyped-def]
            self.ran += 1
            return behaviour(request, context)

        return handler._replace(unary_unary=counted)


MISSING = AUTH_ONLY.replace("AuthOnly", "Missing")


def test_interceptors_build_once_per_method_and_checks_run_every_call(
    ca: CertAuthority,
) -> None:
    echo, counting = Echo(), _Counting()
    server = grpcio.build_server(
        name="echo",
        host="127.0.0.1",
        port=0,
        register=echo.register,
        checks={},
        tls=StaticCerts(ca, "users"),
        callers={
            AUTH_ONLY: frozenset({"auth"}),
            OPEN: frozenset({"api", "auth"}),
            MISSING: frozenset({"auth"}),
        },
        interceptors=[counting],
    )
    server.start()
    target = f"127.0.0.1:{server.port}"
    try:
        with (
            mtls(target, StaticCerts(ca, "auth")) as auth,
            mtls(target, StaticCerts(ca, "api")) as api,
        ):
            # The caller check still decides per call once the handler is built.
            assert [call(auth, AUTH_ONLY), call(api, AUTH_ONLY), call(auth, AUTH_ONLY)] == [
                Code.OK,
                Code.PERMISSION_DENIED,
                Code.OK,
            ]
            assert [call(api, OPEN), call(api, OPEN)] == [Code.OK, Code.OK]
            assert [call(auth, UNLISTED), call(auth, UNLISTED)] == [Code.PERMISSION_DENIED] * 2
            # Methods the server lacks are answered every time and never kept.
            assert [call(auth, MISSING), call(auth, MISSING)] == [Code.UNIMPLEMENTED] * 2
    finally:
        server.stop(0)
    assert echo.calls == [("AuthOnly", "auth")] * 2 + [("Open", "api")] * 2
    # First the health watch each client connection opens (client-side health checking),
    # built once for both callers.
    watch = "/grpc.health.v1.Health/Watch"
    assert counting.built == [watch, AUTH_ONLY, OPEN, UNLISTED, MISSING, MISSING]
    assert counting.ran == 4
