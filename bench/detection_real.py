"""Real recordings for ``bench.detection``: loading, the split, and a seeded fault injector.

A recording (``var/realdata/csv/NAME.csv``, see docs/real-data.md) is split per vehicle: the
first half of each vehicle's records (by time) trains, the second half is replayed twice,
clean and with injected faults. Fault magnitudes are relative to each sensor's standard
deviation in the training half, so one injector serves every recording.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from shared.context import epoch_seconds
from simulator import ALL_KINDS, EPISODE_LENGTH, episode_start_probability, kind_weights

Matrix = npt.NDArray[np.float64]

NOT_SENSORS = {"vehicle_id", "timestamp", "label", "onground"}  # onground is a status flag
ALTITUDE_GLITCH_FT = 50_000.0  # adsb_fleet: transponder or decoding errors (docs/real-data.md)
# adsb_fleet: OpenSky repeats an aircraft's last state vector, every channel unchanged, until
# the aircraft times out (mostly at the end of a track, up to 434 rows); such a stretch of at
# least STALE_ROWS identical rows is the source's filler, not readings: all but its first row
# are dropped (docs/real-data.md).
STALE_SOURCES = {"adsb_fleet"}
STALE_ROWS = 30
# Magnitudes in training standard deviations: spike and drift offsets, noise's spread.
OFFSET_SD = (3.0, 6.0)
NOISE_SD = (1.0, 2.0)


@dataclass
class Recording:
    """One recording's rows in stream order (time, then file order)."""

    name: str
    sensors: list[str]
    vehicles: list[str]
    timestamps: list[str]
    times: Matrix
    X: Matrix
    source_label: npt.NDArray[np.int64]
    masked: int  # rows dropped as known glitches


def load(path: Path) -> Recording:
    """Read a real-data CSV; rows with a known glitch are dropped."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        sensors = [c for c in reader.fieldnames or () if c not in NOT_SENSORS]
        vehicles, stamps, rows, labels = [], [], [], []
        masked = 0
        for row in reader:
            values = [float(row[c]) for c in sensors]
            if "altitude_ft" in row and float(row["altitude_ft"]) > ALTITUDE_GLITCH_FT:
                masked += 1
                continue
            vehicles.append(row["vehicle_id"])
            stamps.append(row["timestamp"])
            rows.append(values)
            labels.append(int(row.get("label") or 0))
    times = epoch_seconds(stamps)
    X = np.asarray(rows, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    if path.stem in STALE_SOURCES:
        stale = _stale(vehicles, X, order)
        masked += int(stale.sum())
        order = order[~stale[order]]
    return Recording(
        name=path.stem,
        sensors=sensors,
        vehicles=[vehicles[i] for i in order],
        timestamps=[stamps[i] for i in order],
        times=times[order],
        X=X[order],
        source_label=np.asarray(labels, dtype=np.int64)[order],
        masked=masked,
    )


def _stale(vehicles: list[str], X: Matrix, order: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    """True for the repeats in stretches of at least ``STALE_ROWS`` identical rows of a vehicle,
    its rows taken in ``order`` (time order); the stretch's first row, the last real state, is
    kept."""
    rows: dict[str, list[int]] = {}
    for i in order.tolist():
        rows.setdefault(vehicles[i], []).append(i)
    stale = np.zeros(X.shape[0], dtype=bool)
    for found in rows.values():
        start = 0
        for k in range(1, len(found) + 1):
            if k < len(found) and np.array_equal(X[found[k]], X[found[k - 1]]):
                continue
            if k - start >= STALE_ROWS:
                stale[found[start + 1 : k]] = True
            start = k
    return stale


def first_half(recording: Recording) -> npt.NDArray[np.bool_]:
    """True for the first half (by time) of each vehicle's rows."""
    train = np.zeros(len(recording.vehicles), dtype=bool)
    rows: dict[str, list[int]] = {}
    for i, vehicle in enumerate(recording.vehicles):
        rows.setdefault(vehicle, []).append(i)
    for found in rows.values():
        train[found[: len(found) // 2]] = True
    return train


@dataclass
class Injected:
    """Replayed readings with their injected faults: per row, kind ('' when clean), episode."""

    X: Matrix
    kind: list[str]
    episode: list[int | None]


def inject(
    vehicles: list[str],
    X: Matrix,
    sd: Matrix,
    rate: float,
    seed: int,
    lengths: tuple[int, int] | None = None,
) -> Injected:
    """Faults of the five kinds on about ``rate`` of the rows, per vehicle, from ``seed``.

    With ``lengths`` (long faults), drift, stuck, dropout and noise only, each as likely,
    every fault from ``lengths[0]`` to ``lengths[1]`` rows long.
    """
    rng = np.random.default_rng(seed)
    if lengths is None:
        kinds = list(ALL_KINDS)
        cdf = np.cumsum(kind_weights(kinds))
        start = episode_start_probability(rate, kinds)
    else:
        kinds = [k for k in ALL_KINDS if k.value != "spike"]
        cdf = np.cumsum(np.full(len(kinds), 1.0 / len(kinds)))
        mean = (lengths[0] + lengths[1]) / 2.0
        start = rate / (mean * (1 - rate) + rate)
    out = X.copy()
    kind = [""] * X.shape[0]
    episode: list[int | None] = [None] * X.shape[0]
    rows: dict[str, list[int]] = {}
    for i, vehicle in enumerate(vehicles):
        rows.setdefault(vehicle, []).append(i)
    number = 0
    for found in rows.values():
        at = 1  # not on a vehicle's first row: a stuck sensor needs a reading to repeat
        while at < len(found):
            if rng.random() >= start:
                at += 1
                continue
            k = kinds[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(kinds) - 1)]
            lo, hi = EPISODE_LENGTH[k] if lengths is None else lengths
            length = int(rng.integers(lo, hi + 1))
            s = int(rng.integers(0, X.shape[1]))
            scale = float(sd[s]) if sd[s] > 0 else 1.0
            low, high = NOISE_SD if k.value == "noise" else OFFSET_SD
            size = scale * float(rng.uniform(low, high)) * (1.0 if rng.random() < 0.5 else -1.0)
            frozen = out[found[at - 1], s]
            number += 1
            span = found[at : at + length]
            for step, i in enumerate(span):
                if k.value == "spike":
                    out[i, s] = X[i, s] + size
                elif k.value == "drift":
                    out[i, s] = X[i, s] + size * (step + 1) / len(span)
                elif k.value == "stuck":
                    out[i, s] = frozen
                elif k.value == "dropout":
                    out[i, s] = 0.0
                else:
                    out[i, s] = X[i, s] + abs(size) * float(rng.normal())
                if out[i, s] != X[i, s]:  # a fault that changes nothing is no fault
                    kind[i], episode[i] = k.value, number
            at += len(span) + 1
    return Injected(out, kind, episode)
