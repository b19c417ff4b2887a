"""A context verdict's attribution: which sensors drove it, and by which kind of evidence.

The forest isolates a record along its evidence (:data:`shared.context.kernel.KINDS` and their
maximum). Each evidence feature's isolation gain (:meth:`shared.forest.CompiledForest.
isolation_gains`) goes to the sensor that led that kind of evidence (the "strongest" feature's
to the sensor of the kind that was strongest); a sensor's share is its gains over the total.
The entries have the point models' shape (feature, name, share, value, direction, typical),
with ``evidence`` naming the kind that weighed most for that sensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.attribution import Reference
from shared.context.kernel import KINDS, N_KINDS

Matrix = npt.NDArray[np.float64]


def attribute(
    gains: Matrix,
    evidence: Matrix,
    lead: npt.NDArray[np.int64],
    values: Matrix,
    reference: Reference,
    top_k: int,
    names: Sequence[str] | None = None,
) -> list[list[dict[str, Any]]]:
    """The ``top_k`` sensors of each row by their share of its isolation gains."""
    n_sensors = values.shape[1]
    low, high = reference.low, reference.high
    ranges = low is not None and high is not None and len(high) == n_sensors
    out: list[list[dict[str, Any]]] = []
    for row in range(gains.shape[0]):
        per_sensor = np.zeros(n_sensors)
        per_kind = np.zeros((n_sensors, N_KINDS))
        strongest = int(np.argmax(evidence[row, :N_KINDS]))
        for kind in range(N_KINDS + 1):
            which = strongest if kind == N_KINDS else kind
            sensor = int(lead[row, which])
            per_sensor[sensor] += gains[row, kind]
            per_kind[sensor, which] += gains[row, kind]
        total = float(per_sensor.sum())
        ranked: list[dict[str, Any]] = []
        if top_k > 0 and total > 0:
            order = sorted(range(n_sensors), key=lambda s: -per_sensor[s])
            for sensor in order[:top_k]:
                share = round(float(per_sensor[sensor]) / total, 4)
                if not share > 0:
                    break
                value = float(values[row, sensor])
                entry: dict[str, Any] = {
                    "feature": sensor,
                    "share": share,
                    "value": value if math.isfinite(value) else None,
                    "direction": "within",
                    "typical": None,
                    "evidence": KINDS[int(np.argmax(per_kind[sensor]))],
                }
                if ranges:
                    lo, hi = low[sensor], high[sensor]  # type: ignore[index]  # ranges checked both
                    entry["direction"] = (
                        "above" if value > hi else "below" if value < lo else "within"
                    )
                    entry["typical"] = [lo, hi]
                if names is not None and sensor < len(names):
                    entry["name"] = names[sensor]
                ranked.append(entry)
        out.append(ranked)
    return out
