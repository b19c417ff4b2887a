"""Prometheus metrics of the worker, in a registry of its own (one per app instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shared.schemas import DeadLetterReason

PREFIX = "anomaly_worker"
BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class WorkerMetrics:
    """The worker's counters, histograms and gauges."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records_consumed = Counter(
            f"{PREFIX}_records_consumed", "Telemetry records taken from Kafka", registry=r
        )
        self.verdicts_published = Counter(
            f"{PREFIX}_verdicts_published",
            "Verdicts acknowledged by the broker, by outcome",
            ["outcome"],
            registry=r,
        )
        self.records_scored = Counter(
            f"{PREFIX}_records_scored",
            "Valid records scored, by outcome (published or not)",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters",
            "Dead letters acknowledged by the broker, by reason",
            ["reason"],
            registry=r,
        )
        self.batches = Counter(f"{PREFIX}_batches", "Batches published and committed", registry=r)
        self.batch_failures = Counter(
            f"{PREFIX}_batch_failures",
            "Batches that could not be published (rewound and retried)",
            registry=r,
        )
        self.commit_failures = Counter(
            f"{PREFIX}_commit_failures",
            "Offset commits refused, e.g. after a rebalance (the records are redelivered)",
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size", "Records per batch", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            f"{PREFIX}_batch_duration_seconds",
            "Time from a batch's arrival to its commit",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_reloads = Counter(
            f"{PREFIX}_model_reloads", "Model versions loaded and swapped in", registry=r
        )
        self.model_reload_failures = Counter(
            f"{PREFIX}_model_reload_failures", "Model versions that failed to load", registry=r
        )
        self.model_loaded = Gauge(f"{PREFIX}_model_loaded", "1 when a model is loaded", registry=r)
        self.ready = Gauge(f"{PREFIX}_ready", "1 when the last readiness check passed", registry=r)
        for outcome in ("anomaly", "normal"):
            self.verdicts_published.labels(outcome)
            self.records_scored.labels(outcome)
        for reason in DeadLetterReason:
            self.dead_letters.labels(reason.value)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
