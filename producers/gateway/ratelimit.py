"""Per-caller rate limits: a token bucket for each calling system."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """`rate` leads per second on average, bursts up to `burst`; `take` says how long to wait when refused."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, max(burst, 1.0), clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str, cost: float = 1.0) -> float:
        """0.0 when allowed (and charged); otherwise the seconds until `cost` would be allowed."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if cost > self.burst:
                self._buckets[caller] = (tokens, now)
                return max(1.0, (cost - tokens) / self.rate)
            if tokens >= cost:
                self._buckets[caller] = (tokens - cost, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (cost - tokens) / self.rate
