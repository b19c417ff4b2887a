"""The model registry shared by several processes: concurrent publishers stay consistent."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

from shared.registry import ModelRegistry, version_sort_key


def small_model(seed: int = 0) -> IsolationForest:
    rng = np.random.default_rng(seed)
    return IsolationForest(n_estimators=5, random_state=seed).fit(rng.normal(size=(64, 3)))


def publish(registry: ModelRegistry, seed: int = 0) -> str:
    meta = registry.publish(
        small_model(seed), n_features=3, record_count=64, params={"n_estimators": 5}
    )
    return meta.version


def _publish_in_process(root: str, count: int, queue: multiprocessing.Queue[list[str]]) -> None:
    registry = ModelRegistry(root)
    queue.put([publish(registry, seed=i) for i in range(count)])


def test_two_concurrent_publishers_in_two_processes(tmp_path: Path) -> None:
    """Two processes publishing at once make distinct complete versions and a valid LATEST."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[list[str]] = context.Queue()
    workers = [
        context.Process(target=_publish_in_process, args=(str(tmp_path), 5, queue))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    names = queue.get(timeout=120) + queue.get(timeout=120)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(set(names)) == 10
    registry = ModelRegistry(tmp_path)
    assert sorted(names, key=version_sort_key) == registry.versions()
    assert registry.active_version() in names
    for name in names:
        registry.verify(name)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
