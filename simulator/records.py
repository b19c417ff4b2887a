"""A simulated record with its ground truth, its wire format and its labelling headers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.sensors import N_FEATURES

LABEL_HEADER = "x-label"
INJECTED_HEADER = "x-injected"


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
        """The fault's kind (``spike``, ``drift``, ``stuck``, ``dropout``, ``noise``), or ``None``."""
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


def feature_matrix(records: Sequence[SimRecord]) -> npt.NDArray[np.float64]:
    """The records' features as an ``(n, 8)`` array."""
    return np.array([r.features for r in records], dtype=np.float64).reshape(-1, N_FEATURES)
