"""The short forms of `make soak` and `make faults`, on one stack whose PostgreSQL, Redis and
OpenBao this module owns (started as child processes, so they can be stopped and started):
two minutes of load at 60 % of measured capacity with every soak target asserted, then each
dependency stopped and started under load with every fault check asserted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulwark_devstack.faults import run as faults
from bulwark_devstack.faults.harness import OwnedStack, owned_stack
from bulwark_devstack.infra import MissingDependency
from bulwark_devstack.soak import run as soak


@pytest.fixture(scope="module")
def owned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnedStack]:
    try:
        with owned_stack(tmp_path_factory.mktemp("owned")) as stack:
            yield stack
    except MissingDependency as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.timeout(420)  # the stack's start (~1 min on a busy machine), then 2.5 min
def test_short_soak_meets_its_targets(owned: OwnedStack, tmp_path: Path) -> None:
    summary = asyncio.run(soak.soak(owned, soak.SHORT, tmp_path))
    soak.print_summary(summary)
    failing = [v for v in summary["verdicts"] if not v["ok"]]
    assert not failing, (failing, summary["error_lines"])
    assert summary["requests"] > 200
    for name in ("soak-resources.csv", "soak-latency.csv", *summary["plots"]):
        assert (tmp_path / name).stat().st_size > 0, name


@pytest.mark.timeout(360)
def test_short_fault_run_loses_nothing(owned: OwnedStack) -> None:
    rows = asyncio.run(faults.run_faults(owned, faults.SHORT, faults.SHORT_PHASES))
    table = faults.table(rows)
    print(table)
    assert [r.dependency for r in rows[: len(faults.SHORT_PHASES)]] == faults.SHORT_PHASES
    bad = {r.dependency: r.violations[:5] for r in rows if not r.ok()}
    assert not bad, f"{bad}\n{table}"
    # The outages were real: each stop/start fault produced documented refusals.
    for row in rows[:2]:  # redis, postgresql: every request needs them
        assert any(k.startswith("503") for k in row.during), (row.dependency, row.during)
