"""Explained verdicts: which features drove an anomaly, read from the fitted trees.

:meth:`shared.forest.CompiledForest.isolation_gains` credits every split on a record's paths
to the split's feature, by how far the split narrowed the training samples sharing the
record's branch, weighed by how much shorter than expected each tree's path was. Here those
credits become a ranked list: each feature's share of the total, and the direction of its
value against the training data's typical range (its 5th to 95th percentile, kept in the
model's ``meta.json`` as ``reference``).

    [{"feature": 4, "name": "oil_pressure", "share": 0.71, "value": 612.0,
      "direction": "above", "typical": [301.5, 402.3]}, ...]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


class Reference:
    """The typical range of each feature in a model's training data (its p05 and p95)."""

    __slots__ = ("high", "low")

    def __init__(self, low: Sequence[float] | None, high: Sequence[float] | None) -> None:
        self.low = None if low is None else [float(v) for v in low]
        self.high = None if high is None else [float(v) for v in high]

    @classmethod
    def from_meta(cls, meta_extra: Mapping[str, Any] | None) -> Reference:
        """From a ``meta.json``'s ``reference`` block; empty for models trained without one."""
        reference = (meta_extra or {}).get("reference") or {}
        return cls(reference.get("p05"), reference.get("p95"))


def rank(
    gains: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64] | Sequence[float],
    reference: Reference,
    top_k: int,
    names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The ``top_k`` features of one record by their share of its isolation gains."""
    return rank_many(
        np.asarray(gains, dtype=np.float64)[None, :],
        np.asarray(values, dtype=np.float64)[None, :],
        reference,
        top_k,
        names,
    )[0]


def rank_many(
    gains: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    reference: Reference,
    top_k: int,
    names: Sequence[str] | None = None,
) -> list[list[dict[str, Any]]]:
    """:func:`rank` for every row of a batch (plain Python: a batch's anomalies are few)."""
    low, high = reference.low, reference.high
    ranges = low is not None and high is not None and len(high) == gains.shape[1]
    out: list[list[dict[str, Any]]] = []
    for row_gains, row_values in zip(gains.tolist(), values.tolist(), strict=True):
        total = sum(row_gains)
        ranked: list[dict[str, Any]] = []
        if top_k > 0 and total > 0:
            # a stable sort: equal gains keep feature order
            order = sorted(range(len(row_gains)), key=row_gains.__getitem__, reverse=True)
            for feature in order[:top_k]:
                share = round(row_gains[feature] / total, 4)
                if not share > 0:
                    break
                value = row_values[feature]
                entry: dict[str, Any] = {
                    "feature": feature,
                    "share": share,
                    "value": value if math.isfinite(value) else None,
                    "direction": "within",
                    "typical": None,
                }
                if ranges:
                    lo, hi = low[feature], high[feature]  # type: ignore[index]
                    entry["direction"] = (
                        "above" if value > hi else "below" if value < lo else "within"
                    )
                    entry["typical"] = [lo, hi]
                if names is not None and feature < len(names):
                    entry["name"] = names[feature]
                ranked.append(entry)
        out.append(ranked)
    return out
