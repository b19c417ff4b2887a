"""The objects a running api shares between requests, built by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from api.auth import KeyRing
from api.metrics import ApiMetrics
from api.ratelimit import TokenBucketLimiter
from shared.detector import Detector, load_detector
from shared.errors import NoActiveModelError
from shared.registry import ModelRegistry
from shared.settings import Settings

logger = logging.getLogger("api.models")

# Concurrent trainings (each can use a core and a copy of its batch); more wait their turn.
TRAINING_CONCURRENCY = 2
# Concurrent scoring threads.
SCORING_CONCURRENCY = 8
# Versions kept loaded for `?model_version=` besides the active one.
MODEL_CACHE_SIZE = 4


class ModelCache:
    """Loaded :class:`Detector` s by version: the active one, plus a few recently asked for.

    The active version is read from ``LATEST`` on every call (one small file read), so a
    version published or activated by any process is picked up on the next request. Loading
    (checksum, signature, unpickling) runs in a worker thread, once per version.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        capacity: int = MODEL_CACHE_SIZE,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.capacity = max(1, capacity)
        self._detectors: OrderedDict[str, Detector] = OrderedDict()
        self._lock = asyncio.Lock()
        self.loads = 0

    def active_version(self) -> str | None:
        return self.registry.active_version()

    async def active(self) -> Detector:
        """The active version's detector; :class:`NoActiveModelError` before any training."""
        version = self.active_version()
        if version is None:
            raise NoActiveModelError("no model has been trained yet: POST /ingest first")
        return await self.get(version)

    async def get(self, version: str) -> Detector:
        """The detector of ``version``, loading it if needed."""
        detector = self._detectors.get(version)
        if detector is not None:
            self._detectors.move_to_end(version)
            return detector
        async with self._lock:
            detector = self._detectors.get(version)
            if detector is None:
                started = time.perf_counter()
                detector = await anyio.to_thread.run_sync(self._load, version)
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
            self._detectors[version] = detector
            self._detectors.move_to_end(version)
            while len(self._detectors) > self.capacity:
                self._detectors.popitem(last=False)
            return detector

    def _load(self, version: str) -> Detector:
        # Blocking, in a worker thread: verify, unpickle, and flatten the forest (whose
        # just-in-time compilation, if any, happens there too rather than in a request).
        return load_detector(self.registry, version)

    def evict(self, version: str) -> None:
        """Forget ``version`` (it was deleted)."""
        self._detectors.pop(version, None)


@dataclass
class Services:
    """Everything a route needs besides its request."""

    settings: Settings
    registry: ModelRegistry
    models: ModelCache
    keys: KeyRing
    limiter: TokenBucketLimiter
    metrics: ApiMetrics
    training_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(TRAINING_CONCURRENCY)
    )
    scoring_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(SCORING_CONCURRENCY)
    )
    started_at: float = field(default_factory=time.monotonic)


def build_services(settings: Settings, metrics: ApiMetrics, keys: KeyRing) -> Services:
    """Make the registry directory and the shared objects (called by the lifespan)."""
    registry = ModelRegistry(
        settings.model_dir, signing_key=settings.signing_key, retention=settings.model_retention
    )
    registry.ensure_root()
    return Services(
        settings=settings,
        registry=registry,
        models=ModelCache(registry, metrics=metrics),
        keys=keys,
        limiter=TokenBucketLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        metrics=metrics,
    )
