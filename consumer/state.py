"""What the worker knows about itself: the model in use and its progress (for /health)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.detector import Detector  # imports scikit-learn: only when a model loads


@dataclass(slots=True)
class WorkerState:
    """Mutable state shared by the model watcher, the batch handler and the health routes."""

    detector: Detector | None = None
    shadow: Detector | None = None  # the candidate scored in shadow, if any
    consuming: bool = False
    broker_connected: bool = False  # the last background ping's answer
    failed_version: str | None = None
    failed_candidate: str | None = None
    last_model_error: str | None = None
    registry_error: str | None = None  # a pointer file that cannot be read, while it lasts
    batches: int = 0
    records: int = 0
    scored: int = 0
    anomalies: int = 0
    verdicts_published: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    batch_failures: int = 0
    commit_failures: int = 0
    last_batch_at: float | None = None  # wall clock (time.time) of the last committed batch
    last_batch_monotonic: float | None = None
    batch_started_monotonic: float | None = None  # set while a batch is in hand
    # "topic-partition" -> why the worker stopped consuming it, and at which offset
    stopped_partitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def model_version(self) -> str | None:
        return self.detector.version if self.detector is not None else None

    def summary(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "model_features": self.detector.n_features if self.detector else None,
            "shadow_version": self.shadow.version if self.shadow else None,
            "consuming": self.consuming,
            "failed_version": self.failed_version,
            "last_model_error": self.last_model_error,
            "registry_error": self.registry_error,
            "batches_processed": self.batches,
            "records": self.records,
            "scored": self.scored,
            "anomalies": self.anomalies,
            "verdicts_published": self.verdicts_published,
            "dead_letters": sum(self.dead_letters.values()),
            "dead_letters_by_reason": dict(self.dead_letters),
            "batch_failures": self.batch_failures,
            "commit_failures": self.commit_failures,
            "stopped_partitions": dict(self.stopped_partitions),
            "last_batch_time": (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_batch_at))
                if self.last_batch_at
                else None
            ),
            "batch_in_progress_seconds": (
                round(time.monotonic() - self.batch_started_monotonic, 3)
                if self.batch_started_monotonic is not None
                else None
            ),
        }
