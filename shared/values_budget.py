"""What a topic job holds of the training-values budget, and how it waits for its share.

The budget itself is the api's (``api.budget.WorkBudget``); the core sees it through
:class:`ValuesBudget`. ``POST /ingest`` takes its share while reading its body and is refused
when it does not fit; a topic job learns its size only once its records are decoded, and
waits instead.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shared.errors import TooManyRecordsError

VALUES_POLL_SECONDS = 0.5  # how often a job waiting for training values asks again


class Releasable(Protocol):
    """A share of a budget, given back once."""

    def release(self) -> None: ...


class ValuesBudget(Protocol):
    """Records x features that trainings may hold at once (the api's ``WorkBudget``)."""

    capacity: int
    setting: str

    def try_take(self, amount: int) -> Releasable | None:
        """A share of ``amount``, or ``None`` when it does not fit beside the others now."""
        ...


def values_needed(budget: ValuesBudget, features: npt.NDArray[np.float64]) -> int:
    """The decoded matrix's records x features; :class:`TooManyRecordsError` when that is
    more than the whole budget."""
    records, width = features.shape
    amount = int(records * width)
    if amount > budget.capacity:
        raise TooManyRecordsError(
            f"the job's {records} records x {width} features are {amount} values; at most "
            f"{budget.capacity} may be held for training ({budget.setting}): narrow the range"
        )
    return amount


async def wait_for_values(budget: ValuesBudget, amount: int) -> Releasable:
    """A share of ``amount`` once it fits (the caller bounds the wait). Polled: the budget is
    shared with worker threads, not with this event loop."""
    share = budget.try_take(amount)
    while share is None:
        await asyncio.sleep(VALUES_POLL_SECONDS)
        share = budget.try_take(amount)
    return share
