"""The objects a running api shares between requests, built by the app's lifespan."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio

from api.auth import KeyRing
from api.body_process import BodyProcesses
from api.budget import WorkBudget
from api.metrics import ApiMetrics
from api.model_cache import ModelCache
from api.ratelimit import TokenBucketLimiter
from shared.registry import ModelRegistry
from shared.settings import Settings

# Concurrent trainings (each can use a core and a copy of its batch); more wait their turn.
TRAINING_CONCURRENCY = 2
# Concurrent scoring threads.
SCORING_CONCURRENCY = 8


@dataclass
class Services:
    """Everything a route needs besides its request."""

    settings: Settings
    registry: ModelRegistry
    models: ModelCache
    keys: KeyRing
    limiter: TokenBucketLimiter
    metrics: ApiMetrics
    body_bytes: WorkBudget  # /ingest body bytes being received and decoded
    training_values: WorkBudget  # records x features held for trainings
    training_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(TRAINING_CONCURRENCY)
    )
    scoring_limiter: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(SCORING_CONCURRENCY)
    )
    # child processes decoding large /ingest bodies, one per training slot
    body_processes: BodyProcesses = field(
        default_factory=lambda: BodyProcesses(TRAINING_CONCURRENCY)
    )
    started_at: float = field(default_factory=time.monotonic)


def build_services(settings: Settings, metrics: ApiMetrics, keys: KeyRing) -> Services:
    """Make the registry directory and the shared objects (called by the lifespan)."""
    registry = ModelRegistry(
        settings.model_dir,
        signing_key=settings.signing_key,
        retention=settings.model_retention,
        keep_activated=settings.model_retention_keep_activated,
    )
    registry.ensure_root()
    return Services(
        settings=settings,
        registry=registry,
        models=ModelCache(registry, metrics=metrics, poll_seconds=settings.model_poll_seconds),
        keys=keys,
        limiter=TokenBucketLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        metrics=metrics,
        body_bytes=WorkBudget(
            settings.ingest_max_bytes_in_flight,
            unit="body bytes",
            setting="INGEST_MAX_BYTES_IN_FLIGHT",
        ),
        training_values=WorkBudget(
            settings.training_max_values_in_flight,
            unit="training values (records x features)",
            setting="TRAINING_MAX_VALUES_IN_FLIGHT",
        ),
    )
