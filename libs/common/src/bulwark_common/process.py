"""Process-wide runtime settings every service applies the same way."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once start-up is done. Everything built so far lives as long as the process:
    move it out of the cyclic GC's sight, so collections while serving only walk request
    garbage (measured on api: p99 latency ~110 ms -> ~25 ms under load)."""
    gc.collect()
    gc.freeze()
