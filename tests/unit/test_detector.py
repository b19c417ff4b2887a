"""Training and scoring: exact scikit-learn scores and clear refusals of bad training data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.ensemble import IsolationForest

from shared.detector import Detector, load_detector
from shared.errors import DimensionMismatchError, ModelIntegrityError, TrainingError
from shared.fitting import ForestParams, feature_matrix, train, training_warnings
from shared.forest import CompiledForest
from shared.registry import ModelRegistry
from shared.schemas import TelemetryRecord
from shared.settings import Settings
from shared.training import train_version
from shared.training_schemas import TrainingParams


def records(rows: np.ndarray) -> list[TelemetryRecord]:
    return [
        TelemetryRecord(
            vehicle_id=f"VH-{i}", timestamp="2024-01-15T10:00:00Z", feature_vector=list(row)
        )
        for i, row in enumerate(rows)
    ]


def test_scores_equal_sklearn_decision_function(tmp_path: Path) -> None:
    """A detector over a registry version scores exactly like the fitted estimator."""
    rng = np.random.default_rng(1)
    data = rng.normal(size=(500, 6))
    model = train(data, ForestParams(n_estimators=50, random_state=7))
    registry = ModelRegistry(tmp_path)
    registry.publish(model, n_features=6, record_count=500, params={})
    detector = Detector.from_loaded(registry.load())
    probe = np.vstack([rng.normal(size=(200, 6)), rng.normal(5, 1, size=(10, 6))])
    np.testing.assert_array_equal(detector.score(probe), model.decision_function(probe))
    assert (detector.score(probe)[-10:] < 0).all()


def test_training_is_reproducible_with_a_seed() -> None:
    """The same data, parameters and random_state give identical scores."""
    data = np.random.default_rng(2).normal(size=(300, 4))
    params = ForestParams(n_estimators=30, random_state=11)
    a, b = train(data, params), train(data, params)
    np.testing.assert_array_equal(a.decision_function(data), b.decision_function(data))


def test_params_resolve_request_then_settings() -> None:
    """Request values win over settings; settings win over scikit-learn's defaults."""
    settings = Settings(iforest_n_estimators=42, iforest_contamination=0.05)
    resolved = ForestParams.resolve(TrainingParams(max_samples=64), settings)
    assert resolved.n_estimators == 42
    assert resolved.contamination == 0.05
    assert resolved.max_samples == 64
    assert ForestParams.resolve(None, None) == ForestParams()


def test_params_reach_the_estimator() -> None:
    """Every resolved parameter is the one the fitted IsolationForest carries."""
    data = np.random.default_rng(3).normal(size=(200, 4))
    model = train(
        data,
        ForestParams(
            n_estimators=17, max_samples=50, contamination=0.1, max_features=0.5, random_state=5
        ),
    )
    assert isinstance(model, IsolationForest)
    assert (
        model.n_estimators,
        model.max_samples,
        model.contamination,
        model.max_features,
        model.random_state,
    ) == (17, 50, 0.1, 0.5, 5)


def test_mixed_dimensions_are_refused_naming_the_record() -> None:
    """Training records of different lengths give a TrainingError naming the first odd one."""
    rows = records(np.ones((3, 4)))
    odd = TelemetryRecord(vehicle_id="VH-x", timestamp="2024-01-15T10:00:00Z", feature_vector=[1.0])
    with pytest.raises(TrainingError, match=r"records\[3\].feature_vector has 1 values") as caught:
        feature_matrix([*rows, odd])
    assert caught.value.field == "records.3.feature_vector"


def test_too_few_records_are_refused() -> None:
    """Fewer records than the minimum give a clear TrainingError."""
    with pytest.raises(TrainingError, match="2 records is too few to train on; at least 5"):
        train(np.ones((2, 3)), ForestParams(), min_records=5)
    with pytest.raises(TrainingError, match="no records"):
        feature_matrix([])


def test_max_samples_above_record_count_is_refused() -> None:
    """An explicit max_samples larger than the data is a clear error, not a warning."""
    with pytest.raises(TrainingError, match="max_samples=100 exceeds the 10 records") as caught:
        train(np.random.default_rng(0).normal(size=(10, 2)), ForestParams(max_samples=100))
    assert caught.value.field == "params.max_samples"


def test_non_finite_training_data_is_refused() -> None:
    """NaN in training data is refused before fitting."""
    data = np.ones((10, 2))
    data[3, 1] = np.nan
    with pytest.raises(TrainingError, match="NaN"):
        train(data, ForestParams())


def test_wrong_width_at_scoring() -> None:
    """Scoring a matrix of another width raises DimensionMismatchError with both counts."""
    data = np.random.default_rng(4).normal(size=(100, 3))
    model = train(data, ForestParams(n_estimators=5))
    registry_meta = {
        "version": "v",
        "created_at": "2024-01-15T10:00:00Z",
        "n_features": 3,
        "record_count": 100,
        "params": {},
        "sha256": "x",
    }
    from shared.training_schemas import ModelMeta

    detector = Detector(ModelMeta.model_validate(registry_meta), model)
    with pytest.raises(DimensionMismatchError) as caught:
        detector.score(np.ones((2, 4)))
    assert (caught.value.got, caught.value.expected, caught.value.reason) == (
        4,
        3,
        "dimension_mismatch",
    )
    assert detector.score(np.empty((0, 3))).shape == (0,)


def test_train_version_publishes_with_reference_and_warnings(tmp_path: Path) -> None:
    """The training service publishes a version with its drift reference and honest warnings."""
    registry = ModelRegistry(tmp_path)
    settings = Settings(iforest_random_state=1)
    answer = train_version(
        registry, records(np.random.default_rng(5).normal(size=(40, 3))), None, settings
    )
    assert answer.record_count == 40 and answer.n_features == 3 and answer.active
    assert registry.active_version() == answer.model_version
    meta = registry.meta(answer.model_version)
    assert len(meta.model_extra["reference"]["mean"]) == 3  # type: ignore[index]  # a published model has extra fields
    assert answer.warnings and "fewer than 256" in answer.warnings[0]
    single = train_version(registry, records(np.ones((1, 4))), None, settings, activate=False)
    assert "score every record 0" in single.warnings[0]
    assert registry.active_version() == answer.model_version


def test_no_warnings_for_a_proper_training_set() -> None:
    """A training set of 256 or more records carries no warning."""
    assert training_warnings(256) == []


def test_parameters_scikit_learn_refuses_are_a_training_error() -> None:
    """A max_samples fraction too small for the data is a TrainingError, not a crash."""
    with pytest.raises(TrainingError, match="cannot train with these parameters") as caught:
        train(np.random.default_rng(0).normal(size=(5, 2)), ForestParams(max_samples=0.1))
    assert caught.value.field == "params"


def _publish_object(registry: ModelRegistry, obj: object, n_features: int) -> str:
    """Publish any object as a version (the registry pickles what it is given)."""
    return registry.publish(obj, n_features=n_features, record_count=10, params={}).version


def test_loader_refuses_an_artifact_that_is_not_a_forest(tmp_path: Path) -> None:
    """A version whose verified pickle holds a dict is refused as an integrity error."""
    registry = ModelRegistry(tmp_path)
    version = _publish_object(registry, {"not": "a model"}, 4)
    with pytest.raises(ModelIntegrityError, match="not a fitted IsolationForest"):
        load_detector(registry, version)


def test_loader_refuses_a_width_that_differs_from_the_fitted_one(tmp_path: Path) -> None:
    """meta.json's n_features must equal the estimator's fitted width."""
    registry = ModelRegistry(tmp_path)
    model = train(np.random.default_rng(4).normal(size=(100, 3)), ForestParams(n_estimators=5))
    version = _publish_object(registry, model, 5)
    with pytest.raises(ModelIntegrityError, match="says 5 features, the estimator was fitted on 3"):
        load_detector(registry, version)


def test_loader_checks_the_compiled_forest_and_keeps_it_when_exact(tmp_path: Path) -> None:
    """A sound version loads with the compiled forest, which equals scikit-learn on its probes."""
    registry = ModelRegistry(tmp_path)
    data = np.random.default_rng(5).normal(size=(300, 4))
    model = train(data, ForestParams(n_estimators=20, random_state=3))
    version = _publish_object(registry, model, 4)
    detector = load_detector(registry, version)
    assert detector.compiled
    probe = detector.probe_rows()
    assert probe.shape == (64, 4)
    np.testing.assert_array_equal(detector.score(probe), model.decision_function(probe))


def test_loader_falls_back_to_scikit_learn_when_the_compiled_forest_differs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A compiled forest that disagrees on the probes is set aside: scikit-learn scores."""
    registry = ModelRegistry(tmp_path)
    data = np.random.default_rng(6).normal(size=(300, 4))
    model = train(data, ForestParams(n_estimators=20, random_state=3))
    version = _publish_object(registry, model, 4)

    class Skewed(CompiledForest):
        def decision_function(
            self, X: npt.ArrayLike, *, engine: str | None = None
        ) -> npt.NDArray[np.float64]:
            return super().decision_function(X, engine=engine) + 1e-12

    original = CompiledForest.from_sklearn

    def skewed(estimator: IsolationForest) -> CompiledForest:
        forest = original(estimator)
        skewed_forest = object.__new__(Skewed)
        for name in CompiledForest.__slots__:
            object.__setattr__(skewed_forest, name, getattr(forest, name))
        return skewed_forest

    CompiledForest.from_sklearn = staticmethod(skewed)  # type: ignore[method-assign, assignment]  # a forest that is off by 1e-12
    try:
        with caplog.at_level("WARNING"):
            detector = load_detector(registry, version)
    finally:
        CompiledForest.from_sklearn = original  # type: ignore[method-assign]  # restore the real one
    assert not detector.compiled
    assert "differs from scikit-learn" in caplog.text
    probe = detector.probe_rows()
    np.testing.assert_array_equal(detector.score(probe), model.decision_function(probe))
