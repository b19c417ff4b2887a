"""The simulated fleet (simulator/): reproducible, correlated, honestly labelled."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from shared.schemas import TelemetryRecord, parse_timestamp
from simulator import (
    EPISODE_LENGTH,
    FEATURES,
    INJECTED_HEADER,
    LABEL_HEADER,
    SCALES,
    FaultKind,
    FleetSimulator,
    SimRecord,
    SimulationConfig,
    episode_start_probability,
    feature_matrix,
    training_history,
)

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
COL = {name: i for i, name in enumerate(FEATURES)}


def simulate(count: int, **options: object) -> list[SimRecord]:
    config = SimulationConfig(**{"vehicles": 10, "seed": 3, "start": START, **options})  # type: ignore[arg-type]  # the options are its fields
    return FleetSimulator(config).take(count)


def test_same_seed_same_records() -> None:
    """Two simulators with one seed produce identical records, faults included."""
    assert simulate(2000, anomaly_rate=0.05) == simulate(2000, anomaly_rate=0.05)


def test_other_seed_other_records() -> None:
    """Another seed gives another fleet and other readings."""
    a = feature_matrix(simulate(200, seed=1))
    b = feature_matrix(simulate(200, seed=2))
    assert not np.allclose(a, b)


def test_history_and_stream_share_the_fleet_not_the_noise() -> None:
    """A training history and a stream of one seed describe the same vehicles with other noise."""
    stream = simulate(4000, vehicles=4, seed=11)
    history = training_history(4, 4000, seed=11, end=START)
    assert {r.vehicle_id for r in stream} == {r.vehicle_id for r in history}
    by_vehicle_stream = {
        v: np.mean([r.features[COL["battery_voltage"]] for r in stream if r.vehicle_id == v])
        for v in {r.vehicle_id for r in stream}
    }
    by_vehicle_history = {
        v: np.mean([r.features[COL["battery_voltage"]] for r in history if r.vehicle_id == v])
        for v in by_vehicle_stream
    }
    # each vehicle keeps its own battery baseline (they differ by up to 0.7 V across the fleet)
    for vehicle, level in by_vehicle_stream.items():
        assert abs(level - by_vehicle_history[vehicle]) < 0.12
    assert feature_matrix(stream)[:10].tolist() != feature_matrix(history)[:10].tolist()


def test_records_follow_the_wire_format() -> None:
    """Every record validates as a TelemetryRecord, keyed by vehicle, timestamps in order."""
    records = simulate(500, anomaly_rate=0.1)
    moments = [parse_timestamp(r.timestamp) for r in records]
    assert moments == sorted(moments)
    assert moments[0] == START
    for record in records:
        TelemetryRecord.model_validate(record.to_record())
        assert len(record.features) == len(FEATURES) == 8
        assert all(math.isfinite(v) for v in record.features)
    assert len({r.vehicle_id for r in records}) == 10


def test_each_vehicle_reports_once_per_interval() -> None:
    """A vehicle's consecutive records are ``interval_seconds`` of simulated time apart."""
    records = simulate(100, vehicles=5, interval_seconds=30.0)
    first = [parse_timestamp(r.timestamp) for r in records if r.vehicle_id == records[0].vehicle_id]
    assert all(b - a == timedelta(seconds=30) for a, b in itertools.pairwise(first))


def test_sensors_are_correlated_through_speed_and_load() -> None:
    """Speed drives rpm, oil pressure, fuel rate and vibration; engine and coolant move together."""
    x = feature_matrix(training_history(20, 6000, seed=5, end=START))
    corr: np.ndarray = np.corrcoef(x.T)  # type: ignore[assignment]  # a matrix for several rows

    def c(a: str, b: str) -> float:
        return float(corr[COL[a], COL[b]])

    assert c("speed", "rpm") > 0.8
    assert c("rpm", "oil_pressure") > 0.7
    assert c("speed", "fuel_rate") > 0.7
    assert c("rpm", "vibration") > 0.5
    assert c("engine_temp", "coolant_temp") > 0.9
    assert c("rpm", "battery_voltage") < -0.1  # the battery sags under load


def test_daily_pattern_slows_rush_hour_traffic() -> None:
    """Mean speed around the 17:30 rush hour is lower than in the small hours of the night."""
    history = training_history(20, 20000, seed=2, end=START, days=4)
    speed: dict[str, list[float]] = {"night": [], "rush": []}
    for record in history:
        hour = parse_timestamp(record.timestamp).hour
        part = "night" if 1 <= hour <= 4 else "rush" if 16 <= hour <= 18 else None
        if part is not None:
            speed[part].append(record.features[COL["speed"]])
    assert speed["night"] and speed["rush"]
    assert np.mean(speed["rush"]) < np.mean(speed["night"]) - 5


def test_training_history_is_bursts_at_the_stream_cadence() -> None:
    """A history is clean bursts of consecutive records ``interval`` apart, spread over the days."""
    history = training_history(20, 10000, seed=7, end=START, interval_seconds=10.0)
    assert len(history) == 10000 and all(r.label == 0 for r in history)
    moments = [parse_timestamp(r.timestamp) for r in history]
    assert START - timedelta(days=2) <= min(moments) and max(moments) < START
    steps: Counter[float] = Counter()
    burst_starts = [moments[0]]
    last: dict[str, datetime] = {}
    for record, moment in zip(history, moments, strict=True):
        before = last.get(record.vehicle_id)
        if before is not None:
            step = (moment - before).total_seconds()
            steps[step == 10.0] += 1
            if step > 3600 and record.vehicle_id == history[0].vehicle_id:
                burst_starts.append(moment)
        last[record.vehicle_id] = moment
    # within a burst every step is the interval; between bursts hours pass (16 bursts: 15 gaps)
    assert steps[False] == 15 * 20
    assert len(burst_starts) == 16
    assert max(moments) - min(moments) > timedelta(hours=44)
    assert len({m.hour for m in burst_starts}) >= 12  # the bursts fall at many times of day
    # each burst is its own run of the fleet: two bursts' first readings differ
    per_burst = [r for r, m in zip(history, moments, strict=True) if m in burst_starts[:2]]
    assert per_burst[0].features != per_burst[1].features


def test_labels_match_exactly_the_records_faults_changed() -> None:
    """With and without faults one seed gives the same readings, except exactly the labelled ones."""
    clean = simulate(10000, anomaly_rate=0.0)
    faulty = simulate(10000, anomaly_rate=0.05)
    changed = {
        i for i, (a, b) in enumerate(zip(clean, faulty, strict=True)) if a.features != b.features
    }
    labelled = {i for i, r in enumerate(faulty) if r.label == 1}
    assert labelled and changed == labelled
    for i in labelled:
        kind, sensor = faulty[i].fault.split(":")  # type: ignore[union-attr]  # labelled: it has one
        differs = [FEATURES[j] for j in range(8) if clean[i].features[j] != faulty[i].features[j]]
        assert differs == [sensor], (i, kind, differs)
    assert all(r.fault is None and r.label == 0 for r in clean)


def test_labels_travel_in_headers() -> None:
    """x-label is 1/0 and x-injected names kind:sensor, only on faulty records."""
    records = simulate(3000, anomaly_rate=0.05)
    for record in records:
        headers = dict(record.headers())
        assert headers[LABEL_HEADER] == str(record.label).encode()
        if record.label:
            kind, sensor = headers[INJECTED_HEADER].decode().split(":")
            assert kind in {k.value for k in FaultKind} and sensor in FEATURES
        else:
            assert INJECTED_HEADER not in headers


@pytest.mark.parametrize(("rate", "count"), [(0.01, 100_000), (0.02, 50_000), (0.1, 20_000)])
def test_anomaly_share_is_close_to_the_requested_rate(rate: float, count: int) -> None:
    """The share of faulty records is within 20% of the requested rate (about 1,000 faulty)."""
    records = simulate(count, vehicles=20, anomaly_rate=rate, seed=8)
    share = sum(r.label for r in records) / len(records)
    assert share == pytest.approx(rate, rel=0.2)


def test_kinds_share_the_faulty_records() -> None:
    """Each of the five kinds accounts for roughly a fifth of the faulty records."""
    records = simulate(60000, vehicles=20, anomaly_rate=0.05, seed=4)
    kinds = Counter(r.kind for r in records if r.label)
    total = sum(kinds.values())
    assert len(FaultKind) == 5
    for kind in FaultKind:
        assert 0.12 < kinds[kind.value] / total < 0.3, kinds


def test_only_the_chosen_kinds_are_injected() -> None:
    """kinds=[spike] injects spikes only, one record each."""
    sim = FleetSimulator(
        SimulationConfig(
            vehicles=5, seed=1, start=START, anomaly_rate=0.05, kinds=[FaultKind.SPIKE]
        )
    )
    records = sim.take(5000)
    assert {r.kind for r in records if r.label} == {"spike"}
    assert sim.episodes["spike"] == sim.injected["spike"] == sum(r.label for r in records)


def test_faults_have_their_shape() -> None:
    """Spikes last one record; drifts grow, stuck sensors repeat, dropouts read 0, noise jitters."""
    clean = simulate(15000, anomaly_rate=0.0, vehicles=4, seed=9)
    faulty = simulate(15000, anomaly_rate=0.04, vehicles=4, seed=9)
    episodes: dict[int, list[int]] = {}
    for i, record in enumerate(faulty):
        if record.episode is not None:
            episodes.setdefault(record.episode, []).append(i)
    assert sorted(episodes) == list(range(1, len(episodes) + 1))
    seen: Counter[str] = Counter()
    for indices in episodes.values():
        first = faulty[indices[0]]
        assert {faulty[i].fault for i in indices} == {first.fault}
        assert {faulty[i].vehicle_id for i in indices} == {first.vehicle_id}
        kind, sensor = first.fault.split(":")  # type: ignore[union-attr]  # an episode has a fault
        j = COL[sensor]
        seen[kind] += 1
        lo, hi = EPISODE_LENGTH[FaultKind(kind)]
        assert lo <= len(indices) <= hi
        if kind == "stuck":
            assert len({faulty[i].features[j] for i in indices}) == 1
        elif kind == "dropout":
            assert {faulty[i].features[j] for i in indices} == {0.0}
        elif kind == "noise":
            offsets = [faulty[i].features[j] - clean[i].features[j] for i in indices]
            assert len(set(offsets)) == len(offsets)  # a new draw on every record
            assert np.std(offsets) > 0.5 * SCALES[j]
        elif kind == "drift":
            offsets = [abs(faulty[i].features[j] - clean[i].features[j]) for i in indices]
            assert offsets[-1] > offsets[0]
    assert set(seen) == {k.value for k in FaultKind}


def test_start_probability_solves_for_the_share() -> None:
    """episode_start_probability inverts the expected share of faulty records."""
    assert episode_start_probability(0.0, list(FaultKind)) == 0.0
    q = episode_start_probability(0.02, [FaultKind.SPIKE])
    assert q == pytest.approx(0.02)  # one-record episodes: q is the share itself


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vehicles": 0}, "vehicles"),
        ({"anomaly_rate": 1.0}, "anomaly_rate"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"anomaly_rate": 0.1, "kinds": []}, "kinds"),
        ({"start": datetime(2025, 1, 1)}, "timezone"),
    ],
)
def test_bad_configurations_are_refused(options: dict[str, Any], message: str) -> None:
    """A bad configuration raises ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        SimulationConfig(**options)
