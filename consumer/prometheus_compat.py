"""Every prometheus_client internal the worker relies on, behind one door.

prometheus_client has no bulk ``observe``; :meth:`consumer.metrics.WorkerMetrics.observe_many`
adds a batch's counts to a histogram's buckets and sum directly, which needs three private
attributes of a labelled-out ``Histogram``. ``tests/unit/consumer/test_compat.py`` covers
them and fails on the first release that changes them; the range in ``pyproject.toml`` is
pinned to the minor it passed on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import Histogram


def histogram_bounds(histogram: Histogram) -> Sequence[float]:
    """The upper bounds ``observe`` walks, ``+Inf`` last (``Histogram._upper_bounds``)."""
    bounds: Sequence[float] = histogram._upper_bounds
    return bounds


def histogram_buckets(histogram: Histogram) -> Sequence[Any]:
    """One counter per bound, each with ``inc(amount)`` (``Histogram._buckets``)."""
    buckets: Sequence[Any] = histogram._buckets
    return buckets


def histogram_sum(histogram: Histogram) -> Any:
    """The running sum, with ``inc(amount)`` (``Histogram._sum``)."""
    return histogram._sum
