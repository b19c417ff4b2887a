"""A validated ``/ingest`` batch in the form a training takes: arrays, not pydantic records.

A 10,000-record batch is 10,000 ``TelemetryRecord`` objects holding 2.5 million Python floats;
what the training uses is one feature matrix, the vehicle ids and the timestamps. Turning the
records into those here, where the body is validated, lets a large body be validated in a
child process and come back as a few compact objects (a numpy array pickles in one copy),
and lets the small-body path train from exactly the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.errors import TrainingError
from shared.fitting import feature_matrix
from shared.training_schemas import TrainingParams, TrainingRequest


@dataclass(frozen=True, slots=True)
class TrainingBatch:
    """What :func:`shared.training.train_matrix` needs of a ``TrainingRequest``.

    ``width_error`` holds the (detail, field) of the :class:`TrainingError` that
    :func:`shared.fitting.feature_matrix` gave records of mixed widths; it is raised when the
    training starts, where :func:`shared.training.train_version` raised it (so the trainings
    counter still calls it rejected). An exception is not kept itself: ``TrainingError``'s
    ``field`` would not survive pickling.
    """

    features: np.ndarray | None
    vehicle_ids: list[str]
    timestamps: list[str]
    params: TrainingParams | None
    feature_names: list[str] | None
    width_error: tuple[str, str | None] | None = None

    @property
    def record_count(self) -> int:
        return len(self.vehicle_ids)

    def matrix(self) -> np.ndarray:
        """The feature matrix; the records' :class:`TrainingError` if their widths differ."""
        if self.width_error is not None:
            raise TrainingError(*self.width_error)
        assert self.features is not None
        return self.features


def batch_of(request: TrainingRequest) -> TrainingBatch:
    """``request``'s arrays, as :func:`shared.training.train_version` would build them."""
    records = request.records
    try:
        features: np.ndarray | None = feature_matrix(records)
        width_error = None
    except TrainingError as error:
        features, width_error = None, (error.detail, error.field)
    return TrainingBatch(
        features=features,
        vehicle_ids=[r.vehicle_id for r in records],
        timestamps=[r.timestamp for r in records],
        params=request.params,
        feature_names=request.feature_names,
        width_error=width_error,
    )
