"""Schemathesis over the OpenAPI document api serves: every documented operation is fuzzed
against the target (the local stack, or BULWARK_E2E_URL), and no answer may be a 5xx or break
the document (status code, content type, headers and body schema).

How the run stays meaningful and repeatable:
- authenticated operations are called with a real bearer token, so the generated data reaches
  the handlers, not just the 401 path: `test_fuzz_as_user` calls every operation as a normal
  user, `test_fuzz_as_admin` calls the authenticated ones as an administrator (the admin-only
  user management, and the admin-only `owner`/`all` filters of the items list);
- the machine-credential routes are fuzzed the same way: API keys as a user and as an admin
  (keys die with the run's accounts), OAuth2 clients as an admin (the clients a case
  registers are deleted at the end); a generated client id is a random UUID (404);
- each operation gets its own freshly registered account (for the admin run, one promoted to
  admin by the target's admin), so the per-user limit (API_USER_RATE) of one operation does not
  turn the next one into 429s, and nothing one operation does to its account (e.g. a new email)
  leaks into another; a 401 (the token was voided, e.g. by a role change) logs in again;
- every request comes from its own client address (X-Forwarded-For through the trusted proxy),
  so the per-IP limits of the anonymous doors (registration, token) are never reached; a 429
  would still be accepted, as it is documented;
- destructive operations only ever touch throwaway rows: a path id that schemathesis generates
  is a random UUID (404), and for about half of the cases it is replaced by a row made for the
  purpose (a victim account for /v1/users/{user_id}, an item of the caller for
  /v1/items/{item_id}), re-created when an earlier case deleted it. The target's admin and the
  calling accounts can therefore never be deleted, disabled or demoted by the fuzzer, and
  /v1/auth/revoke only ever sees generated tokens (unknown: 200, nothing revoked). For
  /v1/auth/token, about half of the generated bodies get real credentials, so the 200 path
  (and scope handling) is reached too. The accounts made for the run are deleted at the end;
- generation is derandomized (fixed seed) with MAX_EXAMPLES per operation in the fuzzing
  phase, plus schemathesis' deterministic coverage phase (boundary values, invalid shapes,
  unexpected methods); there is no Hypothesis deadline, and the too_slow health check is off.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bulwark_api.app import create_app
from bulwark_api.settings import ApiSettings
from bulwark_devstack.testkit import bearer, random_ip, strong_password, unique_name

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 30
SEED = 9457

CHECKS = [
    not_a_server_error,  # every 5xx counts: a healthy stack has no reason for a 503
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # We send a real token ourselves (see `Caller.headers`).
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
    }
)


@pytest.fixture(scope="session")
def api_schema(base_url: str) -> Any:
    # The schema the package generates, not the target's /openapi.json: production targets
    # do not serve it (API_DOCS_ENABLED off), and must be fuzzed all the same.
    doc = create_app(ApiSettings(docs_enabled=True)).openapi()
    schema = schemathesis.openapi.from_dict(doc, config=CONFIG)
    schema.config.update(base_url=base_url)
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@dataclass
class Account:
    id: str
    username: str
    password: str
    token: str = ""


@dataclass
class Caller:
    """The accounts and rows the cases of one run use, made on demand per operation."""

    http: httpx.Client
    admin: Account
    as_admin: bool
    accounts: dict[str, Account] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)
    victim: str | None = None
    created: list[str] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)

    def _headers(self) -> dict[str, str]:
        return {"X-Forwarded-For": random_ip()}

    def _register(self) -> Account:
        name = unique_name("fz")
        password = strong_password()
        r = self.http.post(
            "/v1/users",
            headers=self._headers(),
            json={"username": name, "email": f"{name}@example.com", "password": password},
        )
        assert r.status_code == 201, r.text
        self.created.append(r.json()["id"])
        return Account(r.json()["id"], name, password)

    def _login(self, acct: Account) -> None:
        r = self.http.post(
            "/v1/auth/token",
            headers=self._headers(),
            data={"grant_type": "password", "username": acct.username, "password": acct.password},
        )
        assert r.status_code == 200, r.text
        acct.token = r.json()["access_token"]

    def admin_token(self) -> str:
        if not self.admin.token:
            self._login(self.admin)
        return self.admin.token

    def _as_admin(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**self._headers(), **bearer(self.admin_token())}
        r = self.http.request(method, url, headers=headers, **kwargs)
        if r.status_code == 401:  # expired meanwhile
            self._login(self.admin)
            headers = {**self._headers(), **bearer(self.admin.token)}
            r = self.http.request(method, url, headers=headers, **kwargs)
        return r

    def account(self, operation: str) -> Account:
        acct = self.accounts.get(operation)
        if acct is None:
            acct = self._register()
            if self.as_admin:
                r = self._as_admin(
                    "PATCH", f"/v1/users/{acct.id}", json={"roles": ["admin", "user"]}
                )
                assert r.status_code == 200, r.text
            self._login(acct)
            self.accounts[operation] = acct
        return acct

    def relogin(self, operation: str) -> None:
        self._login(self.accounts[operation])

    def headers(self, operation: str) -> dict[str, str]:
        return {**self._headers(), **bearer(self.account(operation).token)}

    def item_of(self, operation: str) -> str:
        """An item of this operation's account that exists now."""
        item_id = self.items.get(operation)
        if item_id is not None:
            r = self.http.get(f"/v1/items/{item_id}", headers=self.headers(operation))
            if r.status_code == 200:
                return item_id
        r = self.http.post(
            "/v1/items", headers=self.headers(operation), json={"name": "fuzz target"}
        )
        assert r.status_code == 201, r.text
        self.items[operation] = item_id = r.json()["id"]
        return item_id

    def victim_id(self) -> str:
        """A throwaway account that exists now, for the admin's user management."""
        if self.victim is not None:
            r = self._as_admin("GET", f"/v1/users/{self.victim}")
            if r.status_code == 200:
                return self.victim
        self.victim = self._register().id
        return self.victim

    def cleanup(self) -> None:
        for client_id in self.clients:
            self._as_admin("DELETE", f"/v1/clients/{client_id}")
        for user_id in self.created:
            self._as_admin("DELETE", f"/v1/users/{user_id}")


@pytest.fixture
def caller_factory(target: Any) -> Iterator[Callable[[bool], Caller]]:
    callers: list[Caller] = []
    with httpx.Client(base_url=target.base_url, timeout=10) as client:

        def make(as_admin: bool) -> Caller:
            admin = Account("", target.admin_username, target.admin_password)
            caller = Caller(client, admin, as_admin)
            callers.append(caller)
            return caller

        yield make
        for caller in callers:
            caller.cleanup()


def _half(value: object) -> bool:
    """About half of the cases, chosen by their generated data (so, deterministically)."""
    return zlib.crc32(repr(value).encode()) % 2 == 0


def _pick(case: Any, name: str) -> bool:
    """Whether to replace this generated path id by a real row's: only valid UUIDs (an
    invalid id exercises validation, keep it), and only about half of them."""
    value = case.path_parameters.get(name) if case.path_parameters else None
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return _half(value)


def _run(case: Any, caller: Caller) -> None:
    operation = case.operation
    label = f"{operation.method.upper()} {operation.path}"
    authenticated = bool(operation.definition.raw.get("security"))
    headers = caller.headers(label) if authenticated else {"X-Forwarded-For": random_ip()}
    if operation.path == "/v1/items/{item_id}" and _pick(case, "item_id"):
        case.path_parameters["item_id"] = caller.item_of(label)
    if operation.path == "/v1/users/{user_id}" and caller.as_admin and _pick(case, "user_id"):
        case.path_parameters["user_id"] = caller.victim_id()
    if operation.path == "/v1/auth/token" and isinstance(case.body, dict) and _half(case.body):
        # Real credentials, the other fields (scope, ...) as generated: reaches the 200 path.
        acct = caller.account(label)
        case.body.update(grant_type="password", username=acct.username, password=acct.password)
    response = case.call_and_validate(headers=headers, checks=CHECKS)
    if operation.path == "/v1/clients" and response.status_code == 201:
        caller.clients.append(response.json()["client_id"])  # deleted by cleanup
    if authenticated and response.status_code == 401:
        # The case voided the caller's own tokens (role or password change): carry on with a
        # fresh token, so later cases reach the handler again.
        caller.relogin(label)


@pytest.fixture
def as_user(caller_factory: Callable[[bool], Caller]) -> Caller:
    return caller_factory(False)


@pytest.fixture
def as_admin(caller_factory: Callable[[bool], Caller]) -> Caller:
    return caller_factory(True)


@schema.parametrize()
def test_fuzz_as_user(case: Any, as_user: Caller) -> None:
    _run(case, as_user)


@(
    schema.include(path_regex=r"^/v1/(users|items|clients)")
    .exclude(method="POST", path="/v1/users")
    .parametrize()
)
def test_fuzz_as_admin(case: Any, as_admin: Caller) -> None:
    _run(case, as_admin)
