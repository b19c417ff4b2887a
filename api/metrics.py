"""Prometheus metrics of the api, in a registry of its own (one per app, so tests can build many).

Names follow the Prometheus conventions: a ``vehicle_anomaly_api_`` namespace, base units
(seconds), ``_total`` on counters. Labels are bounded: ``route`` is the route template
(``/models/{version}``), or ``<unmatched>`` for a path no route matches.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from shared.training_schemas import TrainingResponse

# A published version is logged as POST /ingest's, whoever trained it.
logger = logging.getLogger("api.ingest")

NAMESPACE = "vehicle_anomaly_api"
UNMATCHED_ROUTE = "<unmatched>"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TRAINING_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_RECORD_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


class ApiMetrics:
    """The api's instruments, registered in :attr:`registry`."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process_metrics:
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        r = self.registry
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being handled now.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.trainings = Counter(
            "trainings",
            "POST /ingest trainings, by outcome (published, rejected, failed).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.training_duration = Histogram(
            "training_duration_seconds",
            "Time to fit and publish one model version.",
            namespace=NAMESPACE,
            buckets=_TRAINING_BUCKETS,
            registry=r,
        )
        self.training_records = Histogram(
            "training_records",
            "Records in each training request that was published.",
            namespace=NAMESPACE,
            buckets=_RECORD_BUCKETS,
            registry=r,
        )
        self.trained_records = Counter(
            "trained_records",
            "Records that published model versions were trained on.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.scores = Counter(
            "scores",
            "Records scored by POST /score, by verdict (anomaly, normal).",
            ["verdict"],
            namespace=NAMESPACE,
            registry=r,
        )
        # the two children, looked up once (labels() takes a lock on every call)
        self.scored = {True: self.scores.labels("anomaly"), False: self.scores.labels("normal")}
        self.model_loads = Counter(
            "model_loads",
            "Model versions loaded (verified and unpickled) into the scoring cache.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.model_sklearn_fallbacks = Counter(
            "model_sklearn_fallbacks",
            "Model versions loaded whose compiled forest differed from scikit-learn on the "
            "probe rows, so they score with scikit-learn.",
            namespace=NAMESPACE,
            registry=r,
        )
        # Training from the topic (POST /ingest/from-topic), this replica's jobs.
        self.topic_jobs = Counter(
            "topic_jobs",
            "Topic training jobs finished, by outcome (succeeded, failed).",
            ["outcome"],
            namespace=NAMESPACE,
            registry=r,
        )
        self.topic_jobs_running = Gauge(
            "topic_jobs_running",
            "Topic training jobs running now.",
            namespace=NAMESPACE,
            registry=r,
        )
        self.topic_job_duration = Histogram(
            "topic_job_duration_seconds",
            "A topic training job's start to its end (reading, decoding, fitting, publishing).",
            namespace=NAMESPACE,
            buckets=(*_TRAINING_BUCKETS, 600.0, 1800.0, 3600.0),
            registry=r,
        )
        self.topic_job_records = Counter(
            "topic_job_records",
            "Raw records read by topic training jobs.",
            namespace=NAMESPACE,
            registry=r,
        )

    def training_published(self, record_count: int, seconds: float) -> None:
        """A version trained and published (by ``POST /ingest`` or a topic job)."""
        self.training_duration.observe(seconds)
        self.training_records.observe(record_count)
        self.trained_records.inc(record_count)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def published(
    metrics: ApiMetrics, result: TrainingResponse, seconds: float, **context: str
) -> None:
    """Count and log a published version (``context``: who asked, or which job)."""
    metrics.training_published(result.record_count, seconds)
    logger.info(
        "model version published",
        extra={
            "model_version": result.model_version,
            "record_count": result.record_count,
            "n_features": result.n_features,
            "active": result.active,
            "training_ms": round(seconds * 1000, 1),
            **context,
        },
    )
