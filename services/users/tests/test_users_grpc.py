"""Integration tests: the servicer in a real gRPC server, over a real channel, against real
PostgreSQL and Redis. Most tests share one database per module (a fresh database costs ~0.2 s)
and keep apart by unique usernames; the ones that need an empty database get their own."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bulwark.users.v1 import users_pb2, users_pb2_grpc
from bulwark_common import kv, revocation
from bulwark_common.db import Database, database_url
from bulwark_devstack import infra
from bulwark_users.accounts import conflict_field
from bulwark_users.models import User, migrate
from bulwark_users.passwords import Passwords
from bulwark_users.service import LAST_ADMIN, UsersServicer

PW = "violet-kettle-orbit-42"
PW2 = "amber-lantern-sequoia-7"
CODE = grpc.StatusCode

# One hasher at the real (OWASP minimum) cost for the whole module: its dummy hash is made once.
PASSWORDS = Passwords(time_cost=2, memory_cost_kib=19456, parallelism=1, max_concurrent=2)


@dataclass
class Stack:
    stub: Any
    db: Database
    redis: redis.Redis
    prefix: str
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def name(self, base: str = "alice") -> str:
        """A username no other test on this stack uses."""
        return f"{base}{next(self._ids)}"

    def create(self, username: str, email: str | None = None, **kw: Any) -> Any:
        return self.stub.CreateUser(
            users_pb2.CreateUserRequest(
                username=username,
                email=email or f"{username.lower()}@example.com",
                password=kw.pop("password", PW),
                **kw,
            )
        )

    def verify(self, username: str, password: str) -> Any:
        return self.stub.VerifyCredentials(
            users_pb2.VerifyCredentialsRequest(username=username, password=password)
        )

    def marker(self, user_id: str) -> bytes | None:
        value = self.redis.get(revocation.user_key(self.prefix, user_id))
        assert value is None or isinstance(value, bytes)
        return value

    def row(self, user_id: str) -> User | None:
        with self.db.sessions() as session:
            return session.get(User, user_id)

    def count(self, *where: Any) -> int:
        with self.db.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(User).where(*where)) or 0)


def start_stack(
    resources: ExitStack, db_url: str, redis_url: str, prefix: str, data_dir: Path, **kw: Any
) -> Stack:
    """Migrate, then serve a UsersServicer on a free port; `resources` undoes it all."""
    db = Database(database_url(db_url, data_dir, "users"))
    resources.callback(db.dispose)
    migrate(db.url)
    checker = kv.client(redis_url)
    resources.callback(checker.close)
    served = kv.client(kw.get("service_redis_url", redis_url))
    resources.callback(served.close)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = UsersServicer(db, PASSWORDS, served, prefix)
    servicer.register(server)
    resources.callback(servicer.close)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    resources.callback(server.stop, None)
    # A plain channel: bulwark_common.grpcio.channel currently fails to build (it hands the
    # OpenTelemetry grpcext interceptor to grpc.intercept_channel).
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    resources.callback(channel.close)
    return Stack(users_pb2_grpc.UsersServiceStub(channel), db, checker, prefix)


@pytest.fixture(scope="module")
def stack(
    postgres_admin_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    with ExitStack() as resources:
        db_url = resources.enter_context(infra.temporary_database(postgres_admin_url))
        s = start_stack(resources, db_url, redis_url, prefix, tmp_path_factory.mktemp("users"))
        yield s
        keys = list(s.redis.scan_iter(match=f"{prefix}*"))
        if keys:
            s.redis.delete(*keys)


@pytest.fixture
def make_stack(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Stacks private to one test (an empty database, or a broken Redis)."""
    with ExitStack() as resources:
        yield lambda db_url, **kw: start_stack(
            resources, db_url, redis_url, redis_prefix, tmp_path, **kw
        )


def status_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def update_user(stack: Stack, user_id: str, **fields: Any) -> Any:
    if "roles" in fields:
        fields["roles"] = users_pb2.RoleList(roles=fields["roles"])
    return stack.stub.UpdateUser(users_pb2.UpdateUserRequest(id=user_id, **fields))


def get_user(stack: Stack, user_id: str) -> Any:
    return stack.stub.GetUser(users_pb2.GetUserRequest(id=user_id))


# --- CreateUser / GetUser ---------------------------------------------------------------


def test_create_normalises_and_get_returns_it(stack: Stack) -> None:
    name = stack.name("Alice")
    created = stack.create(name, email=f"{name}@Example.COM")
    assert uuid.UUID(created.id)
    assert (created.username, created.email) == (name.lower(), f"{name.lower()}@example.com")
    assert list(created.roles) == ["user"] and not created.disabled
    assert abs(created.created_at.ToDatetime().timestamp() - time.time()) < 60
    assert get_user(stack, created.id) == created
    row = stack.row(created.id)
    assert row is not None and row.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert row.created_at.tzinfo is not None


def test_create_with_roles(stack: Stack) -> None:
    created = stack.create(stack.name("root"), roles=["user", "admin", "user"])
    assert list(created.roles) == ["admin", "user"]


def test_create_duplicate(stack: Stack) -> None:
    name = stack.name()
    stack.create(name)
    assert status_of(lambda: stack.create(name.upper(), email="other@example.com")) == (
        CODE.ALREADY_EXISTS,
        "username already taken",
    )
    assert status_of(lambda: stack.create(stack.name(), email=f"{name.upper()}@example.com")) == (
        CODE.ALREADY_EXISTS,
        "email already taken",
    )
    assert stack.count(User.email.like(f"%{name}%")) == 1


@pytest.mark.parametrize(
    ("fields", "prefix"),
    [
        ({"username": "al"}, "username: "),
        ({"username": "al ice"}, "username: "),
        ({"email": "not-an-email"}, "email: "),
        ({"password": "too-short"}, "password: must be at least 12 characters"),
        ({"password": "x" * 129}, "password: must be at most 128 characters"),
        ({"password": "Password123456"}, "password: is too common"),
        ({"roles": ["superuser"]}, "roles: unknown role"),
    ],
)
def test_create_invalid_field(stack: Stack, fields: dict[str, Any], prefix: str) -> None:
    name = stack.name("invalid")
    username = fields.pop("username", name)
    fields.setdefault("email", f"{name}@example.com")
    code, details = status_of(lambda: stack.create(username, **fields))
    assert code == CODE.INVALID_ARGUMENT
    assert details.startswith(prefix)
    assert "password" not in fields or fields["password"] not in details
    assert stack.count(User.username.in_([name, username])) == 0


def test_concurrent_creates_of_one_username_give_one_user(stack: Stack) -> None:
    """All racers pass the friendly pre-check together; the unique constraint decides and
    the losers get ALREADY_EXISTS, not INTERNAL."""
    name = stack.name("racer")
    results: list[str] = []
    barrier = threading.Barrier(6)

    def racer(i: int) -> None:
        barrier.wait()
        try:
            stack.create(name, email=f"{name}-{i}@example.com")
            results.append("ok")
        except grpc.RpcError as exc:
            results.append(f"{exc.code().name}: {exc.details()}")

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ALREADY_EXISTS: username already taken"] * 5 + ["ok"]
    assert stack.count(User.username == name) == 1


@pytest.mark.parametrize(
    "bad_id",
    ["", "nope", "'; DROP TABLE users; --", "{00000000-0000-0000-0000-000000000000}", "1" * 36],
)
def test_get_malformed_id_is_not_found(stack: Stack, bad_id: str) -> None:
    assert status_of(lambda: get_user(stack, bad_id)) == (CODE.NOT_FOUND, "user not found")


def test_get_unknown_id_is_not_found(stack: Stack) -> None:
    assert status_of(lambda: get_user(stack, str(uuid.uuid4())))[0] == CODE.NOT_FOUND


# --- ListUsers ----------------------------------------------------------------------------


def test_list_pages_in_creation_order(make_stack: Callable[..., Stack], postgres_url: str) -> None:
    stack = make_stack(postgres_url)  # an empty database: totals are exact
    ids = [stack.create(f"user{i}").id for i in range(3)]
    page = stack.stub.ListUsers(users_pb2.ListUsersRequest(limit=2))
    assert ([u.id for u in page.items], page.total) == (ids[:2], 3)
    page = stack.stub.ListUsers(users_pb2.ListUsersRequest(limit=2, offset=2))
    assert ([u.id for u in page.items], page.total) == (ids[2:], 3)
    page = stack.stub.ListUsers(users_pb2.ListUsersRequest(offset=10))
    assert (list(page.items), page.total) == ([], 3)
    assert len(stack.stub.ListUsers(users_pb2.ListUsersRequest()).items) == 3  # default 50


def test_list_default_and_max_limit(stack: Stack) -> None:
    for _ in range(3):
        stack.create(stack.name("many"))
    total = stack.count()
    page = stack.stub.ListUsers(users_pb2.ListUsersRequest())
    assert (len(page.items), page.total) == (min(total, 50), total)
    assert len(stack.stub.ListUsers(users_pb2.ListUsersRequest(limit=100)).items) <= 100


@pytest.mark.parametrize(
    ("request_fields", "prefix"),
    [({"limit": 101}, "limit: "), ({"limit": -1}, "limit: "), ({"offset": -1}, "offset: ")],
)
def test_list_rejects_bad_paging(stack: Stack, request_fields: dict[str, int], prefix: str) -> None:
    code, details = status_of(
        lambda: stack.stub.ListUsers(users_pb2.ListUsersRequest(**request_fields))
    )
    assert code == CODE.INVALID_ARGUMENT and details.startswith(prefix)


# --- UpdateUser ---------------------------------------------------------------------------


def test_update_is_partial(stack: Stack) -> None:
    name = stack.name()
    user = stack.create(name)
    new_email = f"{name}-new@example.com"
    updated = update_user(stack, user.id, email=new_email.upper(), actor_id=user.id)
    assert updated.email == new_email
    assert (updated.username, list(updated.roles), updated.disabled) == (name, ["user"], False)
    assert stack.verify(name, PW).ok  # password untouched
    assert stack.marker(user.id) is None  # an email change does not revoke tokens
    assert update_user(stack, user.id) == updated  # nothing set: nothing changes


def test_update_email_conflict(stack: Stack) -> None:
    alice = stack.create(stack.name())
    bob = stack.create(stack.name("bob"))
    assert status_of(lambda: update_user(stack, alice.id, email=bob.email.upper())) == (
        CODE.ALREADY_EXISTS,
        "email already taken",
    )
    assert get_user(stack, alice.id) == alice


def test_self_service_password_change_revokes_tokens(stack: Stack) -> None:
    name = stack.name()
    user = stack.create(name)
    before = time.time()
    update_user(stack, user.id, password=PW2, current_password=PW, actor_id=user.id)
    assert stack.verify(name, PW2).ok
    assert not stack.verify(name, PW).ok
    marker = stack.marker(user.id)
    assert marker is not None and before <= float(marker) <= time.time()
    ttl = stack.redis.ttl(revocation.user_key(stack.prefix, user.id))
    assert isinstance(ttl, int) and 0 < ttl <= revocation.USER_MARKER_TTL_SECONDS


def test_wrong_current_password_changes_nothing(stack: Stack) -> None:
    name = stack.name()
    user = stack.create(name)
    code, details = status_of(
        lambda: update_user(
            stack, user.id, email="x@example.com", password=PW2, current_password=PW2
        )
    )
    assert (code, details) == (CODE.INVALID_ARGUMENT, "current_password: incorrect")
    assert stack.verify(name, PW).ok
    assert get_user(stack, user.id) == user
    assert stack.marker(user.id) is None


def test_admin_password_reset_needs_no_current_password(stack: Stack) -> None:
    name = stack.name()
    user = stack.create(name)
    update_user(stack, user.id, password=PW2, actor_id=str(uuid.uuid4()))
    assert stack.verify(name, PW2).ok
    assert stack.marker(user.id) is not None


def test_update_rejects_weak_password(stack: Stack) -> None:
    name = stack.name("weakling")
    user = stack.create(name)
    for weak in ("short", "password123456", name, f"{name}@example.com"):
        code, details = status_of(partial(update_user, stack, user.id, password=weak))
        assert code == CODE.INVALID_ARGUMENT and details.startswith("password: ")
    assert stack.verify(name, PW).ok and stack.marker(user.id) is None


def test_role_change_revokes_and_is_validated(stack: Stack) -> None:
    user = stack.create(stack.name())
    assert list(update_user(stack, user.id, roles=["user"]).roles) == ["user"]  # same set
    assert stack.marker(user.id) is None
    assert list(update_user(stack, user.id, roles=["admin", "user"]).roles) == ["admin", "user"]
    assert stack.marker(user.id) is not None
    for bad in (["root"], []):
        code, details = status_of(partial(update_user, stack, user.id, roles=bad))
        assert code == CODE.INVALID_ARGUMENT and details.startswith("roles: ")


def test_disable_revokes_and_blocks_login(stack: Stack) -> None:
    name = stack.name()
    user = stack.create(name)
    assert update_user(stack, user.id, disabled=True).disabled
    assert stack.marker(user.id) is not None
    assert not stack.verify(name, PW).ok
    stack.redis.delete(revocation.user_key(stack.prefix, user.id))
    assert not update_user(stack, user.id, disabled=False).disabled
    assert stack.marker(user.id) is None  # enabling voids nothing
    assert stack.verify(name, PW).ok


def test_update_unknown_user(stack: Stack) -> None:
    for bad_id in (str(uuid.uuid4()), "nope"):
        code, _ = status_of(partial(update_user, stack, bad_id, disabled=True))
        assert code == CODE.NOT_FOUND


# --- DeleteUser ---------------------------------------------------------------------------


def test_delete(stack: Stack) -> None:
    name = stack.name()
    user = stack.create(name)
    stack.stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id, actor_id="admin-id"))
    assert stack.marker(user.id) is not None
    assert status_of(lambda: get_user(stack, user.id))[0] == CODE.NOT_FOUND
    delete_again = users_pb2.DeleteUserRequest(id=user.id)
    assert status_of(lambda: stack.stub.DeleteUser(delete_again))[0] == CODE.NOT_FOUND
    assert not stack.verify(name, PW).ok
    stack.create(name)  # the name is free again


# --- the last active admin ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_the_last_active_admin_cannot_be_removed(
    make_stack: Callable[..., Stack], postgres_url: str, tmp_path: Path, backend: str
) -> None:
    # Its own database: the rule counts every admin.
    s = make_stack(postgres_url if backend == "postgresql" else f"sqlite:///{tmp_path}/u.db")
    root = s.create("root", roles=["admin"])
    other = s.create("other", roles=["user"])
    attempts = {
        "demote": partial(update_user, s, root.id, roles=["user"]),
        "disable": partial(update_user, s, root.id, disabled=True),
        "delete": lambda: s.stub.DeleteUser(users_pb2.DeleteUserRequest(id=root.id)),
    }
    for attempt in attempts.values():
        assert status_of(attempt) == (CODE.FAILED_PRECONDITION, LAST_ADMIN)
    assert get_user(s, root.id) == root and s.marker(root.id) is None  # nothing changed
    # Harmless changes of the last admin and changes of others still go through.
    assert list(update_user(s, root.id, roles=["admin", "user"]).roles) == ["admin", "user"]
    update_user(s, other.id, disabled=True)
    # With a second active admin, the first may go; then the second is the last one.
    update_user(s, other.id, disabled=False, roles=["admin"])
    assert list(attempts["demote"]().roles) == ["user"]
    assert (
        status_of(partial(update_user, s, other.id, disabled=True))[0] == CODE.FAILED_PRECONDITION
    )
    # A disabled admin does not count as one that could take over.
    update_user(s, root.id, roles=["admin"], disabled=True)
    code, _ = status_of(lambda: s.stub.DeleteUser(users_pb2.DeleteUserRequest(id=other.id)))
    assert code == CODE.FAILED_PRECONDITION


def test_two_admins_demoting_each_other_at_once_leave_one(
    make_stack: Callable[..., Stack], postgres_url: str
) -> None:
    s = make_stack(postgres_url)
    for _ in range(5):  # a race: run it a few times
        a, b = (s.create(s.name(n), roles=["admin"]) for n in ("ann", "bob"))
        start = threading.Barrier(2)

        def demote(user_id: str, start: threading.Barrier = start) -> grpc.StatusCode:
            start.wait()
            try:
                update_user(s, user_id, roles=["user"])
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]
            return CODE.OK

        with futures.ThreadPoolExecutor(2) as pool:
            codes = set(pool.map(demote, [a.id, b.id]))
        assert codes == {CODE.OK, CODE.FAILED_PRECONDITION}
        roles = sorted(list(get_user(s, i).roles) for i in (a.id, b.id))
        assert roles == [["admin"], ["user"]]
        with s.db.transaction() as session:  # out of play for the next round
            session.execute(update(User).where(User.id.in_([a.id, b.id])).values(disabled=True))


# --- VerifyCredentials --------------------------------------------------------------------


def test_verify_credentials(stack: Stack) -> None:
    alice, carol, dave = stack.name(), stack.name("carol"), stack.name("dave")
    user = stack.create(alice)
    stack.create(carol)
    update_user(stack, stack.create(dave).id, disabled=True)
    ok = stack.verify(alice.upper(), PW)
    assert ok.ok and ok.user == user
    failures = [
        stack.verify(alice, PW2),  # wrong password
        stack.verify(stack.name("nobody"), PW),  # unknown user
        stack.verify(dave, PW),  # disabled, right password
        stack.verify("x", PW),  # cannot be a username
        stack.verify(carol, ""),
    ]
    # One answer for every failure: nothing tells them apart.
    assert {f.SerializeToString() for f in failures} == {b""}


def test_login_upgrades_an_outdated_hash(stack: Stack) -> None:
    name = stack.name()
    user = stack.create(name)
    weak = Passwords(time_cost=1, memory_cost_kib=8192, parallelism=1, max_concurrent=2).hash(PW)
    with stack.db.transaction() as session:
        session.execute(update(User).where(User.id == user.id).values(password_hash=weak))
    assert not stack.verify(name, PW2).ok
    row = stack.row(user.id)
    assert row is not None and row.password_hash == weak  # a failed login upgrades nothing
    assert stack.verify(name, PW).ok
    row = stack.row(user.id)
    assert row is not None and row.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert stack.verify(name, PW).ok
    assert stack.marker(user.id) is None  # same password: tokens stay valid


# --- Failures leave nothing half-written --------------------------------------------------


def test_redis_down_fails_revoking_writes_and_changes_nothing(
    make_stack: Callable[..., Stack], postgres_url: str
) -> None:
    # Nothing listens on a fresh free port: every Redis call fails fast.
    broken = f"redis://127.0.0.1:{infra.free_port()}/0"
    stack = make_stack(postgres_url, service_redis_url=broken)
    user = stack.create("alice")  # creating revokes nothing, so needs no Redis
    for call in (
        lambda: update_user(stack, user.id, password=PW2, current_password=PW),
        lambda: update_user(stack, user.id, roles=["admin", "user"]),
        lambda: update_user(stack, user.id, disabled=True),
        lambda: stack.stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id)),
    ):
        assert status_of(call) == (CODE.UNAVAILABLE, "token revocation store unavailable")
    assert get_user(stack, user.id) == user
    assert stack.verify("alice", PW).ok
    # Changes that revoke nothing still work.
    assert update_user(stack, user.id, email="new@example.com").email == "new@example.com"


def test_conflict_field_reads_both_backends(postgres_url: str, tmp_path: Path) -> None:
    for url in (postgres_url, f"sqlite:///{tmp_path / 'users.db'}"):
        db = Database(database_url(url, tmp_path, "users"))
        migrate(db.url)
        row = {"password_hash": "x", "roles": ["user"], "disabled": False}
        with db.transaction() as session:
            session.add(User(id=str(uuid.uuid4()), username="a", email="a@x.io", **row))
        for username, email, column in (("a", "b@x.io", "username"), ("b", "a@x.io", "email")):
            with pytest.raises(IntegrityError) as info, db.transaction() as session:
                session.add(User(id=str(uuid.uuid4()), username=username, email=email, **row))
            assert conflict_field(info.value) == column, url
        db.dispose()


def test_works_on_sqlite(make_stack: Callable[..., Stack], tmp_path: Path) -> None:
    stack = make_stack(f"sqlite:///{tmp_path / 'users.db'}")
    user = stack.create("Alice")
    taken = status_of(lambda: stack.create("bob", email="ALICE@example.com"))
    assert taken == (CODE.ALREADY_EXISTS, "email already taken")
    update_user(stack, user.id, roles=["admin", "user"], password=PW2)
    assert stack.marker(user.id) is not None
    ok = stack.verify("alice", PW2)
    assert ok.ok and list(ok.user.roles) == ["admin", "user"]
    assert ok.user.created_at == user.created_at
    row = stack.row(user.id)
    assert row is not None and row.created_at.tzinfo is not None
    assert [u.id for u in stack.stub.ListUsers(users_pb2.ListUsersRequest()).items] == [user.id]


# --- Audit --------------------------------------------------------------------------------


def test_audit_events_never_carry_secrets(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    name = stack.name()
    user = stack.create(name)
    stack.verify(name, PW)
    stack.verify(name, PW2)
    stack.verify(stack.name("ghost"), PW2)
    update_user(
        stack, user.id, password=PW2, current_password=PW, actor_id=user.id, client_ip="10.0.0.9"
    )
    update_user(stack, user.id, roles=["admin", "user"], actor_id="admin-1")
    stack.stub.DeleteUser(users_pb2.DeleteUserRequest(id=user.id, actor_id="admin-1"))
    records = [r for r in caplog.records if r.name == "bulwark.audit"]
    events = [(r.__dict__["event"], r.__dict__.get("user_id")) for r in records]
    assert events == [
        ("user.created", user.id),
        ("login.success", user.id),
        ("login.failure", user.id),
        ("login.failure", None),
        ("user.updated", user.id),
        ("user.password_changed", user.id),
        ("user.updated", user.id),
        ("user.roles_changed", user.id),
        ("user.deleted", user.id),
    ]
    pw_change = records[4].__dict__
    assert (pw_change["actor_id"], pw_change["client_ip"]) == (user.id, "10.0.0.9")
    everything = " ".join(repr(r.__dict__) for r in caplog.records)
    for secret in (PW, PW2, "$argon2"):
        assert secret not in everything


def test_database_down_is_unavailable(redis_url: str) -> None:
    # Nothing listens on a fresh free port: connecting is refused at once.
    db = Database(
        database_url(f"postgresql://postgres@127.0.0.1:{infra.free_port()}/x", Path(), "u")
    )
    redis_client = kv.client(redis_url)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = UsersServicer(db, PASSWORDS, redis_client, "unused:")
    servicer.register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = users_pb2_grpc.UsersServiceStub(channel)
            for call in (
                lambda: stub.GetUser(users_pb2.GetUserRequest(id=str(uuid.uuid4()))),
                lambda: stub.ListUsers(users_pb2.ListUsersRequest()),
                lambda: stub.VerifyCredentials(
                    users_pb2.VerifyCredentialsRequest(username="alice", password=PW)
                ),
            ):
                assert status_of(call) == (CODE.UNAVAILABLE, "database unavailable")
    finally:
        server.stop(None)
        servicer.close()
        db.dispose()
        redis_client.close()
