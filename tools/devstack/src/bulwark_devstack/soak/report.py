"""The soak's raw CSV, its plots (matplotlib) and the targets it asserts:
- RSS after warm-up grows < 10 % (median of the last 3 samples vs the first 3 after it);
- no upward p99 trend, per endpoint: an upward trend is p99 of the last third of the run
  (after warm-up) above 1.5x that of the first third plus 20 ms, *and* the p99 of
  successive windows rising together with time (Spearman rank correlation >= 0.7). A leak
  or a growing queue shows both; a neighbour's burst on this shared machine shows only the
  first (a hump, not a trend). A neighbour's load that starts and stays shows both, so the
  1.5x is scaled by how much slower the machine itself got between the thirds (a fixed
  piece of work timed beside the load, `MachineProbe`): judged as a ratio within the run;
- zero 5xx (and no request without an answer);
- zero ERROR log lines from the services during the soak."""

from __future__ import annotations

import csv
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from bulwark_devstack.bench.loadgen import percentile
from bulwark_devstack.faults.load import Record
from bulwark_devstack.soak.sampler import Sample

RSS_GROWTH = 0.10
P99_FACTOR, P99_SLACK_S = 1.5, 0.020
TREND_CORRELATION = 0.7
RESOURCES = ("rss_mb", "cpu_pct", "fds", "db_connections")


@dataclass(frozen=True)
class Verdict:
    target: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Window:
    t: float  # window start, seconds since the soak began
    op: str
    n: int
    p50_ms: float
    p99_ms: float
    errors_5xx: int


def latency_windows(records: list[Record], began: float, width: float) -> list[Window]:
    out: list[Window] = []
    by_key: dict[tuple[int, str], list[Record]] = {}
    for r in records:
        by_key.setdefault((int((r.start - began) // width), r.op), []).append(r)
    for (idx, op), recs in sorted(by_key.items()):
        lat = sorted(r.end - r.start for r in recs)
        errors = sum(1 for r in recs if r.status >= 500 or r.status == 0)
        out.append(
            Window(idx * width, op, len(recs), round(percentile(lat, 50) * 1000, 1),
                   round(percentile(lat, 99) * 1000, 1), errors)
        )  # fmt: skip
    return out


def write_csv(path: Path, rows: list[Sample] | list[Window]) -> None:
    dicts = [asdict(r) for r in rows]
    if not rows:
        return
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(dicts[0]))
        writer.writeheader()
        writer.writerows(dicts)


def plot(out: Path, samples: list[Sample], windows: list[Window], title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    services = sorted({s.service for s in samples})
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    labels = {"rss_mb": "RSS (MiB)", "cpu_pct": "CPU (% of a core)", "fds": "open fds",
              "db_connections": "PostgreSQL connections"}  # fmt: skip
    for ax, field in zip(axes.flat, RESOURCES, strict=True):
        for svc in services:
            mine = [s for s in samples if s.service == svc]
            ax.plot([s.t / 60 for s in mine], [getattr(s, field) for s in mine], label=svc)
        ax.set_title(labels[field])
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    fig.suptitle(f"{title}: resources per service")
    fig.tight_layout()
    resources = out / "soak-resources.png"
    fig.savefig(resources, dpi=80)
    plt.close(fig)

    ops = sorted({w.op for w in windows})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharex=True)
    for ax, field in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for op in ops:
            of_op = [w for w in windows if w.op == op]
            ax.plot([w.t / 60 for w in of_op], [getattr(w, field) for w in of_op], label=op)
        ax.set_title(field.replace("_ms", " (ms)"))
        ax.set_xlabel("minutes")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{title}: latency per endpoint")
    fig.tight_layout()
    latency = out / "soak-latency.png"
    fig.savefig(latency, dpi=80)
    plt.close(fig)
    return [resources, latency]


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    for rank, i in enumerate(order):
        ranks[i] = float(rank)
    return ranks


def rank_correlation(xs: list[float], ys: list[float]) -> float:
    """Spearman's rho (ties broken by order; 0 when undefined)."""
    if len(xs) < 3:
        return 0.0
    try:
        return statistics.correlation(_ranks(xs), _ranks(ys))
    except statistics.StatisticsError:
        return 0.0


def thirds(
    timed: list[tuple[float, float]], t0: float, t1: float
) -> tuple[list[float], list[float]]:
    """The values of (time, value) pairs timed in the first and in the last third of [t0, t1]
    (the two parts every trend verdict compares)."""
    third = (t1 - t0) / 3
    first = [v for t, v in timed if t0 <= t < t0 + third]
    last = [v for t, v in timed if t >= t1 - third]
    return first, last


def machine_slowdown(probes: list[tuple[float, float]], t0: float, t1: float) -> float:
    """How much slower the fixed work ran in the last third than in the first (median; 1.0
    with too few probes to say)."""
    first, last = thirds(probes, t0, t1)
    if min(len(first), len(last)) < 10:
        return 1.0
    return statistics.median(last) / statistics.median(first)


def p99_trend(
    records: list[Record], op: str, t0: float, t1: float, width: float, slowdown: float = 1.0
) -> Verdict:
    mine = [r for r in records if r.op == op]
    first, last = thirds([(r.start, r.end - r.start) for r in mine], t0, t1)
    if min(len(first), len(last)) < 20:
        return Verdict(f"p99 {op}", True, "too few requests to judge")
    a, b = percentile(sorted(first), 99), percentile(sorted(last), 99)
    windows: dict[int, list[float]] = {}
    for r in mine:
        windows.setdefault(int((r.start - t0) // width), []).append(r.end - r.start)
    idx = sorted(windows)
    rho = rank_correlation(
        [float(i) for i in idx], [percentile(sorted(windows[i]), 99) for i in idx]
    )
    # Only ever looser: a machine that got faster does not tighten the target.
    rising = b > P99_FACTOR * max(1.0, slowdown) * a + P99_SLACK_S and rho >= TREND_CORRELATION
    detail = (
        f"first third {a * 1000:.0f} ms, last third {b * 1000:.0f} ms, rank corr. {rho:+.2f}, "
        f"machine x{slowdown:.2f}"
    )
    return Verdict(f"p99 {op}", not rising, detail)


def evaluate(
    samples: list[Sample],
    records: list[Record],
    began: float,
    warmup: float,
    error_lines: int,
    window: float,
    probes: list[tuple[float, float]] | None = None,
) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for svc in sorted({s.service for s in samples}):
        after = [s.rss_mb for s in samples if s.service == svc and s.t >= warmup]
        if len(after) < 6:
            verdicts.append(Verdict(f"rss {svc}", False, f"only {len(after)} samples"))
            continue
        base, end = statistics.median(after[:3]), statistics.median(after[-3:])
        growth = end / base - 1
        verdicts.append(
            Verdict(f"rss {svc}", growth < RSS_GROWTH,
                    f"{base:.1f} -> {end:.1f} MiB ({100 * growth:+.1f} %, limit +10 %)")
        )  # fmt: skip
    steady = [r for r in records if r.start - began >= warmup]
    if steady:
        t0, t1 = min(r.start for r in steady), max(r.start for r in steady)
        slowdown = machine_slowdown(probes or [], t0, t1)
        for op in sorted({r.op for r in steady}):
            verdicts.append(p99_trend(steady, op, t0, t1, window, slowdown))
    fives = sum(1 for r in records if r.status >= 500 or r.status == 0)
    verdicts.append(Verdict("zero 5xx", fives == 0, f"{fives} of {len(records)} requests"))
    verdicts.append(Verdict("zero ERROR log lines", error_lines == 0, f"{error_lines} lines"))
    return verdicts
