"""The verdict rule, written once: score, flag, explain, encode. Both services call it.

``anomaly_score`` is scikit-learn's ``decision_function`` of the version's forest, and a
record is anomalous exactly when that score is below zero (the forest's ``offset_`` carries
the threshold). :func:`score_rows` scores a matrix of a point model and explains its
anomalous rows, :func:`score_context_rows` does it for a context model's records in stream
order (:func:`score_after_history`: one record after its history, for ``POST /score``);
:func:`encode_verdict` writes one verdict's JSON. The worker calls them on a batch, the api
on the one record of ``POST /score``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shared.context import ContextState
    from shared.detector import Detector  # imports scikit-learn: only where a model is used

Matrix = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]

_encoder = msgspec.json.Encoder()


def is_anomalous(score: float) -> bool:
    """The threshold rule: negative means anomalous."""
    return score < 0


def anomalous(scores: Matrix) -> Flags:
    """:func:`is_anomalous` of every score."""
    flags: Flags = scores < 0
    return flags


@dataclass(frozen=True, slots=True)
class ScoredRows:
    """The scores of a matrix's rows, their flags, and the attribution of the flagged ones."""

    scores: Matrix
    flags: Flags
    attributions: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def anomalies(self) -> int:
        return int(self.flags.sum())


def score_rows(detector: Detector, features: Matrix, top_k: int) -> ScoredRows:
    """Score every row in one call; explain the anomalous ones (top ``top_k`` features)."""
    scores = detector.score(features)
    flags = anomalous(scores)
    attributions: dict[int, list[dict[str, Any]]] = {}
    if top_k > 0 and flags.any():
        rows = np.flatnonzero(flags)
        lists = detector.explain(features[rows], top_k)
        attributions = dict(zip(rows.tolist(), lists, strict=True))
    return ScoredRows(scores, flags, attributions)


def score_context_rows(
    detector: Detector,
    state: ContextState,
    vehicle_ids: Sequence[str],
    times: Matrix,
    readings: Matrix,
    top_k: int,
    offsets: npt.NDArray[np.int64] | None = None,
) -> ScoredRows:
    """A context model's verdicts on records in stream order; each joins its vehicle's history.

    ``times`` are the records' event times (POSIX seconds), ``offsets`` their source offsets
    when they come from one partition (:mod:`shared.context.kernel` says what they bound).
    """
    evidence, lead = detector.derive(state, vehicle_ids, times, readings, offsets)
    scores = detector.score(evidence)
    flags = anomalous(scores)
    attributions: dict[int, list[dict[str, Any]]] = {}
    if top_k > 0 and flags.any():
        rows = np.flatnonzero(flags)
        lists = detector.explain_context(evidence[rows], lead[rows], readings[rows], top_k)
        attributions = dict(zip(rows.tolist(), lists, strict=True))
    return ScoredRows(scores, flags, attributions)


def score_after_history(
    detector: Detector,
    vehicle_ids: Sequence[str],
    times: Matrix,
    readings: Matrix,
    top_k: int,
) -> ScoredRows:
    """A context model's verdict on the last record, after the records before it.

    The earlier records (the vehicle's history, oldest first) go through a fresh state and are
    not explained; the last record is scored in their context. With no earlier record it is
    judged as a vehicle's first reading. The score equals the last of
    ``ContextForest.score_records`` on the same records.
    """
    # room for one vehicle: a /score call is one vehicle's, and a state for 64 costs more
    # to allocate than the record's scoring (it grows if the history names others)
    state = detector.new_state(capacity=1)
    if readings.shape[0] > 1:
        detector.derive(state, vehicle_ids[:-1], times[:-1], readings[:-1])
    return score_context_rows(detector, state, vehicle_ids[-1:], times[-1:], readings[-1:], top_k)


def encode_verdict(
    vehicle_id: str,
    timestamp: str,
    score: float,
    model_version: str,
    scored_at: str,
    source: tuple[str, int, int] | None = None,
    attribution: list[dict[str, Any]] | None = None,
) -> bytes:
    """The JSON bytes of one verdict, without building a pydantic model."""
    body: dict[str, Any] = {
        "vehicle_id": vehicle_id,
        "timestamp": timestamp,
        "anomaly_score": score,
        "is_anomaly": is_anomalous(score),
        "model_version": model_version,
        "scored_at": scored_at,
    }
    if source is not None:
        body["source"] = {"topic": source[0], "partition": source[1], "offset": source[2]}
    if attribution is not None:
        body["attribution"] = attribution
    return _encoder.encode(body)
