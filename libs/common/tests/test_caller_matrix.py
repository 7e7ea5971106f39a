"""The suite's caller matrix: it names real methods, and it says what the contract says."""

from __future__ import annotations

import pytest

from bulwark.auth.v1 import auth_pb2
from bulwark.users.v1 import users_pb2
from bulwark_common.identity import SUITE_CALLERS, CallerPolicy, parse_spiffe_id

SERVICES = {
    "bulwark.users.v1.UsersService": users_pb2.DESCRIPTOR.services_by_name["UsersService"],
    "bulwark.auth.v1.AuthService": auth_pb2.DESCRIPTOR.services_by_name["AuthService"],
}
ALL_METHODS = [f"/{name}/{m.name}" for name, s in SERVICES.items() for m in s.methods]
POLICY = CallerPolicy("default", SUITE_CALLERS)


def test_every_entry_names_a_real_method_or_service() -> None:
    for key in SUITE_CALLERS:
        service, _, method = key[1:].partition("/")
        assert service in SERVICES, key
        assert method == "*" or f"/{service}/{method}" in ALL_METHODS, key


def test_every_method_has_callers() -> None:
    assert all(any(POLICY.allows(m, s) for s in ("api", "auth", "users")) for m in ALL_METHODS)


@pytest.mark.parametrize(
    ("method", "allowed"),
    [
        ("/bulwark.users.v1.UsersService/VerifyCredentials", {"auth"}),
        ("/bulwark.users.v1.UsersService/GetUser", {"api", "auth"}),
        ("/bulwark.users.v1.UsersService/CreateUser", {"api"}),
        ("/bulwark.users.v1.UsersService/ListUsers", {"api"}),
        ("/bulwark.users.v1.UsersService/UpdateUser", {"api"}),
        ("/bulwark.users.v1.UsersService/DeleteUser", {"api"}),
        ("/bulwark.users.v1.UsersService/CreateApiKey", {"api"}),
        ("/bulwark.users.v1.UsersService/ResolveApiKey", {"api"}),
        ("/bulwark.users.v1.UsersService/DeleteClient", {"api"}),
        ("/bulwark.users.v1.UsersService/VerifyClientCredentials", {"auth"}),
        ("/bulwark.auth.v1.AuthService/IssueToken", {"api"}),
        ("/bulwark.auth.v1.AuthService/IssueClientToken", {"api"}),
        ("/bulwark.auth.v1.AuthService/RefreshToken", {"api"}),
        ("/bulwark.auth.v1.AuthService/RevokeToken", {"api"}),
        ("/bulwark.auth.v1.AuthService/GetJwks", {"api"}),
        ("/grpc.health.v1.Health/Check", {"api", "auth", "users", "other"}),  # any peer
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", set()),
        ("/bulwark.users.v1.UsersService/NotYetListed", set()),
    ],
)
def test_matrix(method: str, allowed: set[str]) -> None:
    assert {s for s in ("api", "auth", "users", "other") if POLICY.allows(method, s)} == allowed


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("spiffe://bulwark/ns/default/sa/api", ("default", "api")),
        ("spiffe://bulwark/ns/default/sa/", None),
        ("spiffe://bulwark/ns//sa/api", None),
        ("spiffe://bulwark/ns/default/sa/api/x", None),
        ("spiffe://other/ns/default/sa/api", None),
        ("spiffe://bulwark/sa/api/ns/default", None),
        ("https://bulwark/ns/default/sa/api", None),
    ],
)
def test_spiffe_id_parsing(uri: str, parsed: tuple[str, str] | None) -> None:
    assert parse_spiffe_id(uri) == parsed
