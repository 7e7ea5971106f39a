"""Service identity on a real stack (every secret from a real OpenBao): mTLS is required on
every gRPC port, each method admits only its callers, users checks the end user itself, and
production refuses to start unsafe."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from bulwark.auth.v1 import auth_pb2
from bulwark.users.v1 import users_pb2, users_pb2_grpc
from bulwark_common.identity import SUITE_CALLERS
from bulwark_common.tls import TlsMaterial
from bulwark_devstack import testca
from bulwark_devstack.infra import venv_script
from bulwark_devstack.stack import Stack
from bulwark_devstack.testkit import create_admin, sign_up, strong_password
from bulwark_devstack.vault import issue_certificate

Code = grpc.StatusCode
REQUESTS: dict[str, Any] = {
    "/bulwark.users.v1.UsersService/VerifyCredentials": users_pb2.VerifyCredentialsRequest(
        username="nobody", password="x"
    ),
    "/bulwark.users.v1.UsersService/GetUser": users_pb2.GetUserRequest(id="nobody"),
    "/bulwark.users.v1.UsersService/CreateUser": users_pb2.CreateUserRequest(),
    "/bulwark.users.v1.UsersService/ListUsers": users_pb2.ListUsersRequest(limit=1),
    "/bulwark.users.v1.UsersService/UpdateUser": users_pb2.UpdateUserRequest(id="nobody"),
    "/bulwark.users.v1.UsersService/DeleteUser": users_pb2.DeleteUserRequest(id="nobody"),
    "/bulwark.users.v1.UsersService/CreateApiKey": users_pb2.CreateApiKeyRequest(user_id="x"),
    "/bulwark.users.v1.UsersService/ListApiKeys": users_pb2.ListApiKeysRequest(user_id="x"),
    "/bulwark.users.v1.UsersService/DeleteApiKey": users_pb2.DeleteApiKeyRequest(user_id="x"),
    "/bulwark.users.v1.UsersService/ResolveApiKey": users_pb2.ResolveApiKeyRequest(key_hash="0"),
    "/bulwark.users.v1.UsersService/CreateClient": users_pb2.CreateClientRequest(),
    "/bulwark.users.v1.UsersService/ListClients": users_pb2.ListClientsRequest(),
    "/bulwark.users.v1.UsersService/DeleteClient": users_pb2.DeleteClientRequest(),
    "/bulwark.users.v1.UsersService/VerifyClientCredentials": (
        users_pb2.VerifyClientCredentialsRequest(client_id="x", client_secret="y")
    ),
    "/bulwark.auth.v1.AuthService/IssueToken": auth_pb2.IssueTokenRequest(),
    "/bulwark.auth.v1.AuthService/IssueClientToken": auth_pb2.IssueClientTokenRequest(),
    "/bulwark.auth.v1.AuthService/RefreshToken": auth_pb2.RefreshTokenRequest(),
    "/bulwark.auth.v1.AuthService/RevokeToken": auth_pb2.RevokeTokenRequest(),
    "/bulwark.auth.v1.AuthService/GetJwks": auth_pb2.GetJwksRequest(),
}
DENIED = (Code.PERMISSION_DENIED, Code.UNAUTHENTICATED)


@pytest.fixture(scope="module")
def stack(stack_factory: Any) -> Stack:
    s: Stack = stack_factory()
    return s


def _allowed(method: str, caller: str) -> bool:
    entry = SUITE_CALLERS.get(method)
    if entry is None:
        entry = SUITE_CALLERS[method.rsplit("/", 1)[0] + "/*"]
    return caller in entry


def _callee(method: str) -> str:
    return "users" if ".users." in method else "auth"


@pytest.fixture(scope="module")
def identities(stack: Stack) -> dict[str, TlsMaterial]:
    assert stack.config.vault is not None
    return {svc: issue_certificate(stack.config.vault, svc) for svc in ("api", "auth", "users")}


def _channel(stack: Stack, callee: str, material: TlsMaterial | None) -> grpc.Channel:
    target = f"127.0.0.1:{stack.config.port(callee)}"
    if material is None:
        return grpc.insecure_channel(target)
    creds = grpc.ssl_channel_credentials(
        root_certificates=material.ca_pem,
        private_key=material.key_pem,
        certificate_chain=material.cert_pem,
    )
    return grpc.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", callee)])


def _call(channel: grpc.Channel, method: str, metadata: Any = None, request: Any = None) -> Code:
    request = request if request is not None else REQUESTS[method]
    reply_type = {
        "VerifyCredentials": users_pb2.VerifyCredentialsResponse,
        "ListUsers": users_pb2.ListUsersResponse,
        "DeleteUser": users_pb2.DeleteUserResponse,
        "GetJwks": auth_pb2.GetJwksResponse,
        "RevokeToken": auth_pb2.RevokeTokenResponse,
        "IssueToken": auth_pb2.TokenResponse,
        "RefreshToken": auth_pb2.TokenResponse,
        "IssueClientToken": auth_pb2.TokenResponse,
        "CreateApiKey": users_pb2.CreatedApiKey,
        "ListApiKeys": users_pb2.ListApiKeysResponse,
        "DeleteApiKey": users_pb2.DeleteApiKeyResponse,
        "ResolveApiKey": users_pb2.ApiKeyGrant,
        "CreateClient": users_pb2.CreatedClient,
        "ListClients": users_pb2.ListClientsResponse,
        "DeleteClient": users_pb2.DeleteClientResponse,
        "VerifyClientCredentials": users_pb2.VerifyClientCredentialsResponse,
    }.get(method.rsplit("/", 1)[1], users_pb2.User)
    call = channel.unary_unary(
        method,
        request_serializer=type(request).SerializeToString,
        response_deserializer=reply_type.FromString,
    )
    try:
        call(request, timeout=5, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return Code.OK


def test_plaintext_clients_are_refused_on_every_grpc_port(stack: Stack) -> None:
    for method in REQUESTS:
        with _channel(stack, _callee(method), None) as channel:
            assert _call(channel, method) == Code.UNAVAILABLE, method


def test_a_client_certificate_from_another_ca_is_refused(stack: Stack) -> None:
    ca = testca.CertAuthority("not bulwark CA")
    assert stack.config.vault is not None
    for caller in ("api", "auth"):
        forged = ca.issue(caller, namespace=stack.config.vault.namespace)
        # Trust the real CA for the server side, present the forged identity.
        real_ca = issue_certificate(stack.config.vault, "api").ca_pem
        material = TlsMaterial(forged.key_pem, forged.cert_pem, real_ca, forged.not_after)
        for method in REQUESTS:
            with _channel(stack, _callee(method), material) as channel:
                assert _call(channel, method) == Code.UNAVAILABLE, (caller, method)


def test_each_method_admits_only_its_callers(
    stack: Stack, identities: dict[str, TlsMaterial]
) -> None:
    for method in REQUESTS:
        for caller, material in identities.items():
            with _channel(stack, _callee(method), material) as channel:
                code = _call(channel, method)
            if _allowed(method, caller):
                # Past the caller check: the handler (or users' end-user rule) answered.
                assert code != Code.UNAUTHENTICATED, (caller, method)
                if code == Code.PERMISSION_DENIED:
                    assert caller == "api" and ".users." in method, (caller, method)
            else:
                assert code == Code.PERMISSION_DENIED, (caller, method, code)


def test_the_denied_peer_is_named_in_the_audit_log(
    stack: Stack, identities: dict[str, TlsMaterial]
) -> None:
    with _channel(stack, "users", identities["api"]) as channel:
        assert (
            _call(channel, "/bulwark.users.v1.UsersService/VerifyCredentials")
            == Code.PERMISSION_DENIED
        )
    assert stack.config.log_dir is not None
    log = (stack.config.log_dir / "users.log").read_text()
    denied = [line for line in log.splitlines() if '"rpc.denied"' in line]
    assert any("sa/api" in line and "VerifyCredentials" in line for line in denied), denied


@pytest.fixture(scope="module")
def accounts(stack: Stack) -> Iterator[dict[str, str]]:
    admin_password = strong_password()
    create_admin(stack, "identity-admin", admin_password)
    user = sign_up(stack.config.api_url)
    with httpx.Client(base_url=stack.config.api_url, timeout=10) as http:
        admin = http.post(
            "/v1/auth/token",
            data={
                "grant_type": "password",
                "username": "identity-admin",
                "password": admin_password,
            },
        )
        assert admin.status_code == 200, admin.text
        yield {
            "user": user.access_token,
            "user_id": user.user_id,
            "admin": admin.json()["access_token"],
        }


def test_users_refuses_a_non_admin_token_on_admin_rpcs_even_from_api(
    stack: Stack, identities: dict[str, TlsMaterial], accounts: dict[str, str]
) -> None:
    def as_api(method: str, token: str | None) -> Code:
        metadata = [("authorization", f"Bearer {token}")] if token else None
        with _channel(stack, "users", identities["api"]) as channel:
            return _call(channel, method, metadata)

    admin_only = [
        "/bulwark.users.v1.UsersService/ListUsers",
        "/bulwark.users.v1.UsersService/DeleteUser",
    ]
    for method in admin_only:
        assert as_api(method, None) == Code.PERMISSION_DENIED, method
        assert as_api(method, accounts["user"]) == Code.PERMISSION_DENIED, method
        assert as_api(method, "not-a-token") == Code.PERMISSION_DENIED, method
    # The same call with an admin's token passes users' own check.
    assert as_api(admin_only[0], accounts["admin"]) == Code.OK
    # A user may read their own account, not someone else's.
    with _channel(stack, "users", identities["api"]) as channel:
        users = users_pb2_grpc.UsersServiceStub(channel)
        own = users.GetUser(
            users_pb2.GetUserRequest(id=accounts["user_id"]),
            timeout=5,
            metadata=[("authorization", f"Bearer {accounts['user']}")],
        )
        assert own.id == accounts["user_id"]


def test_users_checks_machine_credentials_itself_even_from_api(
    stack: Stack, identities: dict[str, TlsMaterial], accounts: dict[str, str]
) -> None:
    """API keys are forwarded as they came and checked by users against its own table; key
    and client management follow users' own rules, whatever api says."""
    r = httpx.post(
        f"{stack.config.api_url}/v1/users/me/api-keys",
        headers={"Authorization": f"Bearer {accounts['user']}"},
        json={"name": "probe", "scopes": ["profile:read"], "expires_in_days": 1},
    )
    assert r.status_code == 201, r.text
    key = r.json()["key"]

    def as_api(method: str, request: Any, credential: str | None) -> Code:
        metadata = [("authorization", f"Bearer {credential}")] if credential else None
        with _channel(stack, "users", identities["api"]) as channel:
            return _call(channel, method, metadata, request)

    users = "/bulwark.users.v1.UsersService/"
    own = users_pb2.GetUserRequest(id=accounts["user_id"])
    assert as_api(f"{users}GetUser", own, key) == Code.OK
    assert as_api(f"{users}GetUser", own, "bwk_" + "A" * 43) == Code.PERMISSION_DENIED
    assert as_api(f"{users}ListUsers", users_pb2.ListUsersRequest(limit=1), key) == (
        Code.PERMISSION_DENIED
    )
    mint = users_pb2.CreateApiKeyRequest(
        user_id=accounts["user_id"], name="x", scopes=["profile:read"], expires_in_seconds=60
    )
    assert as_api(f"{users}CreateApiKey", mint, key) == Code.PERMISSION_DENIED  # keys mint none
    assert as_api(f"{users}CreateApiKey", mint, accounts["user"]) == Code.OK
    other = users_pb2.ListApiKeysRequest(user_id=str(uuid.uuid4()))
    assert as_api(f"{users}ListApiKeys", other, accounts["user"]) == Code.PERMISSION_DENIED
    for method, request in (
        ("ListClients", users_pb2.ListClientsRequest()),
        ("CreateClient", users_pb2.CreateClientRequest(name="x", scopes=["items:read"])),
    ):
        assert as_api(f"{users}{method}", request, accounts["user"]) == Code.PERMISSION_DENIED
    assert as_api(f"{users}ListClients", users_pb2.ListClientsRequest(), accounts["admin"]) == (
        Code.OK
    )


@pytest.mark.parametrize("service", ["users", "auth", "api"])
def test_production_refuses_to_start_without_vault(service: str) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("USERS_", "AUTH_", "API_", "BULWARK_", "VAULT_"))
    }
    # No BULWARK_ENV: production is the default.
    done = subprocess.run(
        [venv_script(f"bulwark-{service}"), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "refusing to start in production" in lines[0]
    assert "VAULT_ADDR" in lines[0] and f"{service.upper()}_DATABASE_URL" in lines[0]


def test_production_auth_refuses_to_start_without_provisioned_keys(
    vault_stack_factory: Any,
) -> None:
    """Vault reachable, login fine, but nobody ran `rotate-keys`: auth must not invent a
    key (it would differ per replica and void every token on restart)."""
    vault_stack = vault_stack_factory()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("USERS_", "AUTH_", "API_", "BULWARK_", "VAULT_"))
    }
    env.update(vault_stack.provisioned.env["auth"])
    env.update(BULWARK_ENV="production", REDIS_URL=vault_stack.redis_url)
    done = subprocess.run(
        [venv_script("bulwark-auth"), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "no signing key in Vault" in done.stderr.splitlines()[-1]
