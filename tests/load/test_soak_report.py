"""The soak's trend verdict, on made-up records (pure logic): a p99 that doubles while the
machine kept its speed is a trend; the same doubling while a fixed piece of work also ran
twice as slow (a neighbour on this shared VM) is the machine, not the services."""

from __future__ import annotations

from bulwark_devstack.faults.load import Record
from bulwark_devstack.soak import report


def _records(seconds: int, latency: float, later_latency: float) -> list[Record]:
    """20 reads a second; from half-way on, each takes `later_latency` and the rise is
    gradual over the second half (a trend, not a hump)."""
    out = []
    for i in range(seconds * 20):
        t = i / 20
        frac = max(0.0, (t - seconds / 2) / (seconds / 2))
        took = latency + frac * (later_latency - latency)
        out.append(Record("read", "u", t, t + took, 200, "ok"))
    return out


def _probes(seconds: int, first: float, last: float) -> list[tuple[float, float]]:
    return [(i / 4, first if i / 4 < seconds / 2 else last) for i in range(seconds * 4)]


def test_a_doubling_p99_on_a_steady_machine_is_a_trend() -> None:
    records = _records(90, 0.040, 0.120)
    verdict = report.p99_trend(records, "read", 0.0, 90.0, 10.0, slowdown=1.0)
    assert not verdict.ok, verdict


def test_the_same_rise_on_a_machine_as_much_slower_is_not() -> None:
    records = _records(90, 0.040, 0.120)
    slowdown = report.machine_slowdown(_probes(90, 0.001, 0.0025), 0.0, 90.0)
    assert slowdown == 2.5
    verdict = report.p99_trend(records, "read", 0.0, 90.0, 10.0, slowdown)
    assert verdict.ok, verdict
    assert "machine x2.50" in verdict.detail


def test_a_faster_machine_never_tightens_the_target() -> None:
    records = _records(90, 0.040, 0.070)  # 1.5x + 20 ms allows 80 ms
    assert report.p99_trend(records, "read", 0.0, 90.0, 10.0, slowdown=0.5).ok


def test_too_few_probes_say_nothing() -> None:
    assert report.machine_slowdown(_probes(2, 0.001, 0.01), 0.0, 2.0) == 1.0
