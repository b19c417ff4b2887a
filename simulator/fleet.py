"""The simulated fleet: its vehicles, their physics, the record stream and training histories.

Each vehicle's eight sensors are driven by one latent state, speed and engine load; a daily
pattern shapes the traffic and the ambient temperature (see the package's docstring).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from shared.schemas import format_timestamp
from simulator.faults import ALL_KINDS, Fault, FaultInjector, FaultKind
from simulator.records import SimRecord
from simulator.sensors import NON_NEGATIVE

_NOISE_PER_STEP = 9

HISTORY_RUN = 1_000_000  # the run number of a training history's first burst
HISTORY_BURSTS = 16  # bursts in a training history (see training_history)


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


def _traffic(hour: float) -> float:
    """Speed factor of the time of day: congestion at 8:30 and 17:30, free roads at night."""
    rush = math.exp(-(((hour - 8.5) / 1.3) ** 2)) + math.exp(-(((hour - 17.5) / 1.6) ** 2))
    night = 0.08 * math.cos(2 * math.pi * (hour - 3.0) / 24.0)
    return 1.0 - 0.25 * rush + night


def _ambient(hour: float) -> float:
    """Ambient temperature (°C): 15 ± 6, warmest at 15:00."""
    return 15.0 + 6.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


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
    fault: Fault | None = None


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
        self._injector = FaultInjector(
            np.random.default_rng(fault_seq), config.kinds, config.anomaly_rate
        )
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
        self.episodes: Counter[str] = self._injector.episodes  # fault episodes started, by kind

    # --- the stream --------------------------------------------------------------------------

    def __iter__(self) -> Iterator[SimRecord]:
        return self

    def __next__(self) -> SimRecord:
        vehicle = self.vehicles[self._next]
        offset = (self._round + vehicle.phase) * self.config.interval_seconds
        moment = self.config.start + timedelta(seconds=offset)
        reading = self._step(vehicle, moment)
        features, fault, episode = self._injector.inject(vehicle, reading)
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
            max(x, 0.0) if positive else x for x, positive in zip(values, NON_NEGATIVE, strict=True)
        ]


def training_history(
    vehicles: int,
    count: int,
    *,
    seed: int | None,
    end: datetime,
    days: float = 2.0,
    vehicle_prefix: str = "VH-",
    interval_seconds: float = 10.0,
    bursts: int = HISTORY_BURSTS,
) -> list[SimRecord]:
    """``count`` fault-free records of the fleet: bursts at the stream's cadence over ``days``.

    A context model judges a record in its vehicle's recent history, so it must learn from
    consecutive readings ``interval_seconds`` apart, as the stream sends them; spreading the
    bursts evenly over whole days lets it see the traffic and temperature of every part of
    the day. There are ``bursts`` of them (fewer when ``count`` is too small for a round of
    the fleet in each), about ``days / bursts`` apart, each a separate run of the fleet (its
    own noise); the last one ends at ``end``.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    if not interval_seconds > 0:
        raise ValueError(f"interval_seconds must be positive, not {interval_seconds}")
    span = days * 86400.0
    bursts = max(1, min(bursts, count // vehicles))
    sizes = [count // bursts + (1 if b < count % bursts else 0) for b in range(bursts)]
    longest = math.ceil(max(sizes) / vehicles) * interval_seconds
    gap = max(span / bursts, longest)  # bursts longer than their share follow each other
    # Each later day's bursts are shifted by a share of the gap, so that with a span of whole
    # days the bursts fall at different times of day (16 over two days: every 1.5 h).
    shift = gap / max(1, math.ceil(days))
    offsets = [b * gap + math.floor(b * gap / 86400.0) * shift for b in range(bursts)]
    first = end - timedelta(seconds=offsets[-1] + longest)
    records: list[SimRecord] = []
    for b, size in enumerate(sizes):
        config = SimulationConfig(
            vehicles=vehicles,
            anomaly_rate=0.0,
            seed=seed,
            start=first + timedelta(seconds=offsets[b]),
            interval_seconds=interval_seconds,
            vehicle_prefix=vehicle_prefix,
            run=HISTORY_RUN + b,
        )
        records.extend(FleetSimulator(config).take(size))
    return records
