"""Load test for any Bulwark deployment (locust): realistic journeys over the public API.

    locust -f tools/loadtest/locustfile.py --host http://127.0.0.1:8080 \
        --headless -u 50 -r 5 -t 5m

- `Member` (most users): registers, logs in, then refreshes its tokens, reads its profile,
  creates, lists, reads, renames and deletes items.
- `Admin` (only when BULWARK_LOADTEST_ADMIN_USERNAME and _PASSWORD are set): logs in with
  that admin account and lists users and everyone's items.

Each virtual user sends its own X-Forwarded-For address (BULWARK_LOADTEST_FORWARDED_FOR=0 to
stop): the per-address limits (registration 10/min, token endpoint 30/min) count it only
when api trusts the load generator as a proxy (API_TRUSTED_PROXIES); otherwise all users
share one address and the limits answer 429 (counted as failures, as they should be).
"""

from __future__ import annotations

import os
import random
import secrets
import uuid
from typing import Any

from locust import HttpUser, between, task

ADMIN_USERNAME = os.environ.get("BULWARK_LOADTEST_ADMIN_USERNAME", "")
ADMIN_PASSWORD = os.environ.get("BULWARK_LOADTEST_ADMIN_PASSWORD", "")
FORWARDED_FOR = os.environ.get("BULWARK_LOADTEST_FORWARDED_FOR", "1") != "0"


class _Session(HttpUser):
    abstract = True
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.access = self.refresh_token = ""
        b = secrets.token_bytes(3)
        self.address = f"10.{b[0]}.{b[1]}.{max(1, b[2])}"

    def _headers(self, auth: bool = True) -> dict[str, str]:
        hdrs = {"X-Forwarded-For": self.address} if FORWARDED_FOR else {}
        if auth:
            hdrs["Authorization"] = f"Bearer {self.access}"
        return hdrs

    def _tokens(self, form: dict[str, str], name: str) -> bool:
        with self.client.post(
            "/v1/auth/token", data=form, headers=self._headers(False), name=name,
            catch_response=True,
        ) as r:  # fmt: skip
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return False
            body: dict[str, Any] = r.json()
            self.access, self.refresh_token = body["access_token"], body["refresh_token"]
            return True

    def login(self, username: str, password: str) -> bool:
        form = {"grant_type": "password", "username": username, "password": password}
        return self._tokens(form, "POST /v1/auth/token (password)")

    @task(2)
    def refresh(self) -> None:
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        self._tokens(form, "POST /v1/auth/token (refresh)")


class Member(_Session):
    weight = 10

    def on_start(self) -> None:
        super().on_start()
        self.username = f"lt{uuid.uuid4().hex[:12]}"
        self.password = f"pw-{secrets.token_urlsafe(16)}"
        self.items: list[str] = []
        body = {"username": self.username, "email": f"{self.username}@example.com",
                "password": self.password}  # fmt: skip
        r = self.client.post("/v1/users", json=body, headers=self._headers(False))
        if r.status_code == 201 and self.login(self.username, self.password):
            self.profile()  # what an app shows first after signing in

    @task(2)
    def profile(self) -> None:
        self.client.get("/v1/users/me", headers=self._headers())

    @task(3)
    def create_item(self) -> None:
        body = {"name": f"item {uuid.uuid4().hex[:8]}", "description": "from locust"}
        r = self.client.post("/v1/items", json=body, headers=self._headers())
        if r.status_code == 201:
            self.items.append(str(r.json()["id"]))

    @task(6)
    def list_items(self) -> None:
        self.client.get("/v1/items?limit=20", headers=self._headers())

    @task(6)
    def read_item(self) -> None:
        if self.items:
            item = random.choice(self.items)  # noqa: S311 (a load mix)
            self.client.get(f"/v1/items/{item}", headers=self._headers(), name="/v1/items/{id}")

    @task(1)
    def rename_item(self) -> None:
        if self.items:
            item = random.choice(self.items)  # noqa: S311
            self.client.patch(
                f"/v1/items/{item}", json={"name": "renamed"}, headers=self._headers(),
                name="/v1/items/{id}",
            )  # fmt: skip

    @task(1)
    def delete_item(self) -> None:
        if len(self.items) > 3:
            item = self.items.pop(0)
            self.client.delete(f"/v1/items/{item}", headers=self._headers(), name="/v1/items/{id}")


class Admin(_Session):
    # Only with admin credentials: an admin journey without them would only fail.
    abstract = not (ADMIN_USERNAME and ADMIN_PASSWORD)
    fixed_count = 1  # one admin whatever the user count (a weight could round it to none)

    def on_start(self) -> None:
        super().on_start()
        self.login(ADMIN_USERNAME, ADMIN_PASSWORD)

    @task(5)
    def admin_listing(self) -> None:
        """The admin's page: a page of users, then everyone's items."""
        offset = random.choice((0, 0, 50))  # noqa: S311
        self.client.get(
            f"/v1/users?limit=50&offset={offset}", headers=self._headers(), name="/v1/users"
        )
        self.client.get("/v1/items?all=true&limit=50", headers=self._headers())
