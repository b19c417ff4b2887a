"""Hot reload: poll the registry, load a new version off the event loop, swap it in.

The swap replaces one reference (:attr:`WorkerState.detector`); a batch reads it once when it
starts, so a batch is scored by one version and a new version takes effect between batches.
A version that fails to load (bad checksum or signature, unreadable pickle, wrong shape) is
logged, counted and remembered: it is not retried until ``LATEST`` names another version, and
the model already loaded keeps serving. A pointer file that cannot be read or names no
version (not UTF-8, not a version name) is refused the same way: logged once, shown in
``/health`` (``registry_error``), and polled again; nothing a file holds stops the watcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from consumer.metrics import WorkerMetrics
from consumer.state import WorkerState
from shared.errors import RegistryError
from shared.registry import ModelRegistry

if TYPE_CHECKING:
    from shared.detector import Detector

log = logging.getLogger("consumer.models")  # the logger name the logs have always carried


def load_detector(registry: ModelRegistry, version: str) -> Detector:
    """The shared validated loader (blocking: run it in a thread).

    scikit-learn (and the compiled scorer) are imported here, on the first load, so that the
    worker's HTTP endpoints are up before those heavy imports finish.
    """
    from shared.detector import load_detector as load

    detector = load(registry, version)
    if detector.kind == "context":
        # The context kernel is compiled on its first call (seconds): here, in the loading
        # thread, rather than on the event loop in the first batch or rebuild.
        import numpy as np

        width = detector.n_features
        detector.derive(detector.new_state(), ["warm-up"], np.zeros(1), np.zeros((1, width)))
    return detector


class ModelWatcher:
    """Polls ``registry.active_version()`` and keeps ``state.detector`` on the newest version."""

    def __init__(
        self,
        registry: ModelRegistry,
        state: WorkerState,
        metrics: WorkerMetrics,
        poll_seconds: float,
        on_model: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.registry = registry
        self.state = state
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.on_model = on_model
        self._task: asyncio.Task[None] | None = None
        self._pointer_errors: dict[str, str] = {}  # pointer -> the error last reported

    def _read_failed(self, pointer: str, error: Exception) -> None:
        """A pointer that cannot be read: reported once per distinct error, shown in /health."""
        text = f"{pointer}: {error}"
        if self._pointer_errors.get(pointer) != text:
            self._pointer_errors[pointer] = text
            self._show_errors()
            self.metrics.model_reload_failures.inc()
            log.error(
                "cannot read the model registry's pointer; keeping the current model",
                extra={
                    "pointer": pointer,
                    "error": str(error),
                    "serving": self.state.model_version,
                },
            )

    def _read_ok(self, pointer: str) -> None:
        if self._pointer_errors.pop(pointer, None) is not None:
            log.info("the model registry's pointer reads again", extra={"pointer": pointer})
            self._show_errors()

    def _show_errors(self) -> None:
        # every pointer that cannot be read now, in one line (None when all read), so that
        # /health names both LATEST and CANDIDATE when both are bad, whichever was polled last
        errors = self._pointer_errors
        self.state.registry_error = "; ".join(errors[p] for p in sorted(errors)) or None

    async def check(self) -> bool:
        """One poll; ``True`` when a new version was swapped in."""
        try:
            version = await asyncio.to_thread(self.registry.active_version)
        except (OSError, RegistryError) as error:
            self._read_failed("LATEST", error)
            return False
        self._read_ok("LATEST")
        state = self.state
        if version is None or version == state.model_version or version == state.failed_version:
            return False
        try:
            detector = await asyncio.to_thread(load_detector, self.registry, version)
        except Exception as error:
            state.failed_version = version
            state.last_model_error = f"{version}: {error}"
            self.metrics.model_reload_failures.inc()
            log.error(
                "model version failed to load; keeping the current one",
                extra={"version": version, "error": str(error), "serving": state.model_version},
            )
            return False
        previous = state.model_version
        state.detector = detector
        state.failed_version = None
        state.last_model_error = None
        self.metrics.model_reloads.inc()
        if not detector.compiled:
            self.metrics.model_sklearn_fallbacks.inc()
        self.metrics.model_swapped(version, detector.meta.created_at, dict(detector.meta.params))
        log.info(
            "model version loaded",
            extra={"version": version, "previous": previous, "n_features": detector.n_features},
        )
        return True

    async def check_candidate(self) -> bool:
        """One poll of ``CANDIDATE``; ``True`` when the shadow model changed."""
        state = self.state
        try:
            version = await asyncio.to_thread(self.registry.candidate_version)
        except (OSError, RegistryError) as error:
            self._read_failed("CANDIDATE", error)
            return False
        self._read_ok("CANDIDATE")
        if version is not None and version == state.model_version:
            version = None  # promoted: nothing left to compare
        current = state.shadow.version if state.shadow is not None else None
        if version == current or (version is not None and version == state.failed_candidate):
            return False
        if version is None:
            state.shadow = None
            log.info("shadow scoring stopped", extra={"previous": current})
            return True
        try:
            detector = await asyncio.to_thread(load_detector, self.registry, version)
        except Exception as error:
            state.failed_candidate = version
            self.metrics.model_reload_failures.inc()
            log.error(
                "candidate version failed to load; not shadowing it",
                extra={"version": version, "error": str(error)},
            )
            return False
        if not detector.compiled:
            self.metrics.model_sklearn_fallbacks.inc()
        state.shadow = detector
        state.failed_candidate = None
        log.info(
            "candidate version loaded for shadow scoring",
            extra={"version": version, "active": state.model_version},
        )
        return True

    async def run(self) -> None:
        """Poll forever; after each poll with a model loaded, call ``on_model``."""
        while True:
            try:
                await self.check()
                await self.check_candidate()
            except Exception:  # a bug here must not end hot reload unseen
                log.exception("model poll failed; polling again")
            if self.state.detector is not None and self.on_model is not None:
                try:
                    await self.on_model()
                except Exception:
                    log.exception("could not start consuming; retrying at the next poll")
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="model-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # it ended on its own: say so, but let the shutdown go on
                log.exception("the model watcher had stopped with an error")
