"""The api's loaded model versions: the active one, plus a few recently asked for.

The active version's name is cached and read again from ``LATEST`` at most every
``MODEL_POLL_SECONDS`` (as the worker does), or at once after this process changed a pointer;
on EFS each read is a network round trip, too slow for every ``/score``. Loading goes through
:func:`shared.detector.load_detector`, the validated loader the worker uses (checksum,
signature, the estimator's type and width, a probe); a version it refuses is remembered with
the reason for ``MODEL_POLL_SECONDS`` and answered 409 without loading it again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

import anyio.to_thread

from api.metrics import ApiMetrics
from shared.detector import Detector, load_detector
from shared.errors import ModelIntegrityError, NoActiveModelError
from shared.registry import ModelRegistry

logger = logging.getLogger("api.models")

# Versions kept loaded for `?model_version=` besides the active one.
MODEL_CACHE_SIZE = 4


class ModelCache:
    """Loaded :class:`Detector` s by version, the active version's name, and refusals."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        capacity: int = MODEL_CACHE_SIZE,
        metrics: ApiMetrics | None = None,
        poll_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.capacity = max(1, capacity)
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._detectors: OrderedDict[str, Detector] = OrderedDict()
        self._refused: dict[str, tuple[str, float]] = {}
        self._lock = asyncio.Lock()
        self._active: str | None = None
        self._active_read_at = -math.inf
        self._generation = -1
        self.loads = 0

    async def active_version(self) -> str | None:
        """The active version's name, read again when the cached one is stale."""
        now = self._clock()
        generation = self.registry.generation
        if now - self._active_read_at >= self.poll_seconds or generation != self._generation:
            self._active = await anyio.to_thread.run_sync(self.registry.active_version)
            self._active_read_at = now
            self._generation = generation
        return self._active

    def cached_detector(self) -> Detector | None:
        """The active version's detector when its name is fresh and it is loaded (no await)."""
        if (
            self._clock() - self._active_read_at >= self.poll_seconds
            or self.registry.generation != self._generation
            or self._active is None
        ):
            return None
        return self._detectors.get(self._active)

    async def active(self) -> Detector:
        """The active version's detector; :class:`NoActiveModelError` before any training."""
        detector = self.cached_detector()
        if detector is not None:
            return detector
        version = await self.active_version()
        if version is None:
            raise NoActiveModelError("no model has been trained yet: POST /ingest first")
        return await self.get(version)

    def refusal(self, version: str) -> str | None:
        """Why ``version`` was refused at its last load, while that is recent."""
        refused = self._refused.get(version)
        if refused is None:
            return None
        reason, at = refused
        if self._clock() - at >= self.poll_seconds:
            del self._refused[version]
            return None
        return reason

    async def get(self, version: str) -> Detector:
        """The detector of ``version``, loading (and validating) it if needed."""
        detector = self._detectors.get(version)
        if detector is not None:
            self._detectors.move_to_end(version)
            return detector
        async with self._lock:
            detector = self._detectors.get(version)
            if detector is None:
                reason = self.refusal(version)
                if reason is not None:
                    raise ModelIntegrityError(reason)
                detector = await self._load(version)
            self._detectors[version] = detector
            self._detectors.move_to_end(version)
            while len(self._detectors) > self.capacity:
                self._detectors.popitem(last=False)
            return detector

    async def _load(self, version: str) -> Detector:
        started = time.perf_counter()
        try:
            # In a worker thread: verify, unpickle, validate and probe the forest (whose
            # just-in-time compilation, if any, happens there too rather than in a request).
            detector = await anyio.to_thread.run_sync(load_detector, self.registry, version)
        except ModelIntegrityError as error:
            self._refused[version] = (str(error), self._clock())
            logger.warning(
                "model version refused", extra={"model_version": version, "error": str(error)}
            )
            raise
        self.loads += 1
        if self.metrics is not None:
            self.metrics.model_loads.inc()
            if not detector.compiled:
                self.metrics.model_sklearn_fallbacks.inc()
        logger.info(
            "model version loaded",
            extra={
                "model_version": version,
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return detector

    def evict(self, version: str) -> None:
        """Forget ``version`` (it was deleted)."""
        self._detectors.pop(version, None)
        self._refused.pop(version, None)
