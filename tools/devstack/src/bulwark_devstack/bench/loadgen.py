"""HTTP load for the edge benchmark: `wrk` when it is on PATH, else a small asyncio
keep-alive HTTP/1.1 generator. One tool serves every target of a run, so the ratios between
targets stay meaningful even when the absolute numbers of the fallback are not."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

WRK_HINT = "install wrk (apt-get install wrk) for precise numbers"


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx answers and socket errors
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(latencies_s: list[float], seconds: float, errors: int) -> LoadResult:
    ordered = sorted(latencies_s)
    return LoadResult(
        requests_per_s=len(ordered) / seconds,
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        requests=len(ordered),
        errors=errors,
        seconds=seconds,
    )


def median_run(runs: list[LoadResult]) -> LoadResult:
    """The round with the median rate (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r.requests_per_s)[len(runs) // 2]


def round_ratios(num: list[LoadResult], den: list[LoadResult]) -> list[float]:
    """The rate ratio of each round, in round order."""
    return [n.requests_per_s / d.requests_per_s for n, d in zip(num, den, strict=True)]


def median_ratio(num: list[LoadResult], den: list[LoadResult]) -> float:
    """Median of the per-round rate ratios: the two runs of a round are seconds apart, so
    they share the machine's conditions; across rounds those conditions drift."""
    ratios = sorted(round_ratios(num, den))
    return ratios[len(ratios) // 2]


def wrk_path() -> str | None:
    return shutil.which("wrk")


class LoadGenerator:
    """Runs `seconds` of load with `connections` keep-alive connections against one URL."""

    def __init__(self, connections: int, *, force_python: bool = False) -> None:
        self.connections = connections
        self.wrk = None if force_python else wrk_path()

    @property
    def name(self) -> str:
        return "wrk" if self.wrk else "asyncio"

    def describe(self) -> str:
        if self.wrk:
            return f"wrk -t1 -c{self.connections}"
        return f"asyncio generator, {self.connections} connections"

    def run(
        self,
        url: str,
        headers: Mapping[str, str],
        seconds: float,
        *,
        body: bytes | None = None,
        rate: float | None = None,
    ) -> LoadResult:
        """GET (or POST `body`) as fast as the server answers, or paced at about `rate`
        requests/s in all (for latency at a given share of capacity)."""
        if self.wrk:
            wrk = self.wrk
            with tempfile.TemporaryDirectory(prefix="bulwark-wrk-") as tmp:
                script = Path(tmp) / "request.lua"

                def once(answer_ms: float, duration: float) -> LoadResult:
                    script.write_text(wrk_lua(body, rate, self.connections, answer_ms))
                    return run_wrk(wrk, url, headers, self.connections, duration, script=script)

                if rate is None:
                    return once(0.0, seconds)
                return paced(once, rate, self.connections, seconds)
        return run_async(http_load(url, headers, self.connections, seconds, body, rate))


# Seconds of each of the two passes that measure a paced run's answer time.
CALIBRATION_SECONDS = 2.0


def paced(
    run: Callable[[float, float], LoadResult], rate: float, connections: int, seconds: float
) -> LoadResult:
    """A wrk run at about `rate` requests/s. wrk's `delay` pauses a connection after each
    answer, so a pause of connections/rate alone gives less than `rate` (the answer's own
    time is part of every cycle: 637/s for a 934/s target, measured). Two short passes
    measure that time and the pause leaves it out. `run(answer_ms, seconds)`."""
    answer_ms = 0.0
    for _ in range(2):
        probe = run(answer_ms, CALIBRATION_SECONDS)
        if probe.requests_per_s <= 0:
            break
        pause_ms = max(0.0, 1000 * connections / rate - answer_ms)
        answer_ms = max(0.0, 1000 * connections / probe.requests_per_s - pause_ms)
    return run(answer_ms, seconds)


def wrk_lua(
    body: bytes | None, rate: float | None, connections: int, answer_ms: float = 0.0
) -> str:
    """A wrk script: POST with a JSON body, and/or a pause between a connection's requests
    so that all connections together send about `rate` per second, given that an answer
    takes `answer_ms` (see `paced`)."""
    lines = []
    if body is not None:
        literal = body.decode().replace("\\", "\\\\").replace('"', '\\"')
        lines += [
            'wrk.method = "POST"',
            f'wrk.body = "{literal}"',
            'wrk.headers["Content-Type"] = "application/json"',
        ]
    if rate is not None:
        pause = max(0.0, 1000 * connections / rate - answer_ms)
        lines += [f"function delay() return {pause:.3f} end"]
    return "\n".join(lines) + "\n"


# --- wrk ---------------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def run_wrk(
    wrk: str,
    url: str,
    headers: Mapping[str, str],
    connections: int,
    seconds: float,
    *,
    script: Path | None = None,
) -> LoadResult:
    # One wrk thread: one core for the load, the other for the server under test.
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    # A slow answer is a latency, not an error: wrk's default gives up after 2 s.
    cmd += ["--timeout", "10s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> LoadResult:
    def seconds_of(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+{_DURATION}\s*$", out, re.MULTILINE)
        if m is None:
            raise ValueError(f"no {label} in wrk output:\n{out}")
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    total = re.search(rf"^\s*(\d+) requests in {_DURATION}", out, re.MULTILINE)
    if rps is None or total is None:
        raise ValueError(f"unexpected wrk output:\n{out}")
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return LoadResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=seconds_of("50%") * 1000,
        p99_ms=seconds_of("99%") * 1000,
        requests=int(total.group(1)),
        errors=errors,
        seconds=float(total.group(2)) * _UNITS[total.group(3)],
    )


# --- asyncio fallback ----------------------------------------------------------------------


def run_async(coro: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    """uvloop when importable (uvicorn brings it): the generator should not be the limit."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


async def http_load(
    url: str,
    headers: Mapping[str, str],
    connections: int,
    seconds: float,
    body: bytes | None = None,
    rate: float | None = None,
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    method = "GET" if body is None else "POST"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    pause = connections / rate if rate else 0.0
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (started := time.perf_counter()) < stop_at:
                writer.write(request)
                status = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                if not 200 <= status < 400:
                    errors += 1
                if pause:
                    await asyncio.sleep(pause)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return summarize(latencies, time.perf_counter() - began, errors)


async def read_response(reader: asyncio.StreamReader) -> int:
    """Status of one response whose body is framed by Content-Length (uvicorn's JSON)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length is None:
        raise RuntimeError("response without Content-Length: the generator cannot frame it")
    await reader.readexactly(length)
    return status
