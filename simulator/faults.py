"""Injected sensor faults: their kinds, episode lengths, how often they start, how they apply.

Faults are *sensor* faults: they change what one sensor reports, never the vehicle's true
state. Each kind accounts for about the same share of the faulty records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from simulator.sensors import FEATURES, N_FEATURES, NON_NEGATIVE, SCALES


class FaultKind(StrEnum):
    """The kinds of injected sensor fault."""

    SPIKE = "spike"
    DRIFT = "drift"
    STUCK = "stuck"
    DROPOUT = "dropout"
    NOISE = "noise"


ALL_KINDS: tuple[FaultKind, ...] = tuple(FaultKind)
# Episode lengths (records of the vehicle), inclusive bounds.
EPISODE_LENGTH: dict[FaultKind, tuple[int, int]] = {
    FaultKind.SPIKE: (1, 1),
    FaultKind.DRIFT: (6, 20),
    FaultKind.STUCK: (6, 20),
    FaultKind.DROPOUT: (6, 20),
    FaultKind.NOISE: (6, 20),
}
# Magnitudes, in typical fleet deviations (SCALES): spike and drift offsets, noise's spread.
OFFSET_SIZE = (5.0, 9.0)
NOISE_SIZE = (2.0, 4.0)


def episode_start_probability(anomaly_rate: float, kinds: Sequence[FaultKind]) -> float:
    """The per-record chance of starting a fault so that ``anomaly_rate`` of records are faulty.

    A vehicle alternates healthy stretches (a fault starts with probability q per record) and
    episodes of mean length L, so the faulty share is qL / (1 + qL - q); solve for q. Kinds are
    drawn in inverse proportion to their mean length (see :func:`kind_weights`), so that each
    kind accounts for the same share of faulty records; L is then len(kinds) / sum(1 / L_k).
    """
    if anomaly_rate <= 0 or not kinds:
        return 0.0
    mean_length = len(kinds) / sum(1.0 / _mean_length(k) for k in kinds)
    f = anomaly_rate
    return f / (mean_length * (1 - f) + f)


def _mean_length(kind: FaultKind) -> float:
    lo, hi = EPISODE_LENGTH[kind]
    return (lo + hi) / 2.0


def kind_weights(kinds: Sequence[FaultKind]) -> npt.NDArray[np.float64]:
    """The chance of each kind when a fault starts: short kinds start more often, so that
    every kind accounts for about the same number of faulty records."""
    inverse = np.array([1.0 / _mean_length(k) for k in kinds], dtype=np.float64)
    weights: npt.NDArray[np.float64] = inverse / inverse.sum()
    return weights


@dataclass
class Fault:
    """A running fault episode of one vehicle."""

    kind: FaultKind
    sensor: int
    length: int
    number: int
    done: int = 0
    magnitude: float = 0.0  # spike: signed offset; drift: signed final offset
    frozen: float = 0.0  # stuck: the value it repeats
    noise: tuple[float, ...] = ()  # noise: the offset added to each of its records


class FaultTarget(Protocol):
    """What the injector reads and sets on a vehicle: its running fault and last reading."""

    fault: Fault | None
    last_reading: list[float] | None


class FaultInjector:
    """Starts, applies and ends the fault episodes of a fleet, from its own random stream."""

    def __init__(
        self, rng: np.random.Generator, kinds: Sequence[FaultKind], anomaly_rate: float
    ) -> None:
        self._rng = rng
        self._kinds = tuple(dict.fromkeys(FaultKind(k) for k in kinds))
        self._kind_cdf = np.cumsum(kind_weights(self._kinds)) if self._kinds else np.empty(0)
        self._fault_start = episode_start_probability(anomaly_rate, self._kinds)
        self.episodes: Counter[str] = Counter()  # fault episodes started, by kind

    def inject(
        self, v: FaultTarget, reading: list[float]
    ) -> tuple[list[float], str | None, int | None]:
        """Apply the vehicle's running fault (or start one) to its readings."""
        if v.fault is None and self._fault_start > 0:
            draw = self._rng.random(6).tolist()  # always six draws: the stream stays aligned
            # not on a vehicle's first record: a stuck sensor needs a reading to repeat
            if draw[0] < self._fault_start and v.last_reading is not None:
                v.fault = self._new_fault(v, reading, draw[1:])
        fault = v.fault
        if fault is None:
            return reading, None, None
        out = list(reading)
        s = fault.sensor
        if fault.kind is FaultKind.SPIKE:
            out[s] = reading[s] + fault.magnitude
        elif fault.kind is FaultKind.DRIFT:
            out[s] = reading[s] + fault.magnitude * (fault.done + 1) / fault.length
        elif fault.kind is FaultKind.STUCK:
            out[s] = fault.frozen
        elif fault.kind is FaultKind.DROPOUT:
            out[s] = 0.0
        else:
            out[s] = reading[s] + fault.noise[fault.done]
        if NON_NEGATIVE[s]:
            out[s] = max(out[s], 0.0)
        fault.done += 1
        if fault.done >= fault.length:
            v.fault = None
        return out, f"{fault.kind.value}:{FEATURES[s]}", fault.number

    def _new_fault(self, v: FaultTarget, reading: list[float], draw: list[float]) -> Fault:
        kind = self._kinds[
            min(int(np.searchsorted(self._kind_cdf, draw[0], side="right")), len(self._kinds) - 1)
        ]
        sensor = min(int(draw[1] * N_FEATURES), N_FEATURES - 1)
        lo, hi = EPISODE_LENGTH[kind]
        length = lo + min(int(draw[2] * (hi - lo + 1)), hi - lo)
        lo_size, hi_size = NOISE_SIZE if kind is FaultKind.NOISE else OFFSET_SIZE
        size = SCALES[sensor] * (lo_size + (hi_size - lo_size) * draw[3])
        # up or down; a sensor that cannot go far enough below zero goes up
        sign = 1.0 if draw[4] < 0.5 else -1.0
        if NON_NEGATIVE[sensor] and reading[sensor] - size < 0:
            sign = 1.0
        self.episodes[kind.value] += 1
        frozen = v.last_reading[sensor] if v.last_reading is not None else reading[sensor]
        number = sum(self.episodes.values())
        # a loose connector's noise: drawn now, from the fault stream, for the whole episode
        noise = (
            tuple(self._rng.normal(0.0, size, size=length).tolist())
            if kind is FaultKind.NOISE
            else ()
        )
        return Fault(
            kind, sensor, length, number, magnitude=sign * size, frozen=frozen, noise=noise
        )
