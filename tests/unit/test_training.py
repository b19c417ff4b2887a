"""Training: context models by default, point models exactly as before, and what meta.json keeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import pytest
from sklearn.ensemble import IsolationForest

from shared.context import ContextForest, epoch_seconds
from shared.context.model import order_by_vehicle
from shared.drift import reference_bins
from shared.errors import TrainingError
from shared.fitting import ForestParams
from shared.registry import ModelRegistry
from shared.schemas import TelemetryRecord
from shared.settings import Settings, load_settings
from shared.training import reference_summary, train_matrix, train_version
from shared.training_schemas import TrainingParams

Matrix = npt.NDArray[np.float64]
START = datetime(2024, 1, 15, 10, tzinfo=UTC)


def _settings(model_dir: Path, **overrides: Any) -> Settings:
    return load_settings(model_dir=model_dir, _env_file=None, **overrides)


def fleet_records(
    vehicles: int = 3, per_vehicle: int = 120, seed: int = 0
) -> list[TelemetryRecord]:
    """Correlated readings of a few vehicles, interleaved, every vehicle once a second."""
    rng = np.random.default_rng(seed)
    out = []
    for step in range(per_vehicle):
        for v in range(vehicles):
            a = 50 + 10 * np.sin(step / 30 + v) + rng.normal(0, 1)
            stamp = (START + timedelta(seconds=step)).isoformat().replace("+00:00", "Z")
            out.append(
                TelemetryRecord(
                    vehicle_id=f"VH-{v}",
                    timestamp=stamp,
                    feature_vector=[a, 2 * a + rng.normal(0, 0.5), float(round(a / 10))],
                )
            )
    return out


def _columns(records: list[TelemetryRecord]) -> tuple[list[str], Matrix, Matrix]:
    ids = [r.vehicle_id for r in records]
    times = epoch_seconds([r.timestamp for r in records])
    return ids, times, np.array([r.feature_vector for r in records], dtype=np.float64)


def _meta(model_dir: Path, version: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((model_dir / version / "meta.json").read_text())
    return meta


def test_training_makes_a_context_model_by_default(model_dir: Path) -> None:
    """With no detector given, model.joblib holds a ContextForest fitted with the parameters."""
    records = fleet_records()
    settings = _settings(model_dir)
    rate = settings.detection_false_alarm_rate
    answer = train_version(
        ModelRegistry(model_dir), records, TrainingParams(n_estimators=30, random_state=4), settings
    )
    model = joblib.load(model_dir / answer.model_version / "model.joblib")
    assert isinstance(model, ContextForest)
    assert (model.n_estimators, model.max_samples, model.random_state) == (30, 2048, 4)
    assert model.false_alarm_rate == rate
    assert model.n_features_in_ == answer.n_features == 3
    assert answer.detector == "context"
    assert answer.params == {
        "detector": "context",
        "n_estimators": 30,
        "max_samples": 2048,
        "max_features": 1.0,
        "false_alarm_rate": rate,
        "random_state": 4,
    }
    ids, times, X = _columns(records)
    same = ContextForest(n_estimators=30, false_alarm_rate=rate, random_state=4).fit(ids, times, X)
    assert np.array_equal(model.score_records(ids, times, X), same.score_records(ids, times, X))


def test_the_settings_choose_the_kind_and_the_rate(model_dir: Path) -> None:
    """DETECTOR_KIND and DETECTION_FALSE_ALARM_RATE are the defaults a request overrides."""
    settings = _settings(model_dir, detector_kind="point", detection_false_alarm_rate=0.02)
    assert ForestParams.resolve(None, settings).detector == "point"
    chosen = ForestParams.resolve(TrainingParams(detector="context"), settings)
    assert (chosen.detector, chosen.false_alarm_rate) == ("context", 0.02)
    rate = ForestParams.resolve(TrainingParams(detector="context", false_alarm_rate=0.1), settings)
    assert rate.false_alarm_rate == 0.1


def test_a_context_model_meta_keeps_its_summary_reference_and_bins(model_dir: Path) -> None:
    """meta.json: the kind, the model's summary, the readings' reference, drift bins in time order."""
    records = fleet_records()
    answer = train_version(
        ModelRegistry(model_dir),
        records,
        TrainingParams(n_estimators=30, random_state=4),
        _settings(model_dir),
        feature_names=["speed", "rpm", "gear"],
    )
    text = (model_dir / answer.model_version / "meta.json").read_text()
    meta = json.loads(text)
    json.dumps(meta, allow_nan=False)  # standard JSON: no NaN, no Infinity
    model = joblib.load(model_dir / answer.model_version / "model.joblib")
    assert meta["detector"] == "context"
    assert meta["context"] == json.loads(json.dumps(model.summary()))
    assert meta["n_features"] == 3
    assert meta["feature_names"] == ["speed", "rpm", "gear"]
    ids, times, X = _columns(records)
    reference = meta["reference"]
    bins = reference.pop("bins")
    assert reference == reference_summary(X)
    order = np.concatenate(order_by_vehicle(ids, times))
    scores = model.score_records([ids[i] for i in order], times[order], X[order])
    assert bins == json.loads(json.dumps(reference_bins(X[order], scores)))


def test_a_point_model_trains_and_publishes_as_before(model_dir: Path) -> None:
    """detector=point: the same IsolationForest, params, reference and meta keys as always."""
    X = np.random.default_rng(5).normal(size=(400, 4))
    params = TrainingParams(detector="point", n_estimators=30, random_state=9)
    answer = train_matrix(ModelRegistry(model_dir), X, params, _settings(model_dir))
    meta = _meta(model_dir, answer.model_version)
    assert set(meta) == {
        "reference",
        "version",
        "created_at",
        "n_features",
        "record_count",
        "params",
        "sha256",
        "sklearn_version",
    }
    assert meta["params"] == {
        "n_estimators": 30,
        "max_samples": "auto",
        "contamination": "auto",
        "max_features": 1.0,
        "random_state": 9,
    }
    before = IsolationForest(n_estimators=30, random_state=9).fit(X)
    expected: dict[str, Any] = dict(reference_summary(X))
    expected["bins"] = reference_bins(X, before.decision_function(X))
    assert meta["reference"] == json.loads(json.dumps(expected))
    model = joblib.load(model_dir / answer.model_version / "model.joblib")
    assert isinstance(model, IsolationForest)
    probe = np.random.default_rng(6).normal(size=(100, 4)) * 3
    assert np.array_equal(model.decision_function(probe), before.decision_function(probe))
    assert (answer.detector, answer.false_alarm_rate, answer.calibration) == ("point", None, None)


def test_the_answer_reports_the_calibration(model_dir: Path) -> None:
    """A context answer has the rate and the held-out calibration, with no warning when enough."""
    records = fleet_records(vehicles=4, per_vehicle=260)
    params = TrainingParams(n_estimators=30, false_alarm_rate=0.01, random_state=2)
    answer = train_version(ModelRegistry(model_dir), records, params, _settings(model_dir))
    assert answer.false_alarm_rate == 0.01
    calibration = answer.calibration
    assert calibration is not None
    assert calibration.from_held_out
    assert calibration.held_out_records == 4 * 52
    assert calibration.held_out_flagged is not None
    assert calibration.held_out_flagged <= 0.05
    meta = _meta(model_dir, answer.model_version)
    assert calibration.model_dump() == meta["context"]["calibration"]
    assert answer.warnings == []


def test_too_few_held_out_records_is_a_warning(model_dir: Path) -> None:
    """When the threshold comes from the fit part too, the answer's warnings say so."""
    answer = train_version(
        ModelRegistry(model_dir),
        fleet_records(),
        TrainingParams(n_estimators=20, false_alarm_rate=0.001),
        _settings(model_dir),
    )
    assert answer.calibration is not None
    assert not answer.calibration.from_held_out
    assert any("held out" in w and "2000 are needed" in w for w in answer.warnings)


def test_a_parameter_of_the_other_kind_is_ignored_with_a_warning(model_dir: Path) -> None:
    """contamination on a context model (or false_alarm_rate on a point one) is named, not used."""
    registry, settings = ModelRegistry(model_dir), _settings(model_dir)
    context = train_version(
        registry, fleet_records(), TrainingParams(n_estimators=20, contamination=0.1), settings
    )
    assert any("params.contamination was ignored" in w for w in context.warnings)
    assert "contamination" not in context.params
    point = train_version(
        registry,
        fleet_records(),
        TrainingParams(detector="point", n_estimators=20, false_alarm_rate=0.1),
        settings,
    )
    assert any("params.false_alarm_rate was ignored" in w for w in point.warnings)
    assert "false_alarm_rate" not in point.params


def test_a_context_model_needs_vehicle_ids_and_timestamps(model_dir: Path) -> None:
    """A matrix alone trains a point model only: a context training without ids is refused."""
    with pytest.raises(TrainingError, match="vehicle_id and timestamp"):
        train_matrix(ModelRegistry(model_dir), np.ones((5, 2)), None, _settings(model_dir))


def test_context_training_refuses_what_point_training_refuses(model_dir: Path) -> None:
    """Too few records and an explicit max_samples above the count are refused for both kinds."""
    registry = ModelRegistry(model_dir)
    records = fleet_records(per_vehicle=4)
    with pytest.raises(TrainingError, match="too few"):
        train_version(registry, records, None, _settings(model_dir, min_training_records=50))
    with pytest.raises(TrainingError, match="max_samples=100 exceeds"):
        train_version(registry, records, TrainingParams(max_samples=100), _settings(model_dir))
