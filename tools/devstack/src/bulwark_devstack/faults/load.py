"""A steady mixed load against api (logins, refreshes, item writes and reads from many users)
that records every request, so "nothing lost or doubled" can be checked exactly afterwards:
start, end, status, body kind; for item writes the id and content; for refreshes the token
spent (as a digest: no token is kept in a record)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from bulwark_devstack.testkit import random_ip, strong_password, unique_name

# operation -> relative weight in the mix
MIX = {"read": 45, "list": 15, "create": 20, "refresh": 12, "login": 8}
SUCCESS = {"login": 200, "refresh": 200, "create": 201, "read": 200, "list": 200}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class Record:
    op: str
    user: str
    start: float  # time.monotonic()
    end: float
    status: int  # 0: no answer (timeout or connection error)
    kind: str  # ok | problem | oauth:<error> | timeout | error:<exc> | other:<content type>
    retry_after: bool = False
    item: tuple[str, str] | None = None  # create: (id or "", name) ; read: (id, "")
    content: str = ""  # create: the description sent
    spent: str = ""  # refresh: digest of the refresh token presented
    ambiguous_before: bool = False  # refresh: an earlier try of this token had no clear answer

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS[self.op]


@dataclass
class VUser:
    username: str
    password: str
    ip: str
    access: str = ""
    refresh: str = ""
    items: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (name, content)
    ambiguous_refresh: bool = False

    def signed_in(self, body: dict[str, Any]) -> None:
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        self.ambiguous_refresh = False

    def headers(self, auth: bool = True) -> dict[str, str]:
        hdrs = {"X-Forwarded-For": self.ip}
        if auth:
            hdrs["Authorization"] = f"Bearer {self.access}"
        return hdrs


def body_kind(r: httpx.Response) -> str:
    ctype = r.headers.get("content-type", "")
    if 200 <= r.status_code < 300:
        return "ok"
    if ctype.startswith("application/problem+json"):
        return "problem"
    if ctype.startswith("application/json"):
        try:
            return f"oauth:{r.json().get('error', '?')}"
        except ValueError:
            return "other:bad-json"
    return f"other:{ctype or 'none'}"


class MixedLoad:
    """`users` virtual users, each doing one operation then thinking `think` seconds (with
    jitter of +-50 %); think=0 is a closed loop (for measuring capacity)."""

    def __init__(
        self, api_url: str, users: int, think: float, timeout: float, *, paced: bool = False
    ) -> None:
        self.api = api_url
        # paced: `think` is the time from one operation's start to the next (a fixed rate
        # per user while answers are faster than that), not a pause after each answer.
        self.paced = paced
        self.n_users = users
        self.think = think
        self.timeout = timeout
        self.records: list[Record] = []
        self.users: list[VUser] = []
        self.stopping = asyncio.Event()
        self._rng = random.Random(secrets.randbits(32))  # noqa: S311 (a load mix)
        self.client = httpx.AsyncClient(
            base_url=api_url,
            timeout=timeout,
            # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close
            # them under a request being sent (a client-side race, not a server fault).
            limits=httpx.Limits(
                max_connections=users + 10,
                max_keepalive_connections=users + 10,
                keepalive_expiry=2.0,
            ),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def setup(self) -> None:
        """Register and log in every virtual user (before any fault)."""

        async def one() -> VUser:
            u = VUser(unique_name("ld"), strong_password(), random_ip())
            for _ in range(10):  # a busy machine may push a hash past the deadline: 503
                r = await self.client.post(
                    "/v1/users",
                    json={"username": u.username, "email": f"{u.username}@example.com",
                          "password": u.password},
                    headers=u.headers(auth=False),
                )  # fmt: skip
                if r.status_code != 503:
                    break
                await asyncio.sleep(0.5)
            r.raise_for_status()
            for _ in range(10):
                if await self._login(u, record=False):
                    return u
                await asyncio.sleep(0.5)
            raise RuntimeError(f"setup: {u.username} could not log in")

        sem = asyncio.Semaphore(2)  # one argon2 hash per core

        async def limited() -> VUser:
            async with sem:
                return await one()

        self.users = list(await asyncio.gather(*(limited() for _ in range(self.n_users))))

    async def run(self, seconds: float | None = None) -> None:
        """Until stop() (or `seconds`)."""
        tasks = [asyncio.create_task(self._user_loop(u)) for u in self.users]
        if seconds is not None:
            await asyncio.sleep(seconds)
            self.stop()
        await asyncio.gather(*tasks)

    def stop(self) -> None:
        self.stopping.set()

    async def _user_loop(self, u: VUser) -> None:
        # Spread the first requests over one think time.
        await asyncio.sleep(self._rng.random() * self.think)
        ops, weights = list(MIX), list(MIX.values())
        while not self.stopping.is_set():
            op = self._rng.choices(ops, weights)[0]
            if op in ("read",) and not u.items:
                op = "create"
            began = time.monotonic()
            await getattr(self, f"_{op}")(u)
            if self.think:
                pause = self.think * (0.5 + self._rng.random())
                if self.paced:
                    pause -= time.monotonic() - began
                with_stop = asyncio.create_task(self.stopping.wait())
                await asyncio.wait({with_stop}, timeout=max(0.0, pause))
                with_stop.cancel()

    async def _send(self, rec: Record, method: str, url: str, **kw: Any) -> httpx.Response | None:
        try:
            r = await self.client.request(method, url, **kw)
        except httpx.TimeoutException:
            rec.kind = "timeout"
            return None
        except httpx.HTTPError as exc:
            rec.kind = f"error:{type(exc).__name__}"
            return None
        finally:
            rec.end = time.monotonic()
            self.records.append(rec)
        rec.status = r.status_code
        rec.kind = body_kind(r)
        rec.retry_after = "retry-after" in r.headers
        return r

    def _rec(self, op: str, u: VUser) -> Record:
        return Record(op, u.username, time.monotonic(), 0.0, 0, "")

    async def _login(self, u: VUser, record: bool = True) -> bool:
        rec = self._rec("login", u)
        form = {"grant_type": "password", "username": u.username, "password": u.password}
        r = await self._send(rec, "POST", "/v1/auth/token", data=form, headers=u.headers(False))
        if not record:
            self.records.remove(rec)
        if r is None or r.status_code != 200:
            return False
        body = r.json()
        u.access, u.refresh, u.ambiguous_refresh = (
            body["access_token"],
            body["refresh_token"],
            False,
        )
        return True

    async def _refresh(self, u: VUser) -> None:
        rec = self._rec("refresh", u)
        rec.spent, rec.ambiguous_before = digest(u.refresh), u.ambiguous_refresh
        form = {"grant_type": "refresh_token", "refresh_token": u.refresh}
        r = await self._send(rec, "POST", "/v1/auth/token", data=form, headers=u.headers(False))
        if r is not None and r.status_code == 200:
            body = r.json()
            u.access, u.refresh, u.ambiguous_refresh = (
                body["access_token"],
                body["refresh_token"],
                False,
            )
        elif r is None or r.status_code >= 500:
            u.ambiguous_refresh = True  # maybe spent: a client retries it, as this one does
        elif rec.kind == "oauth:invalid_grant":
            await self._login(u)  # the family is gone: log in again, as an app would

    async def _create(self, u: VUser) -> None:
        rec = self._rec("create", u)
        name, content = f"it-{uuid.uuid4().hex[:12]}", secrets.token_hex(8)
        rec.item, rec.content = ("", name), content
        r = await self._send(
            rec, "POST", "/v1/items", json={"name": name, "description": content},
            headers=u.headers(),
        )  # fmt: skip
        if r is not None and r.status_code == 201:
            item_id = str(r.json()["id"])
            rec.item = (item_id, name)
            u.items[item_id] = (name, content)

    async def _read(self, u: VUser) -> None:
        item_id = self._rng.choice(list(u.items))
        rec = self._rec("read", u)
        rec.item = (item_id, "")
        await self._send(rec, "GET", f"/v1/items/{item_id}", headers=u.headers())

    async def _list(self, u: VUser) -> None:
        rec = self._rec("list", u)
        await self._send(rec, "GET", "/v1/items?limit=20", headers=u.headers())
