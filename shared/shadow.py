"""Shadow scoring: how a candidate model's verdicts would differ from the active model's.

The worker scores every record with both models and keeps, per (candidate, active) pair:
the records compared, each model's anomalies, the verdicts that flip each way, and the latest
``sample`` pairs of scores (for the rank correlation). Counts from several workers add up;
the samples are pooled. :func:`report` turns them into the agreement figures that
``GET /models/{candidate}/shadow`` answers.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.verdicts import anomalous

Matrix = npt.NDArray[np.float64]


@dataclass(slots=True)
class ShadowStats:
    """Agreement counters of one candidate against one active version."""

    candidate: str
    active: str
    sample_size: int = 10_000
    records: int = 0
    active_anomalies: int = 0
    candidate_anomalies: int = 0
    flips_to_anomaly: int = 0  # normal for the active model, anomalous for the candidate
    flips_to_normal: int = 0
    _pairs: Matrix = field(default_factory=lambda: np.empty((0, 2)))
    _next: int = 0  # ring position once the sample is full

    def observe(self, active: Matrix, candidate: Matrix) -> None:
        active_flag = anomalous(active)
        candidate_flag = anomalous(candidate)
        self.records += active.shape[0]
        self.active_anomalies += int(active_flag.sum())
        self.candidate_anomalies += int(candidate_flag.sum())
        self.flips_to_anomaly += int((candidate_flag & ~active_flag).sum())
        self.flips_to_normal += int((active_flag & ~candidate_flag).sum())
        pairs = np.column_stack((active, candidate))[-self.sample_size :]
        room = self.sample_size - self._pairs.shape[0]
        if room > 0:
            self._pairs = np.concatenate((self._pairs, pairs[:room]))
            pairs = pairs[room:]
        if pairs.shape[0]:  # the sample is full: overwrite the oldest pairs
            slots = (self._next + np.arange(pairs.shape[0])) % self.sample_size
            self._pairs[slots] = pairs
            self._next = int(slots[-1] + 1) % self.sample_size

    @property
    def pairs(self) -> Matrix:
        return self._pairs

    def to_payload(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "active": self.active,
            "records": self.records,
            "active_anomalies": self.active_anomalies,
            "candidate_anomalies": self.candidate_anomalies,
            "flips_to_anomaly": self.flips_to_anomaly,
            "flips_to_normal": self.flips_to_normal,
            # float64 little-endian, base64: exact and a third the size of JSON numbers
            "pairs": base64.b64encode(self._pairs.astype("<f8").tobytes()).decode(),
        }


def pairs_from_payload(payload: Mapping[str, Any]) -> Matrix:
    raw = base64.b64decode(payload.get("pairs") or "")
    return np.frombuffer(raw, dtype="<f8").reshape(-1, 2).astype(np.float64)


def spearman(pairs: Matrix) -> float | None:
    """Spearman's rank correlation of the two columns (``None`` when undefined)."""
    if pairs.shape[0] < 2:
        return None
    from scipy.stats import spearmanr  # type: ignore[import-untyped]

    if np.all(pairs[:, 0] == pairs[0, 0]) or np.all(pairs[:, 1] == pairs[0, 1]):
        return None
    value = float(spearmanr(pairs[:, 0], pairs[:, 1]).statistic)
    return None if np.isnan(value) else round(value, 6)


def report(payloads: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Agreement figures from one or more workers' payloads of one (candidate, active) pair."""
    totals = dict.fromkeys(
        (
            "records",
            "active_anomalies",
            "candidate_anomalies",
            "flips_to_anomaly",
            "flips_to_normal",
        ),
        0,
    )
    samples = []
    for payload in payloads:
        for key in totals:
            totals[key] += int(payload.get(key, 0))
        samples.append(pairs_from_payload(payload))
    n = totals["records"]
    pooled = np.concatenate(samples) if samples else np.empty((0, 2))
    flips = totals["flips_to_anomaly"] + totals["flips_to_normal"]
    return {
        **totals,
        "active_anomaly_rate": round(totals["active_anomalies"] / n, 6) if n else None,
        "candidate_anomaly_rate": round(totals["candidate_anomalies"] / n, 6) if n else None,
        "agreement": round(1 - flips / n, 6) if n else None,
        "rank_correlation": spearman(pooled),
        "rank_correlation_sample": int(pooled.shape[0]),
    }
