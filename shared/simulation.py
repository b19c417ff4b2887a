"""A synthetic vehicle fleet: realistic telemetry with labelled, injected sensor faults.

Pure computation (no I/O, no clock): the caller gives the start time and the seed, so a run
is reproducible, and the command-line tool, the tests and the benchmarks share one model.

Each vehicle has its own baselines (cruise speed, gearing, engine temperature offset, oil
pressure offset, battery, fuel efficiency, vibration). Its eight sensors are driven by one
latent state, speed and engine load, so they are correlated the way real ones are: rpm and
fuel rate follow speed and load, engine and coolant temperature follow load through a thermal
lag, oil pressure follows rpm and falls as the oil warms, the battery sags under load,
vibration grows with rpm and speed. A daily pattern shapes the traffic (slower at the 8:30
and 17:30 rush hours, faster at night) and the ambient temperature (15 ± 6 °C, warmest at
15:00), which warms the engine and nudges the battery voltage.

Faults are *sensor* faults: they change what one sensor reports, never the vehicle's true
state. Three kinds, each accounting for about a third of the faulty records:

``spike``  one record with one sensor far off (5 to 9 typical fleet deviations);
``drift``  one sensor's reading drifts away linearly, to 5-9 deviations, over 6 to 20 records;
``stuck``  one sensor repeats its last reading for 6 to 20 records.

Every record that a fault touched carries it (``SimRecord.fault``, e.g. ``"drift:oil_pressure"``)
and only those: ``label`` is 1 exactly for them. The physics and the faults draw from separate
random streams, so a seed with ``anomaly_rate=0`` gives the same readings as with faults,
except on the faulted records.

    sim = FleetSimulator(SimulationConfig(vehicles=20, anomaly_rate=0.02, seed=7, start=now))
    for record in sim.take(1000): ...
    history = training_history(vehicles=20, count=5000, seed=7, end=now)   # fault-free
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.schemas import format_timestamp

#: The sensors, in ``feature_vector`` order.
FEATURES: tuple[str, ...] = (
    "speed",  # km/h
    "rpm",  # 1/min
    "engine_temp",  # °C
    "coolant_temp",  # °C
    "oil_pressure",  # kPa
    "battery_voltage",  # V
    "fuel_rate",  # L/h
    "vibration",  # g (RMS)
)
UNITS: dict[str, str] = {
    "speed": "km/h",
    "rpm": "1/min",
    "engine_temp": "°C",
    "coolant_temp": "°C",
    "oil_pressure": "kPa",
    "battery_voltage": "V",
    "fuel_rate": "L/h",
    "vibration": "g",
}
N_FEATURES = len(FEATURES)
# A typical deviation of each sensor across the fleet: the unit of fault magnitudes.
SCALES: tuple[float, ...] = (20.0, 500.0, 5.0, 5.0, 30.0, 0.3, 6.0, 0.05)
# Sensors that cannot read below zero.
_NON_NEGATIVE: tuple[bool, ...] = (True, True, False, False, True, True, True, True)
_NOISE_PER_STEP = 9

HISTORY_RUN = 1_000_000  # the run number of training histories

LABEL_HEADER = "x-label"
INJECTED_HEADER = "x-injected"


class FaultKind(StrEnum):
    """The kinds of injected sensor fault."""

    SPIKE = "spike"
    DRIFT = "drift"
    STUCK = "stuck"


ALL_KINDS: tuple[FaultKind, ...] = tuple(FaultKind)
# Episode lengths (records of the vehicle), inclusive bounds.
EPISODE_LENGTH: dict[FaultKind, tuple[int, int]] = {
    FaultKind.SPIKE: (1, 1),
    FaultKind.DRIFT: (6, 20),
    FaultKind.STUCK: (6, 20),
}


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One simulated telemetry record and its ground truth."""

    vehicle_id: str
    timestamp: str
    features: tuple[float, ...]
    fault: str | None = None  # "<kind>:<sensor>" when a fault touched this record
    episode: int | None = None  # which fault (numbered from 1 in a run), when one touched it

    @property
    def label(self) -> int:
        """1 for a record with an injected fault, else 0."""
        return 0 if self.fault is None else 1

    @property
    def kind(self) -> str | None:
        """The fault's kind (``spike``, ``drift``, ``stuck``), or ``None``."""
        return None if self.fault is None else self.fault.split(":", 1)[0]

    def to_record(self) -> dict[str, Any]:
        """The wire format of a telemetry record (without the label)."""
        return {
            "vehicle_id": self.vehicle_id,
            "timestamp": self.timestamp,
            "feature_vector": list(self.features),
        }

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers that label the record: ``x-label`` 1/0, ``x-injected`` kind:sensor."""
        headers = [(LABEL_HEADER, str(self.label).encode())]
        if self.fault is not None:
            headers.append((INJECTED_HEADER, self.fault.encode()))
        return headers


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``interval_seconds`` is the simulated time between two records of one
    vehicle; the vehicles report in turn, evenly spread over the interval."""

    vehicles: int = 20
    anomaly_rate: float = 0.0
    seed: int | None = None
    start: datetime = field(default_factory=lambda: datetime(2024, 1, 15, tzinfo=UTC))
    interval_seconds: float = 10.0
    kinds: Sequence[FaultKind] = ALL_KINDS
    vehicle_prefix: str = "VH-"
    run: int = 0  # another run of the same fleet (same vehicles, other noise and faults)

    def __post_init__(self) -> None:
        if not 1 <= self.vehicles <= 100_000:
            raise ValueError(f"vehicles must be between 1 and 100000, not {self.vehicles}")
        if not 0.0 <= self.anomaly_rate < 1.0:
            raise ValueError(f"anomaly_rate must be in [0, 1), not {self.anomaly_rate}")
        if not self.interval_seconds > 0:
            raise ValueError(f"interval_seconds must be positive, not {self.interval_seconds}")
        if self.anomaly_rate > 0 and not self.kinds:
            raise ValueError("kinds must name at least one fault kind when anomaly_rate > 0")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")


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


def _traffic(hour: float) -> float:
    """Speed factor of the time of day: congestion at 8:30 and 17:30, free roads at night."""
    rush = math.exp(-(((hour - 8.5) / 1.3) ** 2)) + math.exp(-(((hour - 17.5) / 1.6) ** 2))
    night = 0.08 * math.cos(2 * math.pi * (hour - 3.0) / 24.0)
    return 1.0 - 0.25 * rush + night


def _ambient(hour: float) -> float:
    """Ambient temperature (°C): 15 ± 6, warmest at 15:00."""
    return 15.0 + 6.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


@dataclass
class _Fault:
    kind: FaultKind
    sensor: int
    length: int
    number: int
    done: int = 0
    magnitude: float = 0.0  # spike: signed offset; drift: signed final offset
    frozen: float = 0.0  # stuck: the value it repeats


@dataclass
class _Vehicle:
    vehicle_id: str
    phase: float  # its offset inside the reporting interval, in [0, 1)
    cruise: float
    rpm_per_kmh: float
    idle_rpm: float
    payload: float
    temp_offset: float
    oil_offset: float
    battery: float
    efficiency: float
    vibration: float
    # the true state
    started: bool = False
    speed: float = 0.0
    load_noise: float = 0.0
    engine_temp: float = 0.0
    last_reading: list[float] | None = None
    fault: _Fault | None = None


class FleetSimulator:
    """An endless, reproducible stream of :class:`SimRecord` for a fleet."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        root = np.random.SeedSequence(config.seed)
        # The fleet comes from the seed alone; the run (physics noise and faults) from the seed
        # and ``run``, so a training history and a stream of one fleet do not share noise.
        fleet_seq = np.random.SeedSequence(root.entropy, spawn_key=(0,))
        run_seq = np.random.SeedSequence(root.entropy, spawn_key=(1, config.run))
        physics_seq, fault_seq = run_seq.spawn(2)
        # Vehicles depend on the seed and their index only: a history and a stream with the
        # same seed describe the same fleet, whatever their lengths.
        fleet = np.random.default_rng(fleet_seq)
        self._physics = np.random.default_rng(physics_seq)
        self._faults = np.random.default_rng(fault_seq)
        self._kinds = tuple(dict.fromkeys(FaultKind(k) for k in config.kinds))
        self._kind_cdf = np.cumsum(kind_weights(self._kinds)) if self._kinds else np.empty(0)
        self._fault_start = episode_start_probability(config.anomaly_rate, self._kinds)
        width = max(3, len(str(config.vehicles)))
        self.vehicles: list[_Vehicle] = []
        for i in range(config.vehicles):
            vehicle = _Vehicle(
                vehicle_id=f"{config.vehicle_prefix}{i + 1:0{width}d}",
                phase=i / config.vehicles,
                cruise=float(fleet.uniform(55.0, 95.0)),
                rpm_per_kmh=float(fleet.uniform(17.0, 24.0)),
                idle_rpm=float(fleet.uniform(650.0, 850.0)),
                payload=float(fleet.uniform(0.0, 0.25)),
                temp_offset=float(fleet.normal(0.0, 2.5)),
                oil_offset=float(fleet.normal(0.0, 12.0)),
                battery=float(fleet.uniform(13.6, 14.3)),
                efficiency=float(fleet.uniform(0.85, 1.15)),
                vibration=float(fleet.uniform(0.07, 0.14)),
            )
            self.vehicles.append(vehicle)
        dt = config.interval_seconds
        self._keep = (math.exp(-dt / 90.0), math.exp(-dt / 150.0), math.exp(-dt / 240.0))
        self._noise_block: list[float] = []
        self._noise_at = 0
        self._round = 0
        self._next = 0
        self.sent = 0
        self.injected: Counter[str] = Counter()  # faulty records by kind
        self.episodes: Counter[str] = Counter()  # fault episodes started, by kind

    # --- the stream --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[SimRecord]:
        return self

    def __next__(self) -> SimRecord:
        vehicle = self.vehicles[self._next]
        offset = (self._round + vehicle.phase) * self.config.interval_seconds
        moment = self.config.start + timedelta(seconds=offset)
        reading = self._step(vehicle, moment)
        features, fault, episode = self._inject(vehicle, reading)
        vehicle.last_reading = features
        self._next += 1
        if self._next == len(self.vehicles):
            self._next = 0
            self._round += 1
        self.sent += 1
        if fault is not None:
            self.injected[fault.split(":", 1)[0]] += 1
        return SimRecord(
            vehicle.vehicle_id,
            format_timestamp(moment),
            tuple([round(v, 4) for v in features]),
            fault,
            episode,
        )

    def take(self, count: int) -> list[SimRecord]:
        """The next ``count`` records."""
        return [next(self) for _ in range(count)]

    # --- physics -----------------------------------------------------------------------------

    def _noise(self) -> list[float]:
        """Nine standard normal draws (drawn from numpy in blocks: far faster per record)."""
        if self._noise_at + _NOISE_PER_STEP > len(self._noise_block):
            self._noise_block = self._physics.normal(size=_NOISE_PER_STEP * 2048).tolist()
            self._noise_at = 0
        at = self._noise_at
        self._noise_at = at + _NOISE_PER_STEP
        return self._noise_block[at : at + _NOISE_PER_STEP]

    def _step(self, v: _Vehicle, moment: datetime) -> list[float]:
        """Advance one vehicle's true state by one interval and return its true readings."""
        hour = moment.hour + moment.minute / 60.0 + moment.second / 3600.0
        n = self._noise()
        # The first step draws from the steady state, so a stream has no start-up transient.
        keep_speed, keep_load, keep_temp = self._keep if v.started else (0.0, 0.0, 0.0)
        # speed: mean-reverting (time constant 90 s) towards the traffic-shaped cruise speed
        target = v.cruise * _traffic(hour)
        spread = math.sqrt(1.0 - keep_speed * keep_speed)
        v.speed = max(target + keep_speed * (v.speed - target) + spread * 12.0 * n[0], 0.0)
        # load: speed, payload and a slowly varying road grade (time constant 150 s)
        spread = math.sqrt(1.0 - keep_load * keep_load)
        v.load_noise = keep_load * v.load_noise + spread * 0.15 * n[1]
        load = min(max(0.15 + 0.45 * v.speed / 100.0 + v.payload + v.load_noise, 0.0), 1.0)
        ambient = _ambient(hour)
        # engine temperature: thermal lag (time constant 240 s) towards a load-driven level
        level = 84.0 + 12.0 * load + 0.25 * (ambient - 15.0) + v.temp_offset
        v.engine_temp = level + keep_temp * (v.engine_temp - level)
        v.started = True
        engine_temp = v.engine_temp + 0.6 * n[2]
        rpm = v.idle_rpm + v.rpm_per_kmh * v.speed + 700.0 * load + 60.0 * n[3]
        coolant = engine_temp - 5.0 - 3.0 * (1.0 - load) + 0.5 * n[4]
        oil = 110.0 + 0.085 * rpm - 0.9 * (engine_temp - 90.0) + v.oil_offset + 6.0 * n[5]
        battery = v.battery - 0.3 * load + 0.012 * (ambient - 15.0) + 0.04 * n[6]
        fuel = 1.0 + 0.2 * v.speed * (0.35 + load) * v.efficiency + 0.5 * n[7]
        vibration = v.vibration + 0.00003 * rpm + 0.0006 * v.speed + 0.012 * n[8]
        values = [v.speed, rpm, engine_temp, coolant, oil, battery, fuel, vibration]
        return [
            max(x, 0.0) if positive else x
            for x, positive in zip(values, _NON_NEGATIVE, strict=True)
        ]

    # --- faults ------------------------------------------------------------------------------

    def _inject(
        self, v: _Vehicle, reading: list[float]
    ) -> tuple[list[float], str | None, int | None]:
        """Apply the vehicle's running fault (or start one) to its readings."""
        if v.fault is None and self._fault_start > 0:
            draw = self._faults.random(6).tolist()  # always six draws: the stream stays aligned
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
        else:
            out[s] = fault.frozen
        if _NON_NEGATIVE[s]:
            out[s] = max(out[s], 0.0)
        fault.done += 1
        if fault.done >= fault.length:
            v.fault = None
        return out, f"{fault.kind.value}:{FEATURES[s]}", fault.number

    def _new_fault(self, v: _Vehicle, reading: list[float], draw: list[float]) -> _Fault:
        kind = self._kinds[
            min(int(np.searchsorted(self._kind_cdf, draw[0], side="right")), len(self._kinds) - 1)
        ]
        sensor = min(int(draw[1] * N_FEATURES), N_FEATURES - 1)
        lo, hi = EPISODE_LENGTH[kind]
        length = lo + min(int(draw[2] * (hi - lo + 1)), hi - lo)
        size = SCALES[sensor] * (5.0 + 4.0 * draw[3])
        # up or down; a sensor that cannot go far enough below zero goes up
        sign = 1.0 if draw[4] < 0.5 else -1.0
        if _NON_NEGATIVE[sensor] and reading[sensor] - size < 0:
            sign = 1.0
        self.episodes[kind.value] += 1
        frozen = v.last_reading[sensor] if v.last_reading is not None else reading[sensor]
        number = sum(self.episodes.values())
        return _Fault(kind, sensor, length, number, magnitude=sign * size, frozen=frozen)


def training_history(
    vehicles: int,
    count: int,
    *,
    seed: int | None,
    end: datetime,
    days: float = 2.0,
    vehicle_prefix: str = "VH-",
) -> list[SimRecord]:
    """``count`` fault-free records of the fleet, spread over the ``days`` before ``end``.

    Spanning whole days lets a model see every hour's traffic and temperature.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    rounds = max(1, math.ceil(count / vehicles))
    interval = days * 86400.0 / rounds
    start = end - timedelta(seconds=interval * rounds)
    config = SimulationConfig(
        vehicles=vehicles,
        anomaly_rate=0.0,
        seed=seed,
        start=start,
        interval_seconds=interval,
        vehicle_prefix=vehicle_prefix,
        run=HISTORY_RUN,
    )
    return FleetSimulator(config).take(count)


def feature_matrix(records: Sequence[SimRecord]) -> npt.NDArray[np.float64]:
    """The records' features as an ``(n, 8)`` array."""
    return np.array([r.features for r in records], dtype=np.float64).reshape(-1, N_FEATURES)
