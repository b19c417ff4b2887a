"""Hot reload: new versions are loaded off the loop and swapped; bad ones are skipped once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

from consumer.metrics import WorkerMetrics
from consumer.model_watcher import ModelWatcher
from consumer.state import WorkerState
from shared.registry import MODEL_FILE, LoadedModel, ModelRegistry


def publish(registry: ModelRegistry, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    model = IsolationForest(n_estimators=5, random_state=seed).fit(rng.normal(size=(64, 3)))
    return registry.publish(model, n_features=3, record_count=64, params={}).version


class CountingRegistry(ModelRegistry):
    loads = 0

    def load(self, version: str | None = None) -> LoadedModel:
        self.loads += 1
        return super().load(version)


async def test_no_model_then_first_model_then_swap(tmp_path: Path) -> None:
    """Nothing to load leaves the detector empty; each new LATEST is swapped in."""
    registry = ModelRegistry(tmp_path)
    state, metrics = WorkerState(), WorkerMetrics()
    calls: list[str | None] = []

    async def on_model() -> None:
        calls.append(state.model_version)

    watcher = ModelWatcher(registry, state, metrics, 0.01, on_model=on_model)
    assert not await watcher.check()
    assert state.detector is None
    first = publish(registry)
    assert await watcher.check()
    assert state.model_version == first
    assert not await watcher.check()  # same version: nothing to do
    second = publish(registry, seed=1)
    assert await watcher.check()
    assert state.model_version == second
    assert metrics.model_reloads._value.get() == 2


async def test_a_broken_version_is_skipped_and_not_retried(tmp_path: Path) -> None:
    """A version failing its checksum keeps the old model and is not reloaded every poll."""
    registry = CountingRegistry(tmp_path)
    state, metrics = WorkerState(), WorkerMetrics()
    watcher = ModelWatcher(registry, state, metrics, 0.01)
    good = publish(registry)
    assert await watcher.check()
    bad = publish(registry, seed=1)
    (tmp_path / bad / MODEL_FILE).write_bytes(b"tampered")
    loads_before = registry.loads
    assert not await watcher.check()
    assert not await watcher.check()
    assert registry.loads == loads_before + 1
    assert state.model_version == good
    assert state.failed_version == bad
    assert metrics.model_reload_failures._value.get() == 1
    newer = publish(registry, seed=2)
    assert await watcher.check()
    assert state.model_version == newer
    assert state.failed_version is None


async def test_run_calls_on_model_and_stops(tmp_path: Path) -> None:
    """The polling task starts consumption once a model is there, and stops cleanly."""
    import asyncio

    registry = ModelRegistry(tmp_path)
    publish(registry)
    state = WorkerState()
    started = asyncio.Event()

    async def on_model() -> None:
        started.set()

    watcher = ModelWatcher(registry, state, WorkerMetrics(), 0.01, on_model=on_model)
    watcher.start()
    await asyncio.wait_for(started.wait(), 5)
    await watcher.stop()
    assert state.detector is not None


async def test_pointer_files_that_name_no_version_are_reported_not_fatal(tmp_path: Path) -> None:
    """Non-UTF-8 LATEST and CANDIDATE: shown as registry_error, polled again, then recovered."""
    import asyncio

    registry = ModelRegistry(tmp_path)
    state, metrics = WorkerState(), WorkerMetrics()
    watcher = ModelWatcher(registry, state, metrics, 0.01)
    first = publish(registry)
    assert await watcher.check()
    (tmp_path / "LATEST").write_bytes(b"\xff\xfe")
    (tmp_path / "CANDIDATE").write_bytes(b"../../etc/passwd")
    watcher.start()
    for _ in range(250):  # until both errors were seen (a few polls; longer on a busy machine)
        if metrics.model_reload_failures._value.get() >= 2:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)  # several more polls: each error is counted once
    assert state.registry_error is not None
    assert state.registry_error.startswith("CANDIDATE: ")  # both, between any two polls
    assert "; LATEST: LATEST is not UTF-8 text" in state.registry_error
    assert state.model_version == first
    assert metrics.model_reload_failures._value.get() == 2  # once per distinct error
    (tmp_path / "CANDIDATE").unlink()
    second = publish(registry, seed=1)  # rewrites LATEST
    for _ in range(100):
        if state.model_version == second:
            break
        await asyncio.sleep(0.02)
    assert state.model_version == second
    assert state.registry_error is None
    await watcher.stop()  # returns: the task never died


async def test_stop_survives_a_task_that_ended_with_an_error(tmp_path: Path) -> None:
    """A watcher task that failed on its own does not fail the shutdown."""
    import asyncio

    class Broken(ModelRegistry):
        def active_version(self) -> str | None:
            raise RuntimeError("a bug")

    watcher = ModelWatcher(Broken(tmp_path), WorkerState(), WorkerMetrics(), 0.01)
    watcher.start()
    await asyncio.sleep(0.05)
    await watcher.stop()
