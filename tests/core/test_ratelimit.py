"""The one rate limiter (core/ratelimit.py): token buckets per key, bounded in memory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from socialcard.core import ratelimit
from socialcard.core.config import get_settings
from socialcard.core.errors import TooManyRequests
from socialcard.core.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestTokenBuckets:
    def test_allows_a_burst_then_refuses_with_the_wait(self) -> None:
        clock = Clock()
        buckets = TokenBuckets(rate=2, burst=3, clock=clock)
        assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
        assert buckets.take("k") == pytest.approx(0.5)
        assert buckets.take("other") == 0.0  # keys are apart

    def test_refills_at_the_rate_up_to_the_burst(self) -> None:
        clock = Clock()
        buckets = TokenBuckets(rate=10, burst=2, clock=clock)
        buckets.take("k")
        buckets.take("k")
        clock.now += 0.1
        assert buckets.take("k") == 0.0
        assert buckets.take("k") > 0
        clock.now += 60
        assert [buckets.take("k") for _ in range(3)][:2] == [0.0, 0.0]

    def test_a_refused_request_is_not_charged(self) -> None:
        clock = Clock()
        buckets = TokenBuckets(rate=1, burst=1, clock=clock)
        buckets.take("k")
        for _ in range(5):
            assert buckets.take("k") == pytest.approx(1.0)
        clock.now += 1
        assert buckets.take("k") == 0.0

    def test_wait_does_not_charge_and_charge_always_does(self) -> None:
        clock = Clock()
        buckets = TokenBuckets(rate=1, burst=2, clock=clock)
        assert buckets.wait("k") == 0.0
        assert buckets.wait("k") == 0.0
        for _ in range(10):
            buckets.charge("k")
        # Debt is capped at one burst (-2): one token is back after 3 s.
        assert buckets.wait("k") == pytest.approx(3.0)
        clock.now += 3
        assert buckets.take("k") == 0.0

    def test_a_rate_of_zero_turns_it_off(self) -> None:
        buckets = TokenBuckets(rate=0, burst=1)
        assert all(buckets.take("k") == 0.0 for _ in range(1000))
        assert len(buckets) == 0

    def test_memory_stays_bounded_under_a_flood_of_new_keys(self) -> None:
        clock = Clock()
        buckets = TokenBuckets(rate=1, burst=5, max_keys=1000, clock=clock)
        for n in range(20_000):
            buckets.take(f"random-key-{n}")
        assert len(buckets) <= 1000
        # A key that is over its limit survives the sweeps of full buckets.
        for _ in range(5):
            buckets.take("busy")
        clock.now += 1_000  # every other bucket is full again
        buckets.take("new")
        assert len(buckets) <= 1000


@pytest.fixture
def tight_api_keys() -> Iterator[None]:
    os.environ["SOCIALCARD_LIMITS__API_KEY_RATE"] = "1"
    os.environ["SOCIALCARD_LIMITS__API_KEY_BURST"] = "2"
    get_settings.cache_clear()
    ratelimit.reset_limiters()
    try:
        yield
    finally:
        del os.environ["SOCIALCARD_LIMITS__API_KEY_RATE"]
        del os.environ["SOCIALCARD_LIMITS__API_KEY_BURST"]
        get_settings.cache_clear()
        ratelimit.reset_limiters()


class TestNamedLimiters:
    def test_read_their_rate_and_burst_from_the_settings(self, tight_api_keys: None) -> None:
        ratelimit.enforce("api_key", "7", what="API key")
        ratelimit.enforce("api_key", "7", what="API key")
        with pytest.raises(TooManyRequests) as refused:
            ratelimit.enforce("api_key", "7", what="API key")
        assert refused.value.status_code == 429
        assert refused.value.code == "rate_limited"
        assert refused.value.headers == {"Retry-After": "1"}

    def test_one_limiter_per_name_for_other_domains(self) -> None:
        cards = ratelimit.limiter("card", rate=1, burst=1)
        assert ratelimit.limiter("card") is cards
        assert cards.take("card-1") == 0.0
        assert cards.take("card-1") > 0
