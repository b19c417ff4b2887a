"""Drift watch: does the stream still look like the data the model was trained on?

At training, each feature's values (and the model's own scores of its training data) are cut
into ten bins at their deciles; ``meta.json`` keeps the edges and the share of training
records in each bin (``reference.bins``). The worker counts the records it scores into the
same bins over a rolling window (:class:`DriftWindow`), and the comparison gives, per feature
and for the score:

- the **population stability index**, ``sum((a - e) * ln(a / e))`` over the bins, with ``a``
  the window's share and ``e`` the training share (both floored at 1e-4). Below 0.1 is
  stable, 0.1 to 0.25 a moderate shift, above 0.25 a significant one;
- the **Kolmogorov-Smirnov statistic** on the binned distributions: the largest gap between
  the two cumulative shares at a bin edge (a lower bound of the exact statistic).

Counts add up, so windows from several workers merge exactly (:func:`merge_counts`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]
Counts = npt.NDArray[np.int64]

DECILES = tuple(q / 10 for q in range(1, 10))
FLOOR = 1e-4
SCORE = "score"


def _edges(values: Matrix) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    return [float(v) for v in np.unique(np.quantile(finite, DECILES))]


def _bin(values: Matrix, edges: Sequence[float] | Matrix, bins: int) -> Counts:
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    return np.bincount(index, minlength=bins).astype(np.int64)


def reference_bins(features: Matrix, scores: Matrix) -> dict[str, Any]:
    """Decile edges and training shares of every feature and of the score (for meta.json)."""

    def one(values: Matrix) -> dict[str, list[float]]:
        edges = _edges(values)
        counts = _bin(values, edges, len(edges) + 1)
        return {"edges": edges, "proportions": (counts / max(1, values.size)).tolist()}

    return {
        "features": [one(features[:, j]) for j in range(features.shape[1])],
        SCORE: one(scores),
    }


class DriftReference:
    """The bins of a model's training data, as read from its ``meta.json``."""

    def __init__(self, edges: list[Matrix], expected: list[Matrix]) -> None:
        self.edges = edges  # n_features + 1 entries: the features, then the score
        self.expected = expected
        self.width = max(len(e) for e in expected)

    @property
    def n_features(self) -> int:
        return len(self.edges) - 1

    @property
    def labels(self) -> list[str]:
        return [str(j) for j in range(self.n_features)] + [SCORE]

    @classmethod
    def from_meta(cls, meta_extra: Mapping[str, Any] | None) -> DriftReference | None:
        """``None`` for a model trained before drift references were kept."""
        bins = ((meta_extra or {}).get("reference") or {}).get("bins")
        if not bins:
            return None
        parts = [*bins["features"], bins[SCORE]]
        return cls(
            [np.asarray(p["edges"], dtype=np.float64) for p in parts],
            [np.asarray(p["proportions"], dtype=np.float64) for p in parts],
        )

    def count(self, features: Matrix, scores: Matrix) -> Counts:
        """Per feature (and the score, last), how many of these rows fall in each bin."""
        columns = np.column_stack((features, scores)).T.copy()  # one contiguous row each
        out = np.empty((len(self.edges), self.width), dtype=np.int64)
        for row, edges in enumerate(self.edges):
            index = np.searchsorted(edges, columns[row], side="right")
            out[row] = np.bincount(index, minlength=self.width)
        return out


def psi(counts: Counts, expected: Matrix) -> float:
    """Population stability index of observed ``counts`` against ``expected`` shares."""
    observed = np.maximum(counts[: expected.shape[0]] / max(1, int(counts.sum())), FLOOR)
    reference = np.maximum(expected, FLOOR)
    return float(np.sum((observed - reference) * np.log(observed / reference)))


def ks(counts: Counts, expected: Matrix) -> float:
    """The largest gap between observed and expected cumulative shares at a bin edge."""
    observed = np.cumsum(counts[: expected.shape[0]]) / max(1, int(counts.sum()))
    return float(np.max(np.abs(observed - np.cumsum(expected))))


def statistics(reference: DriftReference, counts: Counts) -> dict[str, dict[str, float]]:
    """``{label: {"psi": ..., "ks": ...}}`` for every feature and the score."""
    return {
        label: {
            "psi": round(psi(counts[row], reference.expected[row]), 6),
            "ks": round(ks(counts[row], reference.expected[row]), 6),
        }
        for row, label in enumerate(reference.labels)
    }


def merge_counts(windows: Iterable[Counts]) -> Counts | None:
    """The sum of several workers' window counts (``None`` when there are none)."""
    total: Counts | None = None
    for counts in windows:
        total = counts.copy() if total is None else total + counts
    return total


class DriftWindow:
    """The bin counts of about the last ``size`` scored records (whole batches at a time)."""

    def __init__(self, reference: DriftReference, size: int) -> None:
        self.reference = reference
        self.size = size
        self._chunks: deque[tuple[int, Counts]] = deque()
        self.records = 0
        self.counts = np.zeros((len(reference.edges), reference.width), dtype=np.int64)

    def observe(self, features: Matrix, scores: Matrix) -> None:
        if features.shape[0] == 0:
            return
        chunk = self.reference.count(features, scores)
        self._chunks.append((features.shape[0], chunk))
        self.records += features.shape[0]
        self.counts += chunk
        # drop the oldest batches while the rest still fill the window
        while self._chunks and self.records - self._chunks[0][0] >= self.size:
            n, old = self._chunks.popleft()
            self.records -= n
            self.counts -= old

    def statistics(self) -> dict[str, dict[str, float]]:
        return statistics(self.reference, self.counts)
