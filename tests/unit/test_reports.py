"""The drift and shadow reports as core functions: plain calls on a registry and the workers'
figures, refusing with core errors (the api maps them; no HTTP here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from shared.errors import ModelNotFoundError, NoDriftReferenceError
from shared.registry import ModelRegistry
from shared.reports import drift_report, shadow_report
from shared.settings import Settings, load_settings
from shared.worker_figures import ObservationStore


def _settings(model_dir: Path) -> Settings:
    return load_settings(model_dir=model_dir, _env_file=None)


def _publish(registry: ModelRegistry) -> str:
    rows = np.random.default_rng(0).normal(size=(200, 3))
    model = IsolationForest(n_estimators=5, random_state=0).fit(rows)
    meta = registry.publish(model, n_features=3, record_count=200, params={}, activate=True)
    return meta.version


def test_a_version_without_a_drift_reference_is_a_core_error(model_dir: Path) -> None:
    """A version trained before the drift watch raises NoDriftReferenceError, not a 409."""
    registry = ModelRegistry(model_dir)
    version = _publish(registry)
    with pytest.raises(NoDriftReferenceError, match="without a drift reference"):
        drift_report(registry, ObservationStore(model_dir), version, _settings(model_dir))


def test_an_unknown_version_has_no_report(model_dir: Path) -> None:
    """Both reports raise ModelNotFoundError for a version the registry does not hold."""
    registry, store, settings = (
        ModelRegistry(model_dir),
        ObservationStore(model_dir),
        _settings(model_dir),
    )
    with pytest.raises(ModelNotFoundError):
        drift_report(registry, store, "20990101000000", settings)
    with pytest.raises(ModelNotFoundError):
        shadow_report(registry, store, "20990101000000", None, settings)


def test_a_shadow_report_without_figures_is_empty(model_dir: Path) -> None:
    """No worker wrote figures yet: the report says so instead of failing."""
    registry = ModelRegistry(model_dir)
    version = _publish(registry)
    report = shadow_report(
        registry, ObservationStore(model_dir), version, None, _settings(model_dir)
    )
    assert report.candidate == version
    assert report.workers == 0
    assert report.records == 0
    assert report.observed_at is None
