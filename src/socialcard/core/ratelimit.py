"""Rate limits: token buckets keyed by a string (an API key, a terminal, an address, a card).

One small limiter for every caller: a bucket per key holds up to `burst` tokens and refills at
`rate` tokens a second; a request takes one (or `cost`) and is refused while the bucket is
empty, with the seconds until it would be allowed (the `Retry-After` of the 429).

The buckets live in this process (uvicorn's workers each keep their own, so a limit holds per
worker). `Limiter` is the interface a shared store would implement; `limiter(name)` gives the
process's named limiter with the rate and burst of `SOCIALCARD_LIMITS__*` (or those given),
so the domains ask for `limiter("api_key")`, `limiter("terminal")`, `limiter("card")` and
read the same settings model.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from socialcard.core.errors import TooManyRequests


class Limiter(Protocol):
    """What the domains need of a limiter (an in-process one, or one over a shared store)."""

    def take(self, key: str, cost: float = 1.0) -> float:
        """Charge `cost` to `key`: 0.0 when allowed, else the seconds to wait (not charged)."""
        ...

    def wait(self, key: str, cost: float = 1.0) -> float:
        """The seconds until `key` could spend `cost` (0.0: now), charging nothing."""
        ...

    def charge(self, key: str, cost: float = 1.0) -> None:
        """Spend `cost` whatever is left (a failure that already happened is counted)."""
        ...


class TokenBuckets:
    """In-process token buckets, thread-safe, with a bounded number of keys.

    >>> clock = iter([0.0, 0.0, 0.0, 0.5]).__next__
    >>> buckets = TokenBuckets(rate=2, burst=2, clock=clock)
    >>> buckets.take("a"), buckets.take("a"), buckets.take("a")
    (0.0, 0.0, 0.5)
    >>> buckets.take("a")  # half a second later one token is back
    0.0
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate, max(burst, 1.0), max_keys, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """A rate of zero or less turns the limit off."""
        return self.rate > 0

    def _level(self, key: str, now: float) -> float:
        found = self._buckets.get(key)
        if found is None:
            return self.burst
        tokens, at = found
        return min(self.burst, tokens + (now - at) * self.rate)

    def _wait(self, level: float, cost: float) -> float:
        # A hair of tolerance: refills computed from float clock differences fall short by
        # 1e-15 where a whole token is due.
        return 0.0 if level >= cost - 1e-9 else (cost - level) / self.rate

    def take(self, key: str, cost: float = 1.0) -> float:
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self.clock()
            level = self._level(key, now)
            wait = self._wait(level, cost)
            if wait == 0.0:
                self._store(key, level - cost, now)
            return wait

    def wait(self, key: str, cost: float = 1.0) -> float:
        if not self.enabled or key not in self._buckets:
            return 0.0
        with self._lock:
            return self._wait(self._level(key, self.clock()), cost)

    def charge(self, key: str, cost: float = 1.0) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
            # Never below one burst of debt: a client that stops is allowed again in time.
            self._store(key, max(self._level(key, now) - cost, -self.burst), now)

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._evict(now)
        self._buckets[key] = (tokens, now)

    def _evict(self, now: float) -> None:
        # A full bucket holds no information: forget those first, then the oldest keys, so
        # that a flood of new keys (random API keys, spoofed ids) cannot grow memory.
        full = [k for k in self._buckets if self._level(k, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            for key in list(self._buckets)[: max(1, self.max_keys // 10)]:
                del self._buckets[key]

    def reset(self) -> None:
        """Forget every bucket (tests)."""
        with self._lock:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


_limiters: dict[str, TokenBuckets] = {}
_limiters_lock = threading.Lock()


def limiter(name: str, *, rate: float | None = None, burst: float | None = None) -> TokenBuckets:
    """The process's limiter called `name`; its rate and burst come from the settings
    (`limits.<name>_rate` / `limits.<name>_burst`) unless given on first use."""
    found = _limiters.get(name)
    if found is not None:
        return found
    with _limiters_lock:
        if name not in _limiters:
            from socialcard.core.config import get_settings

            limits = get_settings().limits
            _limiters[name] = TokenBuckets(
                rate=rate if rate is not None else float(getattr(limits, f"{name}_rate")),
                burst=burst if burst is not None else float(getattr(limits, f"{name}_burst")),
            )
        return _limiters[name]


def reset_limiters() -> None:
    """Drop every named limiter, so the next use reads the settings again (tests)."""
    with _limiters_lock:
        _limiters.clear()


def enforce(name: str, key: str, *, what: str, cost: float = 1.0) -> None:
    """TooManyRequests (429 with Retry-After) when `key` is over the `name` limit."""
    wait = limiter(name).take(key, cost)
    if wait > 0:
        raise TooManyRequests(
            f"too many requests for this {what}; retry in {math.ceil(wait)} s", retry_after=wait
        )
