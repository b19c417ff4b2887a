"""Retention never removes the versions a rollback needs."""

from __future__ import annotations

from pathlib import Path

from sklearn.ensemble import IsolationForest

from shared.registry import ModelRegistry


def _publish(registry: ModelRegistry, *, activate: bool = True) -> str:
    model = IsolationForest(n_estimators=3, random_state=0).fit([[0.0], [1.0]] * 4)
    meta = registry.publish(model, n_features=1, record_count=8, params={}, activate=activate)
    return meta.version


def test_a_burst_of_candidates_keeps_the_versions_that_were_active(tmp_path: Path) -> None:
    """21 versions published without activation (retention 20) keep the earlier active ones."""
    registry = ModelRegistry(tmp_path, retention=20, keep_activated=3)
    activated = [_publish(registry) for _ in range(4)]  # each was the active version in turn
    candidates = [_publish(registry, activate=False) for _ in range(21)]
    kept = set(registry.versions())
    assert registry.active_version() == activated[-1]
    assert set(activated) <= kept  # the active one and the last three before it
    assert registry.candidate_version() == candidates[-1]
    assert set(candidates[-20:]) <= kept
    assert registry.rollback_versions() == activated[-2::-1]


def test_only_the_most_recent_activations_are_protected(tmp_path: Path) -> None:
    """Past ``keep_activated``, an older activated version ages out like any other."""
    registry = ModelRegistry(tmp_path, retention=2, keep_activated=1)
    first, second = _publish(registry), _publish(registry)
    registry.activate(first)  # a rollback: `second` is the version to roll forward to
    for _ in range(3):
        _publish(registry, activate=False)
    assert {first, second} <= set(registry.versions())
    third = _publish(registry)
    for _ in range(2):
        _publish(registry, activate=False)
    kept = registry.versions()
    assert third in kept and first in kept  # active, and the last one active before it
    assert second not in kept
