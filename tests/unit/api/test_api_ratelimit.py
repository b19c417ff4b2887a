"""The token bucket on its own, with a fake clock."""

from __future__ import annotations

import pytest

from api.ratelimit import TokenBucketLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill() -> None:
    """A caller spends its burst, waits 1/rate for the next token, and refills up to the burst."""
    clock = Clock()
    limiter = TokenBucketLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    clock.now += 60
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") > 0


def test_callers_are_independent() -> None:
    """One caller's empty bucket does not limit another."""
    limiter = TokenBucketLimiter(rate=1.0, burst=1, clock=Clock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0
    assert limiter.acquire("b") == 0.0


def test_table_is_bounded() -> None:
    """Past max_callers the least recently seen caller is forgotten."""
    limiter = TokenBucketLimiter(rate=1.0, burst=1, max_callers=2, clock=Clock())
    for caller in ("a", "b", "c"):
        limiter.acquire(caller)
    assert len(limiter._buckets) == 2
    assert "a" not in limiter._buckets


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (0.99, 1), (1.0, 1), (1.01, 2), (9.5, 10)])
def test_retry_after_is_a_whole_second_at_least_one(wait: float, header: int) -> None:
    """Retry-After rounds the wait up to whole seconds, never below 1."""
    assert TokenBucketLimiter.retry_after(wait) == header


def test_bad_parameters() -> None:
    """A zero rate or an empty burst is refused."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucketLimiter(rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucketLimiter(rate=1, burst=0)
