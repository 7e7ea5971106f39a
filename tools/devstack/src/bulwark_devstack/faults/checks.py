"""What a fault run asserts, from the records of every request: documented answers only,
no hang, recovery time, and nothing lost or doubled (items, refresh tokens, revocations)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httpx

from bulwark_devstack.faults.load import Record, VUser

TOKEN_OPS = frozenset({"login", "refresh"})


def documented_failure(rec: Record) -> bool:
    """A 503 problem with Retry-After; on the token endpoint also OAuth
    `temporarily_unavailable`."""
    if rec.status == 503 and rec.kind == "problem" and rec.retry_after:
        return True
    return rec.op in TOKEN_OPS and rec.kind == "oauth:temporarily_unavailable"


def describe(rec: Record) -> str:
    return f"{rec.status or '-'} {rec.kind}"


@dataclass
class Phase:
    dependency: str
    down_at: float
    up_at: float = 0.0  # when the dependency was back (accepting connections / SERVING)
    end_at: float = 0.0
    revoked_still_refused: bool | None = None

    def records(self, records: list[Record]) -> list[Record]:
        return [r for r in records if self.down_at <= r.end and r.start < self.end_at]

    def during(self, records: list[Record]) -> Counter[str]:
        return Counter(
            describe(r) for r in records if self.down_at <= r.start <= self.up_at or (
                r.start < self.down_at <= r.end)
        )  # fmt: skip

    def recovery_seconds(self, records: list[Record]) -> float | None:
        """From the dependency's return to the end of the last failed request; None when
        requests still fail at the end of the phase."""
        mine = self.records(records)
        failed = [r for r in mine if not r.ok]
        if not failed:
            return 0.0
        last = max(r.end for r in failed)
        tail = [r for r in mine if r.start > last]
        if not tail:
            return None
        return max(0.0, last - self.up_at)


def violations(records: list[Record], hang_bound: float) -> list[str]:
    """Every answer that is neither success nor a documented failure, and every hang."""
    found: list[str] = []
    for r in records:
        took = r.end - r.start
        if r.status == 0 or took > hang_bound:
            found.append(f"{r.op}: {describe(r)} after {took:.1f}s (bound {hang_bound}s)")
        elif not r.ok and not documented_failure(r):
            if r.op == "refresh" and r.kind == "oauth:invalid_grant" and r.ambiguous_before:
                continue  # counted as a lost refresh answer (lost_refresh_answers)
            found.append(f"{r.op}: {describe(r)}")
    return found


def doubled_refreshes(records: list[Record]) -> int:
    """Refresh tokens that bought two new pairs (each may buy exactly one)."""
    wins = Counter(r.spent for r in records if r.op == "refresh" and r.ok)
    return sum(1 for n in wins.values() if n > 1)


def lost_refresh_answers(records: list[Record]) -> int:
    """A refresh rotated by auth whose answer never reached the client: its retry then counts
    as reuse and ends the login (the user must log in again)."""
    return sum(
        1
        for r in records
        if r.op == "refresh" and r.kind == "oauth:invalid_grant" and r.ambiguous_before
    )


def all_items(api: str, user: VUser) -> dict[str, tuple[str, str]]:
    """Every item of `user` as api lists it now (fresh login, every page)."""
    with httpx.Client(base_url=api, timeout=10) as client:
        t = client.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": user.username, "password": user.password},
            headers={"X-Forwarded-For": user.ip},
        )
        t.raise_for_status()
        hdrs = {"Authorization": f"Bearer {t.json()['access_token']}", "X-Forwarded-For": user.ip}
        found: dict[str, tuple[str, str]] = {}
        cursor: str | None = None
        while True:
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/items", params=params, headers=hdrs)
            page.raise_for_status()
            body = page.json()
            for it in body["items"]:
                found[str(it["id"])] = (it["name"], it.get("description") or "")
            cursor = body.get("next_cursor")
            if not cursor:
                return found


@dataclass
class ItemAudit:
    answered_201: int = 0
    missing: int = 0  # answered 201, not readable with its content
    phantom: int = 0  # answered with an error (or no answer), exists anyway
    examples: list[str] = field(default_factory=list)


def audit_items(api: str, users: list[VUser], records: list[Record]) -> ItemAudit:
    audit = ItemAudit()
    failed_names: dict[str, set[str]] = {}
    for r in records:
        if r.op == "create" and not r.ok and r.item:
            failed_names.setdefault(r.user, set()).add(r.item[1])
    for u in users:
        have = all_items(api, u)
        audit.answered_201 += len(u.items)
        for item_id, expected in u.items.items():
            if have.get(item_id) != expected:
                audit.missing += 1
                audit.examples.append(f"missing {item_id} of {u.username}")
        names = {name for name, _ in have.values()}
        for name in failed_names.get(u.username, set()) & names:
            audit.phantom += 1
            audit.examples.append(f"phantom {name} of {u.username}")
    return audit
