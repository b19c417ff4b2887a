"""How ``evaluate --file`` splits a labelled history: a leading part to train on, the rest to
replay in time order, and the faults in it (pure: no I/O).

The records are put in time order first (a stable sort: one vehicle's records with equal
timestamps keep their order in the file). Then:

``--train-fraction F``  the records before the earliest time that has F of all records before it
                        (records sharing that time are replayed, so no instant is cut in two);
``--train-until TIME``  the records before TIME;
``--train-count N``     the first N records in time order.

A fault is a run of consecutive labelled records of one vehicle (in replay order) with the
same kind; it is caught when at least one of its records is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from cli.errors import UsageError

UNKNOWN_KIND = "labelled"  # the kind of a fault whose rows name none (no --kind-column)


@dataclass(frozen=True, slots=True)
class Split:
    """Indices into the records, each part in time order."""

    train: list[int]
    replay: list[int]
    how: str  # what the split was, for the report


def time_order(times: npt.NDArray[np.float64]) -> list[int]:
    """Record indices sorted by time; ties keep the file's order."""
    return [int(i) for i in np.argsort(times, kind="stable")]


def split(
    times: npt.NDArray[np.float64],
    *,
    fraction: float | None = None,
    until: datetime | None = None,
    count: int | None = None,
) -> Split:
    """The training and replay parts that the split flags ask for (all replayed without one)."""
    order = time_order(times)
    n = len(order)
    if fraction is not None:
        k = min(max(math.ceil(fraction * n), 1), n - 1) if n > 1 else 0
        cut = times[order[k]] if n else 0.0
        train = [i for i in order if times[i] < cut]
        how = f"--train-fraction {fraction:g}: the records before {_when(cut)}"
        flag = "--train-fraction"
    elif until is not None:
        cut = until.timestamp()
        train = [i for i in order if times[i] < cut]
        how = f"--train-until: the records before {_when(cut)}"
        flag = "--train-until"
    elif count is not None:
        train = order[:count]
        how = f"--train-count {count}: the first {count:,} records in time order"
        flag = "--train-count"
    else:
        return Split([], order, "none: every record replayed")
    chosen = set(train)
    replay = [i for i in order if i not in chosen]
    if not train:
        raise UsageError(f"{flag} leaves no record to train on")
    if not replay:
        raise UsageError(f"{flag} leaves no record to replay (all {n:,} are in the training part)")
    return Split(train, replay, how)


def _when(seconds: float) -> str:
    from datetime import UTC

    from shared.schemas import format_timestamp

    return format_timestamp(datetime.fromtimestamp(seconds, UTC))


def fault_runs(
    vehicles: Sequence[str], labels: Sequence[int], kinds: Sequence[str | None]
) -> list[int | None]:
    """Each record's fault number (from 1) or ``None``, for records in replay order."""
    current: dict[str, tuple[str, int]] = {}
    numbers: list[int | None] = []
    count = 0
    for vehicle, label, kind in zip(vehicles, labels, kinds, strict=True):
        if not label:
            current.pop(vehicle, None)
            numbers.append(None)
            continue
        name = kind or UNKNOWN_KIND
        running = current.get(vehicle)
        if running is None or running[0] != name:
            count += 1
            running = (name, count)
            current[vehicle] = running
        numbers.append(running[1])
    return numbers
