"""The worker's watch over its model: the drift window and shadow scoring.

:meth:`ModelMonitor.observe` runs on every scored batch (the batch handler calls it with
what :class:`consumer.processor.BatchProcessor` scored): it counts the batch into the drift window of the active version and, when
a candidate is loaded (``state.shadow``), scores the batch with it too and updates the
agreement counters. Nothing here is published to Kafka: the candidate's verdicts never
leave the worker.

Every ``OBSERVATIONS_INTERVAL_SECONDS`` :meth:`ModelMonitor.run` refreshes the drift and shadow
gauges and writes both to the model volume (:mod:`shared.worker_figures`), where the api's
``GET /models/{version}/drift`` and ``GET /models/{candidate}/shadow`` read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from consumer.metrics import WorkerMetrics
from consumer.state import WorkerState
from shared.drift import DriftWindow
from shared.settings import Settings
from shared.shadow import ShadowStats
from shared.worker_figures import DRIFT, SHADOW, ObservationStore

if TYPE_CHECKING:
    from shared.detector import Detector, Matrix

log = logging.getLogger("consumer.insight")  # the logger name the logs have always carried

SWEEP_SECONDS = 3600.0


class BatchObserver(Protocol):
    """What the batch handler shows each scored batch to (a :class:`ModelMonitor`)."""

    def observe(
        self,
        detector: Detector,
        features: Matrix,
        scores: Matrix,
        candidate_scores: Matrix | None = None,
    ) -> None: ...


class ModelMonitor:
    """Drift window of the active version and shadow comparison with the candidate."""

    def __init__(
        self,
        state: WorkerState,
        metrics: WorkerMetrics,
        settings: Settings,
        store: ObservationStore,
        worker: str,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.store = store
        self.worker = worker
        self.window_size = settings.drift_window_records
        self.min_records = settings.drift_min_records
        self.threshold = settings.drift_psi_threshold
        self.sample_size = settings.shadow_sample_records
        self.interval = settings.observations_interval_seconds
        self.metrics.drift_psi_threshold.set(self.threshold)
        self.window: DriftWindow | None = None
        self.window_version: str | None = None
        self.shadow: ShadowStats | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0

    def observe(
        self,
        detector: Detector,
        features: Matrix,
        scores: Matrix,
        candidate_scores: Matrix | None = None,
    ) -> None:
        """Count one scored batch (the rows of ``features``, scored ``scores`` by ``detector``,
        and ``candidate_scores`` by the shadow candidate, which
        :class:`consumer.processor.BatchProcessor` scores: a context candidate needs the
        records' histories; without them the batch is not compared)."""
        if detector.version != self.window_version:
            self.window_version = detector.version
            reference = detector.drift_reference
            self.window = (
                DriftWindow(reference, self.window_size)
                if reference is not None and reference.n_features == detector.n_features
                else None
            )
        if self.window is not None:
            self.window.observe(features, scores)
        candidate = self.state.shadow
        if candidate is None or candidate.version == detector.version:
            self.shadow = None
            return
        if candidate_scores is None:
            # not scored by the candidate (of another width, or it failed): the report says
            # nothing was compared
            return
        shadow = self.shadow
        if shadow is None or (shadow.candidate, shadow.active) != (
            candidate.version,
            detector.version,
        ):
            shadow = self.shadow = ShadowStats(
                candidate.version, detector.version, sample_size=self.sample_size
            )
        shadow.observe(scores, candidate_scores)

    # --- reporting ---------------------------------------------------------------------

    def drift_payload(self) -> dict[str, Any] | None:
        window, version = self.window, self.window_version
        if window is None or version is None:
            return None
        return {
            "version": version,
            "records": window.records,
            "window_records": self.window_size,
            "counts": window.counts.tolist(),
        }

    def refresh_metrics(self) -> None:
        window = self.window
        detector = self.state.detector
        if window is None or detector is None or window.records < self.min_records:
            self.metrics.set_drift(window.records if window else 0, None)
        else:
            stats = window.statistics()
            names = detector.feature_names
            self.metrics.set_drift(
                window.records,
                {(names[int(k)] if names and k.isdigit() else k): v for k, v in stats.items()},
            )
        # counts only: the rank correlation is the api's to compute, from the written sample
        self.metrics.set_shadow(self.shadow)

    def write(self, drift: dict[str, Any] | None, shadow: dict[str, Any] | None) -> None:
        """Write the figures to the model volume (blocking: run it in a thread)."""
        if drift is not None:
            self.store.write(DRIFT, (drift["version"],), self.worker, drift)
        if shadow is not None:
            self.store.write(SHADOW, (shadow["candidate"], shadow["active"]), self.worker, shadow)
        now = time.monotonic()
        if now - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = now
            self.store.sweep()

    async def flush(self) -> None:
        """Refresh the gauges and write the figures now."""
        self.refresh_metrics()
        drift = self.drift_payload()
        shadow = self.shadow.to_payload() if self.shadow is not None else None
        if drift is None and shadow is None:
            return
        try:
            await asyncio.to_thread(self.write, drift, shadow)
        except OSError as error:
            log.warning("cannot write observations", extra={"error": str(error)})

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                log.exception("observations not written")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="observations")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.flush()  # the last window, so the api's report is not behind
