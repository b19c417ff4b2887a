"""The training service: records in, a published registry version out. No HTTP, no Kafka."""

from __future__ import annotations

import numpy as np

from shared.detector import ForestParams, Matrix, feature_matrix, train, training_warnings
from shared.drift import reference_bins
from shared.errors import TrainingError
from shared.forest import CompiledForest
from shared.registry import ModelRegistry
from shared.schemas import ModelMeta, TelemetryRecord, TrainingParams, TrainingResponse
from shared.settings import Settings


def reference_summary(features: Matrix) -> dict[str, list[float]]:
    """Per-feature summary of the training data, kept in meta.json as ``reference``.

    Verdicts' attributions compare a value with p05 and p95; the drift watch uses ``bins``
    (:func:`shared.drift.reference_bins`), added by :func:`train_version`.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # values near float max overflow a mean
        quantiles = np.quantile(features, [0.05, 0.5, 0.95], axis=0)
        stats = {
            "mean": features.mean(axis=0),
            "std": features.std(axis=0),
            "min": features.min(axis=0),
            "max": features.max(axis=0),
            "p05": quantiles[0],
            "p50": quantiles[1],
            "p95": quantiles[2],
        }
    limit = np.finfo(np.float64).max
    # meta.json must stay standard JSON: no Infinity or NaN, whatever the data's range.
    return {
        k: np.nan_to_num(v, nan=0.0, posinf=limit, neginf=-limit).tolist() for k, v in stats.items()
    }


def train_version(
    registry: ModelRegistry,
    records: list[TelemetryRecord],
    request_params: TrainingParams | None,
    settings: Settings,
    *,
    activate: bool = True,
    feature_names: list[str] | None = None,
) -> TrainingResponse:
    """Train on ``records`` and publish the model as a new version (blocking: run it off the loop).

    With ``activate=False`` the version becomes the shadow candidate instead.
    """
    features = feature_matrix(records)
    return train_matrix(
        registry, features, request_params, settings, activate=activate, feature_names=feature_names
    )


def train_matrix(
    registry: ModelRegistry,
    features: Matrix,
    request_params: TrainingParams | None,
    settings: Settings,
    *,
    activate: bool = True,
    feature_names: list[str] | None = None,
) -> TrainingResponse:
    """Train on a feature matrix (rows in training order) and publish the version."""
    if feature_names is not None and len(feature_names) != features.shape[1]:
        raise TrainingError(
            f"feature_names has {len(feature_names)} names for {features.shape[1]} features",
            field="feature_names",
        )
    params = ForestParams.resolve(request_params, settings)
    model = train(features, params, min_records=settings.min_training_records)
    reference: dict[str, object] = dict(reference_summary(features))
    # the model's own scores of its training data: the drift watch's reference for the score
    reference["bins"] = reference_bins(
        features, CompiledForest.from_sklearn(model).decision_function(features)
    )
    extra: dict[str, object] = {"reference": reference}
    if feature_names is not None:
        extra["feature_names"] = list(feature_names)
    meta = registry.publish(
        model,
        n_features=features.shape[1],
        record_count=features.shape[0],
        params=params.as_dict(),
        activate=activate,
        extra=extra,
    )
    return response_for(meta, active=activate)


def response_for(meta: ModelMeta, *, active: bool) -> TrainingResponse:
    """The ``POST /ingest`` answer for a published version."""
    return TrainingResponse(
        model_version=meta.version,
        record_count=meta.record_count,
        created_at=meta.created_at,
        n_features=meta.n_features,
        params=meta.params,
        sha256=meta.sha256,
        signed=meta.signature is not None,
        active=active,
        warnings=training_warnings(meta.record_count),
    )
