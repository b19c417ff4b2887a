"""Per-caller token buckets: ``rate`` tokens a second, at most ``burst`` saved up.

A caller is an API key's identity (a hash, never the key) or, with auth disabled, the client
address. The buckets live in this process only (one worker per pod; behind several replicas
each allows the full rate). The table is bounded: the least recently seen caller is
forgotten first, which at worst gives that caller a full bucket again.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Not thread-safe on purpose: it is only used from the event loop, without awaiting."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_callers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, caller: str) -> float:
        """Take one token: ``0.0`` if there was one, else the seconds until there will be."""
        now = self._clock()
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = _Bucket(tokens=float(self.burst), updated=now)
            self._buckets[caller] = bucket
            while len(self._buckets) > self.max_callers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def wait(self, caller: str) -> float:
        """The seconds until ``caller`` has a token (``0.0``: it has one), taking none."""
        bucket = self._buckets.get(caller)
        if bucket is None:
            return 0.0
        elapsed = max(0.0, self._clock() - bucket.updated)
        tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def __bool__(self) -> bool:
        """Whether any caller has taken a token (until then every :meth:`wait` is ``0.0``)."""
        return bool(self._buckets)

    @staticmethod
    def retry_after(wait: float) -> int:
        """``Retry-After`` in whole seconds, at least 1."""
        return max(1, math.ceil(wait))
