"""The training service: records in, a published registry version out. No HTTP, no Kafka.

A training makes a context model (:class:`shared.context.ContextForest`, the default:
``DETECTOR_KIND``) or a point model (an IsolationForest on the readings, as versions always
were), and publishes it with its ``meta.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from shared.context import ContextForest, epoch_seconds
from shared.context.model import MIN_HOLDOUT, MIN_TAIL_RECORDS, order_by_vehicle
from shared.detector import Matrix
from shared.drift import reference_bins
from shared.errors import TrainingError
from shared.fitting import (
    ForestParams,
    check_forest_size,
    feature_matrix,
    train,
    train_context,
    training_warnings,
)
from shared.forest import CompiledForest
from shared.registry import ModelRegistry
from shared.schemas import TelemetryRecord
from shared.settings import Settings
from shared.training_schemas import Calibration, ModelMeta, TrainingParams, TrainingResponse


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
        registry,
        features,
        request_params,
        settings,
        activate=activate,
        feature_names=feature_names,
        vehicle_ids=[r.vehicle_id for r in records],
        timestamps=[r.timestamp for r in records],
    )


def train_matrix(
    registry: ModelRegistry,
    features: Matrix,
    request_params: TrainingParams | None,
    settings: Settings,
    *,
    activate: bool = True,
    feature_names: list[str] | None = None,
    vehicle_ids: Sequence[str] | None = None,
    timestamps: Sequence[str] | None = None,
) -> TrainingResponse:
    """Train on a feature matrix (rows in training order) and publish the version.

    A context model also needs each row's ``vehicle_ids`` and ``timestamps`` (RFC 3339); a
    point model does not use them.
    """
    if feature_names is not None and len(feature_names) != features.shape[1]:
        raise TrainingError(
            f"feature_names has {len(feature_names)} names for {features.shape[1]} features",
            field="feature_names",
        )
    params = ForestParams.resolve(request_params, settings)
    check_forest_size(params, features.shape[0], settings.training_max_tree_nodes)
    if params.detector == "point":
        model: IsolationForest | ContextForest = train(
            features, params, min_records=settings.min_training_records
        )
        extra = point_meta(model, features)
    else:
        if vehicle_ids is None or timestamps is None:
            raise TrainingError(
                "a context model needs each record's vehicle_id and timestamp", field="records"
            )
        times = epoch_seconds(timestamps)
        context = train_context(
            vehicle_ids, times, features, params, min_records=settings.min_training_records
        )
        model = context
        extra = context_meta(context, vehicle_ids, times, features)
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
    return response_for(meta, active=activate, advice=params.ignored(request_params))


def point_meta(model: IsolationForest, features: Matrix) -> dict[str, object]:
    """meta.json's additions for a point model: the readings' reference and drift bins."""
    reference: dict[str, object] = dict(reference_summary(features))
    # the model's own scores of its training data: the drift watch's reference for the score
    reference["bins"] = reference_bins(
        features, CompiledForest.from_sklearn(model).decision_function(features)
    )
    return {"reference": reference}


def context_meta(
    model: ContextForest, vehicle_ids: Sequence[str], times: Matrix, features: Matrix
) -> dict[str, object]:
    """meta.json's additions for a context model: its kind, its ``context`` summary, and the
    raw readings' reference with drift bins of the model's scores of its training records
    (each vehicle's in time order, as a stream would bring them)."""
    order = np.concatenate(order_by_vehicle(vehicle_ids, times))
    ordered = features[order]
    scores = model.score_records([vehicle_ids[int(i)] for i in order], times[order], ordered)
    reference: dict[str, object] = dict(reference_summary(features))
    reference["bins"] = reference_bins(ordered, scores)
    return {"detector": "context", "context": json_safe(model.summary()), "reference": reference}


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as plain Python, and no NaN or infinity."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def response_for(meta: ModelMeta, *, active: bool, advice: Sequence[str] = ()) -> TrainingResponse:
    """The ``POST /ingest`` answer for a published version."""
    warnings = [*training_warnings(meta.record_count), *advice]
    calibration: Calibration | None = None
    if meta.detector == "context":
        block = (meta.model_extra or {}).get("context") or {}
        calibration = Calibration.model_validate(block["calibration"])
        if not calibration.from_held_out:
            warnings.append(calibration_warning(calibration))
    return TrainingResponse(
        model_version=meta.version,
        record_count=meta.record_count,
        created_at=meta.created_at,
        n_features=meta.n_features,
        params=meta.params,
        sha256=meta.sha256,
        signed=meta.signature is not None,
        active=active,
        warnings=warnings,
        detector=meta.detector,
        false_alarm_rate=None if calibration is None else calibration.false_alarm_rate,
        calibration=calibration,
    )


def calibration_warning(calibration: Calibration) -> str:
    """Why a context model's false-alarm rate is less certain than asked for."""
    rate = calibration.false_alarm_rate
    needed = max(MIN_HOLDOUT, math.ceil(2.0 / rate))
    text = (
        f"the threshold was set on all the training records, the fitted ones included: only "
        f"{calibration.held_out_records} were held out and {needed} are needed for "
        f"false_alarm_rate={rate:g}; new normal data may be flagged more often than that "
        "(train on more records per vehicle)"
    )
    effective = calibration.effective_false_alarm_rate
    if effective is not None and effective > rate:
        text += (
            f"; too few records to rank for that rate, so the threshold was set at "
            f"{effective:.2g} (the {MIN_TAIL_RECORDS}th most unusual record)"
        )
    return text
