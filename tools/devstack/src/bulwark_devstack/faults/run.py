"""`make faults`: a steady mixed load while each dependency in turn is stopped and started
again (Redis, PostgreSQL, users, auth, OpenBao) and then slowed (a latency proxy in front of
Redis and PostgreSQL). Prints the table dependency x (answers during, time to recover, lost)
and writes it to <out>/faults.md, with every finding to <out>/faults.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bulwark_devstack.faults import checks
from bulwark_devstack.faults.harness import OwnedStack, owned_stack
from bulwark_devstack.faults.load import MixedLoad, VUser
from bulwark_devstack.testkit import random_ip

# api's longest wait on a dependency is the gRPC deadline (2 s) or a Redis/PostgreSQL
# connect timeout (2-3 s); the bound adds a margin for a loaded 2-core machine.
HANG_BOUND = 6.0
RECOVERY_BOUND = 5.0


@dataclass(frozen=True)
class Timing:
    steady: float  # load before each fault
    outage: float  # how long the dependency stays down (or slow)
    after: float  # load after it returns: recovery is measured in here
    users: int
    think: float


SHORT = Timing(steady=1, outage=3, after=6, users=12, think=0.5)
# The short form (in `make test`) stops and starts every dependency; slowing them is in the
# full run only.
SHORT_PHASES = ["redis", "postgresql", "users", "auth", "openbao"]
FULL = Timing(steady=5, outage=15, after=10, users=30, think=0.8)


@dataclass
class Canary:
    """Tokens revoked before a fault: they must still be refused after it."""

    access: str  # revoked access token (jti deny-list)
    family_access: str  # access token whose refresh token was revoked (family marker)
    refresh: str  # that revoked refresh token
    ip: str  # the canary's own address: its requests count against no user's limits


@dataclass
class Row:
    dependency: str
    during: dict[str, int]
    recover_s: float | None
    lost: int
    revoked_still_refused: bool
    violations: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return (
            not self.violations
            and self.recover_s is not None
            and self.recover_s <= RECOVERY_BOUND
            and self.lost == 0
            and self.revoked_still_refused
        )


def _login(client: httpx.Client, u: VUser) -> dict[str, Any]:
    """Retrying 503s for a while: the previous fault may still be recovering."""
    form = {"grant_type": "password", "username": u.username, "password": u.password}
    deadline = time.monotonic() + 15
    while True:
        r = client.post("/v1/auth/token", data=form, headers={"X-Forwarded-For": u.ip})
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def make_canary(api: str, user: VUser) -> Canary:
    u = VUser(user.username, user.password, random_ip())
    with httpx.Client(base_url=api, timeout=10) as c:
        one, two = _login(c, u), _login(c, u)
        hdr = {"X-Forwarded-For": u.ip}
        for token, hint in ((one["access_token"], "access_token"), (two["refresh_token"], "")):
            r = c.post(
                "/v1/auth/revoke", data={"token": token, "token_type_hint": hint}, headers=hdr
            )
            r.raise_for_status()
    canary = Canary(one["access_token"], two["access_token"], two["refresh_token"], u.ip)
    if not canary_refused(api, canary, wait=10):
        raise RuntimeError("a revoked token was accepted before any fault")
    return canary


def canary_refused(api: str, canary: Canary, wait: float) -> bool:
    """All three refused (401 / invalid_grant); 503s meanwhile are retried for `wait` s."""
    deadline = time.monotonic() + wait
    with httpx.Client(base_url=api, timeout=HANG_BOUND) as c:
        hdr = {"X-Forwarded-For": canary.ip}
        pending = {"access", "family", "refresh"}
        while pending and time.monotonic() < deadline:
            for which in sorted(pending):
                if which == "refresh":
                    form = {"grant_type": "refresh_token", "refresh_token": canary.refresh}
                    r = c.post("/v1/auth/token", data=form, headers=hdr)
                    if r.status_code == 200:
                        return False
                    if r.status_code == 400 and r.json().get("error") == "invalid_grant":
                        pending.discard(which)
                    continue
                token = canary.access if which == "access" else canary.family_access
                r = c.get("/v1/items?limit=1", headers={**hdr, "Authorization": f"Bearer {token}"})
                if r.status_code == 200:
                    return False
                if r.status_code == 401:
                    pending.discard(which)
            if pending:
                time.sleep(0.3)
        return not pending


async def _fault(owned: OwnedStack, name: str, timing: Timing, load: MixedLoad) -> checks.Phase:
    api = owned.stack.config.api_url
    dep = owned.dependencies()[name]
    canary_user = load.users[0]
    canary = await asyncio.to_thread(make_canary, api, canary_user)
    await asyncio.sleep(timing.steady)
    phase = checks.Phase(name, down_at=time.monotonic())
    print(f"faults: {name}: down", flush=True)
    await asyncio.to_thread(dep.stop)
    await asyncio.sleep(timing.outage)
    await asyncio.to_thread(dep.start)
    phase.up_at = time.monotonic()
    print(f"faults: {name}: back after {phase.up_at - phase.down_at:.1f}s", flush=True)
    await asyncio.sleep(timing.after)
    phase.end_at = time.monotonic()
    phase.revoked_still_refused = await asyncio.to_thread(
        canary_refused, api, canary, RECOVERY_BOUND
    )
    return phase


async def run_faults(owned: OwnedStack, timing: Timing, only: list[str] | None = None) -> list[Row]:
    load = MixedLoad(owned.stack.config.api_url, timing.users, timing.think, HANG_BOUND + 4)
    await load.setup()
    runner = asyncio.create_task(load.run())
    phases: list[checks.Phase] = []
    try:
        for name in only or list(owned.dependencies()):
            phases.append(await _fault(owned, name, timing, load))
    finally:
        load.stop()
        await runner
        await load.close()
    records = load.records
    items = await asyncio.to_thread(
        checks.audit_items, owned.stack.config.api_url, load.users, records
    )
    rows = []
    for ph in phases:
        mine = ph.records(records)
        rows.append(
            Row(
                ph.dependency,
                dict(ph.during(records)),
                ph.recovery_seconds(records),
                checks.doubled_refreshes(mine) + checks.lost_refresh_answers(mine),
                bool(ph.revoked_still_refused),
                checks.violations(mine, HANG_BOUND),
            )
        )
    # Items are audited once, at the end, over every phase: a row of their own.
    rows.append(
        Row(
            f"items ({items.answered_201} answered 201)",
            {},
            0.0,
            items.missing + items.phantom,
            True,
            items.examples[:10],
        )
    )
    outside = [
        r for r in records if not any(p.down_at <= r.end and r.start < p.end_at for p in phases)
    ]
    steady = checks.violations(outside, HANG_BOUND) + [
        f"{r.op}: {checks.describe(r)} (no fault running)" for r in outside if not r.ok
    ]
    rows.append(Row("(steady load, no fault)", {}, 0.0, 0, True, sorted(set(steady))[:10]))
    return rows


def _during_text(during: dict[str, int]) -> str:
    total = sum(during.values()) or 1
    parts = sorted(during.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {100 * n // total}%" for k, n in parts) or "-"


def table(rows: list[Row]) -> str:
    lines = [
        "| dependency | answers during the fault | time to recover | lost "
        "| revoked stays revoked |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rec = "never" if r.recover_s is None else f"{r.recover_s:.1f} s"
        lines.append(
            f"| {r.dependency} | {_during_text(r.during)} | {rec} | {r.lost} | "
            f"{'yes' if r.revoked_still_refused else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bulwark-faults")
    parser.add_argument("--short", action="store_true", help="the short form `make test` runs")
    parser.add_argument("--out", type=Path, default=Path(".data/faults"))
    parser.add_argument("--only", action="append", help="one dependency (repeatable)")
    args = parser.parse_args(argv)
    timing = SHORT if args.short else FULL
    work = Path(tempfile.mkdtemp(prefix="bulwark-faults-"))
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with owned_stack(work) as owned:
            only = args.only or (SHORT_PHASES if args.short else None)
            rows = asyncio.run(run_faults(owned, timing, only))
    finally:
        if (work / "logs").exists():  # the services' logs, for a look at what happened
            shutil.rmtree(args.out / "logs", ignore_errors=True)
            shutil.copytree(work / "logs", args.out / "logs")
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faults.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    (args.out / "faults.md").write_text(table(rows) + "\n")
    print(table(rows))
    bad = [r for r in rows if not r.ok()]
    for r in bad:
        print(f"FAIL {r.dependency}: {r.violations[:5]}")
    print(f"faults: {'FAILED' if bad else 'all checks passed'} ({args.out / 'faults.json'})")
    raise SystemExit(1 if bad else 0)
