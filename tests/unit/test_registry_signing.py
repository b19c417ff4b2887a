"""The registry's signature binds a version's name, metadata and artifact digest together."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sklearn.ensemble import IsolationForest

from shared.errors import ModelIntegrityError
from shared.registry import LATEST_FILE, ModelRegistry


def _publish(registry: ModelRegistry, seed: int = 0) -> str:
    model = IsolationForest(n_estimators=5, random_state=seed).fit([[0.0, 1.0], [1.0, 0.0]] * 5)
    meta = registry.publish(model, n_features=2, record_count=10, params={"seed": seed})
    return meta.version


@pytest.mark.parametrize("key", [b"k1", None])
def test_a_version_copied_under_another_name_is_refused(tmp_path: Path, key: bytes | None) -> None:
    """Version A's signed files copied into directory B neither verify, load nor activate as B."""
    registry = ModelRegistry(tmp_path, signing_key=key)
    first = _publish(registry, seed=1)
    _publish(registry, seed=2)
    copy = "20991231235959"
    shutil.copytree(tmp_path / first, tmp_path / copy)
    for attempt in (registry.verify, registry.load, registry.activate):
        with pytest.raises(ModelIntegrityError, match="copied from another version"):
            attempt(copy)
    assert (tmp_path / LATEST_FILE).read_text().strip() != copy
    assert registry.verify(first).version == first
