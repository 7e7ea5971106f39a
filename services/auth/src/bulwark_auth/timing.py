"""A refusal that would answer faster than a password check tells an attacker which it was
(an account in backoff is one that exists). This keeps the typical duration of the check,
so such refusals can take as long."""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque

from bulwark_common import deadlines


class TypicalLatency:
    def __init__(self, samples: int = 64) -> None:
        self._samples: deque[float] = deque(maxlen=samples)
        self._lock = threading.Lock()

    def record(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)

    def typical(self) -> float:
        """The median of the recent durations (0 before any)."""
        with self._lock:
            return statistics.median(self._samples) if self._samples else 0.0

    def imitate(self) -> None:
        """Take as long as the check typically does, within the caller's deadline."""
        left = deadlines.remaining()
        delay = self.typical() if left is None else min(self.typical(), max(0.0, left))
        time.sleep(delay)
