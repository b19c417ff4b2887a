"""Budgets of work in flight: body bytes being decoded, training values being held.

A request takes its share before the work starts and gives it back when done; a share that
does not fit beside the others is refused at once (503 with ``Retry-After``) rather than
queued, so memory stays bounded however many requests arrive. Thread-safe: shares are taken
in the event loop and in worker threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from api.errors import ProblemError
from shared.errors import problem_type

BUSY = problem_type("busy")
TOO_MUCH_WORK = problem_type("too-much-work")
RETRY_AFTER_SECONDS = 2


class WorkBudget:
    """``capacity`` units, shared by the requests in flight."""

    def __init__(self, capacity: int, *, unit: str, setting: str) -> None:
        self.capacity = capacity
        self.unit = unit
        self.setting = setting
        self.in_use = 0
        self._lock = threading.Lock()

    def take(self, amount: int) -> Share:
        """A share of ``amount``; 413 if it exceeds the whole budget, 503 if not free now."""
        if amount > self.capacity:
            raise ProblemError(
                413,
                f"the request needs {amount} {self.unit}; at most {self.capacity} may be in "
                f"flight ({self.setting}): split it into smaller requests",
                type_=TOO_MUCH_WORK,
            )
        share = self.try_take(amount)
        if share is None:
            raise ProblemError(
                503,
                f"the api holds as many {self.unit} as it may ({self.setting}); retry in "
                f"{RETRY_AFTER_SECONDS} s",
                type_=BUSY,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return share

    def try_take(self, amount: int) -> Share | None:
        """A share of ``amount`` if it fits beside the others now, else ``None`` (for a job
        that waits rather than being refused)."""
        with self._lock:
            if self.in_use + amount > self.capacity:
                return None
            self.in_use += amount
        return Share(self, amount)

    def _give(self, amount: int) -> None:
        with self._lock:
            self.in_use -= amount


@dataclass
class Share:
    """Taken from a :class:`WorkBudget`; :meth:`release` (idempotent) gives it back."""

    budget: WorkBudget
    amount: int
    _released: bool = field(default=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.budget._give(self.amount)
