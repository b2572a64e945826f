"""Fixed-window request limits per key (card, kiosk, client address), in process.

One small function, `hit`, so the shared limiter can replace it without touching callers.
"""

from __future__ import annotations

import threading
import time

from socialcard.card.errors import RateLimited

_WINDOW = 60.0
_counts: dict[str, tuple[float, int]] = {}
_lock = threading.Lock()


def hit(key: str, *, limit: int, window: float = _WINDOW, now: float | None = None) -> None:
    """Count one request under `key`; RateLimited (429) past `limit` within the window."""
    now = time.monotonic() if now is None else now
    with _lock:
        start, count = _counts.get(key, (now, 0))
        if now - start >= window:
            start, count = now, 0
        count += 1
        _counts[key] = (start, count)
        if len(_counts) > 100_000:  # forget finished windows so the table stays small
            for stale in [k for k, (s, _) in _counts.items() if now - s >= window]:
                del _counts[stale]
    if count > limit:
        raise RateLimited(f"too many requests; try again within {int(window)} seconds")


def reset() -> None:
    """Forget every count (tests)."""
    with _lock:
        _counts.clear()
