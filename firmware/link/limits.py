"""Rate limits for the command path: token buckets and a log limiter.

A flood of bad commands must cost the unit a bounded amount of CPU, memory, network and log:
refusal replies and log lines are rate limited (the refusals are still counted in metrics),
so the one legitimate command behind them is answered at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``take()`` is True when one was left."""

    def __init__(
        self, rate: float, burst: float, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.burst, self.now = float(rate), float(burst), now
        self._tokens = float(burst)
        self._at = now()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            t = self.now()
            self._tokens = min(self.burst, self._tokens + (t - self._at) * self.rate)
            self._at = t
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class KeyedBuckets:
    """One token bucket per key (a refusal code, a source); the keys are a fixed small set,
    so the dict stays bounded (unknown keys share one ``"other"`` bucket past ``max_keys``)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 32) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> bool:
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= self.max_keys:
                    key = "other"
                b = self._buckets.setdefault(key, TokenBucket(self.rate, self.burst))
        return b.take()


class LogLimiter:
    """At most ``burst`` lines per key, then one summary line per ``interval_s`` saying how
    many similar lines were suppressed (so a flood writes a few lines, not 27,000)."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0, burst: int = 5) -> None:
        self.logger, self.interval_s, self.burst = logger, interval_s, burst
        self._state: dict[str, list[float]] = {}  # key -> [window start, lines, suppressed]
        self._lock = threading.Lock()

    def log(self, level: int, key: str, msg: str, *args: object) -> None:
        if not self.logger.isEnabledFor(level):
            return
        now = time.monotonic()
        summary = None
        with self._lock:
            st = self._state.get(key)
            if st is None:
                if len(self._state) >= 64:
                    key, st = "other", self._state.setdefault("other", [now, 0, 0])
                else:
                    st = self._state.setdefault(key, [now, 0, 0])
            if now - st[0] >= self.interval_s:
                if st[2]:
                    summary = (key, int(st[2]), now - st[0])
                st[:] = [now, 0, 0]
            if st[1] < self.burst:
                st[1] += 1
                emit = True
            else:
                st[2] += 1
                emit = False
        if summary is not None:
            self.logger.log(
                level, "link: %d more %s line(s) suppressed in the last %.0f s", *summary
            )
        if emit:
            self.logger.log(level, msg, *args)
