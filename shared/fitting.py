"""Fitting models, no I/O: the IsolationForest parameters, the training matrix, and the fit of
a point model or of a context model."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from shared.context import ContextForest
from shared.context.model import DEFAULT_MAX_SAMPLES
from shared.detector import Matrix
from shared.errors import TrainingError
from shared.schemas import TelemetryRecord
from shared.settings import Settings
from shared.training_schemas import TrainingParams


@dataclass(frozen=True, slots=True)
class ForestParams:
    """The parameters a model is trained with: its kind, then its forest's.

    ``contamination`` is for point models, ``false_alarm_rate`` for context models.
    """

    n_estimators: int = 100
    max_samples: int | float | str = "auto"
    contamination: float | str = "auto"
    max_features: float = 1.0
    random_state: int | None = None
    detector: str = "context"
    false_alarm_rate: float = 0.001

    @classmethod
    def resolve(
        cls, request: TrainingParams | None, settings: Settings | None = None
    ) -> ForestParams:
        """Request values first, then the settings' defaults, then scikit-learn's."""
        base = (
            cls()
            if settings is None
            else cls(
                n_estimators=settings.iforest_n_estimators,
                max_samples=settings.iforest_max_samples,
                contamination=settings.iforest_contamination,
                random_state=settings.iforest_random_state,
                detector=settings.detector_kind,
                false_alarm_rate=settings.detection_false_alarm_rate,
            )
        )
        if request is None:
            return base
        chosen = {k: v for k, v in request.model_dump().items() if v is not None}
        return cls(**{**base.fields(), **chosen})

    def ignored(self, request: TrainingParams | None) -> list[str]:
        """Warnings for the request's parameters that this kind of model does not take.

        They are left out rather than refused, so that a caller written for point models
        (``contamination``) still trains.
        """
        if request is None:
            return []
        other = "contamination" if self.detector == "context" else "false_alarm_rate"
        if getattr(request, other) is None:
            return []
        instead = "false_alarm_rate" if other == "contamination" else "contamination"
        return [
            f"params.{other} was ignored: a {self.detector} model's threshold comes from {instead}"
        ]

    @property
    def context_max_samples(self) -> int | float:
        """``max_samples`` as a context model takes it (``"auto"`` is 2048)."""
        value = self.max_samples
        return DEFAULT_MAX_SAMPLES if isinstance(value, str) else value

    def fields(self) -> dict[str, Any]:
        """Every field, whichever the kind."""
        return {
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "contamination": self.contamination,
            "max_features": self.max_features,
            "random_state": self.random_state,
            "detector": self.detector,
            "false_alarm_rate": self.false_alarm_rate,
        }

    def as_dict(self) -> dict[str, Any]:
        """The parameters that apply to the kind (``params`` in meta.json).

        A point model's are those point versions always had.
        """
        if self.detector == "point":
            return {
                "n_estimators": self.n_estimators,
                "max_samples": self.max_samples,
                "contamination": self.contamination,
                "max_features": self.max_features,
                "random_state": self.random_state,
            }
        return {
            "detector": self.detector,
            "n_estimators": self.n_estimators,
            "max_samples": self.context_max_samples,
            "max_features": self.max_features,
            "false_alarm_rate": self.false_alarm_rate,
            "random_state": self.random_state,
        }


def samples_per_tree(params: ForestParams, n_rows: int) -> int:
    """How many rows each tree of ``params`` draws from ``n_rows`` training rows."""
    value: int | float | str = (
        params.max_samples if params.detector == "point" else params.context_max_samples
    )
    if isinstance(value, str):  # a point model's "auto"
        return min(256, n_rows)
    if isinstance(value, float):
        return max(1, int(value * n_rows))
    return min(value, n_rows)


def check_forest_size(params: ForestParams, n_rows: int, max_nodes: int) -> None:
    """:class:`TrainingError` when the forest could hold more than ``max_nodes`` nodes.

    A tree on ``s`` samples has at most ``2s - 1`` nodes, and the artifact (and the memory
    that scores it) grows with them: 500 trees of 20,000 samples made a 477 MB artifact.
    """
    samples = samples_per_tree(params, n_rows)
    bound = params.n_estimators * (2 * samples - 1)
    if bound > max_nodes:
        raise TrainingError(
            f"the forest could hold {bound} nodes ({params.n_estimators} trees of {samples} "
            f"samples each); the limit is {max_nodes} (TRAINING_MAX_TREE_NODES): lower "
            "params.n_estimators or params.max_samples",
            field="params",
        )


def feature_matrix(records: Sequence[TelemetryRecord]) -> Matrix:
    """Stack the records' feature vectors; :class:`TrainingError` if their lengths differ."""
    if not records:
        raise TrainingError("no records to train on", field="records")
    width = len(records[0].feature_vector)
    for position, record in enumerate(records):
        if len(record.feature_vector) != width:
            raise TrainingError(
                f"records[{position}].feature_vector has {len(record.feature_vector)} values; "
                f"records[0] has {width}: all records must share one dimension",
                field=f"records.{position}.feature_vector",
            )
    return np.array([r.feature_vector for r in records], dtype=np.float64)


def _check_training_data(features: Matrix, max_samples: object, min_records: int) -> None:
    if features.ndim != 2 or features.shape[1] == 0:
        raise TrainingError(
            "training data must be a non-empty matrix of feature vectors", "records"
        )
    if features.shape[0] < min_records:
        raise TrainingError(
            f"{features.shape[0]} records is too few to train on; at least {min_records} are needed",
            field="records",
        )
    if not np.isfinite(features).all():
        raise TrainingError("training data holds NaN or infinite values", field="records")
    if isinstance(max_samples, int) and max_samples > features.shape[0]:
        raise TrainingError(
            f"max_samples={max_samples} exceeds the {features.shape[0]} records given",
            field="params.max_samples",
        )


def train(features: Matrix, params: ForestParams, *, min_records: int = 1) -> IsolationForest:
    """Fit an IsolationForest on ``features`` (rows are records)."""
    max_samples = params.max_samples
    _check_training_data(features, max_samples, min_records)
    model = IsolationForest(
        n_estimators=params.n_estimators,
        max_samples=max_samples,
        contamination=params.contamination,
        max_features=params.max_features,
        random_state=params.random_state,
    )
    with warnings.catch_warnings():
        # scikit-learn warns when max_samples > n; the check above makes that unreachable.
        warnings.simplefilter("ignore", UserWarning)
        try:
            model.fit(features)
        except ValueError as error:  # e.g. a max_samples fraction that leaves no sample per tree
            raise TrainingError(
                f"cannot train with these parameters: {error}", field="params"
            ) from error
    return model


def train_context(
    vehicle_ids: Sequence[str],
    times: Matrix,
    features: Matrix,
    params: ForestParams,
    *,
    min_records: int = 1,
) -> ContextForest:
    """Fit a context model on records of normal operation (each vehicle's are ordered by time).

    ``times`` are the records' event times in POSIX seconds. ``max_samples`` ``"auto"`` is
    2048, fewer when the records are fewer; a count given explicitly may not exceed them.
    """
    _check_training_data(features, params.max_samples, min_records)
    if len(vehicle_ids) != features.shape[0] or times.shape != (features.shape[0],):
        raise TrainingError(
            "each training record needs a vehicle_id and a timestamp", field="records"
        )
    model = ContextForest(
        n_estimators=params.n_estimators,
        max_samples=params.context_max_samples,
        max_features=params.max_features,
        false_alarm_rate=params.false_alarm_rate,
        random_state=params.random_state,
    )
    try:
        return model.fit(vehicle_ids, times, features)
    except ValueError as error:  # e.g. a max_samples fraction that leaves no sample per tree
        raise TrainingError(
            f"cannot train with these parameters: {error}", field="params"
        ) from error


def training_warnings(record_count: int) -> list[str]:
    """Advice for a caller whose training set is too small to mean much."""
    if record_count < 3:
        return [
            f"trained on {record_count} record(s): IsolationForest needs more data to separate "
            "anomalies, and this model will score every record 0 (not anomalous)"
        ]
    if record_count < 256:
        return [f"trained on {record_count} records: fewer than 256 makes shallow trees"]
    return []
