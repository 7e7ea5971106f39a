"""Attack 12: orphaned data. Deleting a user deletes everything they own in every service:
users records the deletion in an outbox in the same transaction, api consumes it and deletes
their items, and a crash or outage between the two only delays it."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import httpx

from bulwark.users.v1 import users_pb2, users_pb2_grpc
from bulwark_devstack.target import Attackable, User
from bulwark_devstack.testkit import bearer
from bulwark_devstack.vault import issue_certificate


def _with_items(target: Attackable, http: httpx.Client) -> User:
    owner = target.register()
    token = bearer(target.login(owner, http)["access_token"])
    for i in range(3):
        r = http.post("/v1/items", headers=token, json={"name": f"mine-{i}"})
        assert r.status_code == 201
    return owner


def _owned(http: httpx.Client, admin: dict[str, str], owner: User) -> int:
    r = http.get("/v1/items", params={"owner": owner.id, "limit": 100}, headers=admin)
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def _until_none_left(http: httpx.Client, admin: dict[str, str], owner: User) -> None:
    deadline = time.monotonic() + 15
    while _owned(http, admin, owner):
        assert time.monotonic() < deadline, "the deleted user's items are still there"
        time.sleep(0.1)


def test_orphaned_data_deleting_a_user_deletes_their_items(target: Attackable) -> None:
    with target.client() as http:
        owner = _with_items(target, http)
        admin = bearer(target.login(target.admin, http)["access_token"])
        assert _owned(http, admin, owner) == 3
        assert http.delete(f"/v1/users/{owner.id}", headers=admin).status_code == 204
        _until_none_left(http, admin, owner)
        every = http.get("/v1/items", params={"all": "true", "limit": 100}, headers=admin)
        assert owner.id not in {i["owner_id"] for i in every.json()["items"]}


def test_orphaned_data_survives_api_being_down(own_stack: Callable[..., Attackable]) -> None:
    target = own_stack({})
    stack = target.stack
    with target.client() as http:
        owner = _with_items(target, http)
        admin_token = target.login(target.admin, http)["access_token"]
    stack.stop("api")  # down (or crashed) while the user is deleted in users
    # What api would send: its own identity over mTLS and the admin's token.
    assert stack.config.vault is not None
    me = issue_certificate(stack.config.vault, "api")
    creds = grpc.ssl_channel_credentials(me.ca_pem, me.key_pem, me.cert_pem)
    with grpc.secure_channel(
        f"127.0.0.1:{stack.config.users_port}",
        creds,
        options=[("grpc.ssl_target_name_override", "users")],
    ) as channel:
        users_pb2_grpc.UsersServiceStub(channel).DeleteUser(
            users_pb2.DeleteUserRequest(id=owner.id, actor_id="attack-suite"),
            timeout=10,
            metadata=[("authorization", f"Bearer {admin_token}")],
        )
    stack.start("api")
    stack.wait_ready(timeout=60)
    with target.client() as http:
        admin = bearer(target.login(target.admin, http)["access_token"])
        _until_none_left(http, admin, owner)
