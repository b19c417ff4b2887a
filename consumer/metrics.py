"""Prometheus metrics of the worker, in a registry of its own (one per app instance)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from consumer.alert_metrics import AlertMetrics
from consumer.prometheus_compat import histogram_bounds, histogram_buckets, histogram_sum
from shared.schemas import DeadLetterReason
from shared.shadow import ShadowStats

PREFIX = "anomaly_worker"
BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
END_TO_END_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# decision_function scores: below 0 is an anomaly; IsolationForest's lie in about [-0.5, 0.5].
REPLAY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
SCORE_BUCKETS = (-0.3, -0.2, -0.15, -0.1, -0.05, -0.025, 0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3)


class WorkerMetrics:
    """The worker's counters, histograms and gauges."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._model_created: float | None = None
        self._lag_labels: set[tuple[str, str]] = set()
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
            f"{PREFIX}_batch_size_records",
            "Records per batch",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.scoring_seconds = Histogram(
            f"{PREFIX}_scoring_duration_seconds",
            "Time to decode and score one batch (one decision_function call)",
            buckets=SCORING_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            f"{PREFIX}_end_to_end_latency_seconds",
            "From a record's Kafka timestamp to its batch's verdicts acknowledged by the broker",
            buckets=END_TO_END_BUCKETS,
            registry=r,
        )
        self.anomaly_score = Histogram(
            f"{PREFIX}_anomaly_score",
            "decision_function score of each scored record (below 0: anomalous)",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.model_info = Info(f"{PREFIX}_model", "The model version being served", registry=r)
        self.model_created_timestamp = Gauge(
            f"{PREFIX}_model_created_timestamp_seconds",
            "Unix time the served model version was trained",
            registry=r,
        )
        self.model_age_seconds = Gauge(
            f"{PREFIX}_model_age_seconds",
            "Seconds since the served model version was trained",
            registry=r,
        )
        self.model_age_seconds.set_function(self._model_age)
        self.model_contamination = Gauge(
            f"{PREFIX}_model_contamination_ratio",
            "The served model's contamination parameter (NaN when it is 'auto')",
            registry=r,
        )
        self.consumer_lag = Gauge(
            f"{PREFIX}_consumer_lag_records",
            "Records between the consumer's position and the partition's high watermark",
            ["topic", "partition"],
            registry=r,
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
        self.model_sklearn_fallbacks = Counter(
            f"{PREFIX}_model_sklearn_fallbacks",
            "Model versions loaded whose compiled forest differed from scikit-learn on the "
            "probe rows, so they score with scikit-learn",
            registry=r,
        )
        self.model_loaded = Gauge(f"{PREFIX}_model_loaded", "1 when a model is loaded", registry=r)
        self.ready = Gauge(f"{PREFIX}_ready", "1 when the last readiness check passed", registry=r)
        self.drift_psi = Gauge(
            f"{PREFIX}_drift_psi",
            "Population stability index of the drift window against the model's training data, "
            "per feature and for the score (above DRIFT_PSI_THRESHOLD: drifted)",
            ["feature"],
            registry=r,
        )
        self.drift_ks = Gauge(
            f"{PREFIX}_drift_ks",
            "Kolmogorov-Smirnov statistic (binned) of the drift window against the training data",
            ["feature"],
            registry=r,
        )
        self.drift_window_records = Gauge(
            f"{PREFIX}_drift_window_records",
            "Scored records in the drift window",
            registry=r,
        )
        self.drift_psi_threshold = Gauge(
            f"{PREFIX}_drift_psi_threshold",
            "The DRIFT_PSI_THRESHOLD setting (for alert rules)",
            registry=r,
        )
        self.shadow_records = Gauge(
            f"{PREFIX}_shadow_records",
            "Records scored by both the active model and the shadow candidate",
            registry=r,
        )
        self.shadow_anomaly_rate = Gauge(
            f"{PREFIX}_shadow_anomaly_rate",
            "Share of shadow-compared records each model flags",
            ["model"],
            registry=r,
        )
        self.shadow_flips = Gauge(
            f"{PREFIX}_shadow_flips",
            "Verdicts the candidate would flip, by direction (to_anomaly, to_normal)",
            ["direction"],
            registry=r,
        )
        self.context_replay_records = Counter(
            f"{PREFIX}_context_replay_records",
            "Records re-read to rebuild the context of newly assigned partitions",
            registry=r,
        )
        self.context_replay_seconds = Histogram(
            f"{PREFIX}_context_replay_seconds",
            "Time to rebuild the context of newly assigned partitions (one rebuild)",
            buckets=REPLAY_BUCKETS,
            registry=r,
        )
        self.context_replay_truncated = Counter(
            f"{PREFIX}_context_replay_truncated",
            "Context rebuilds stopped by CONSUMER_CONTEXT_REPLAY_SECONDS before the committed "
            "offset",
            registry=r,
        )
        self.context_vehicles = Gauge(
            f"{PREFIX}_context_vehicles",
            "Vehicles whose recent readings the worker holds, over its assigned partitions",
            registry=r,
        )
        self.alerts = AlertMetrics(r)
        self._drift_labels: set[str] = set()
        for outcome in ("anomaly", "normal"):
            self.verdicts_published.labels(outcome)
            self.records_scored.labels(outcome)
        for reason in DeadLetterReason:
            self.dead_letters.labels(reason.value)

    def _model_age(self) -> float:
        created = self._model_created
        return max(0.0, time.time() - created) if created is not None else 0.0

    def model_swapped(self, version: str, created_at: datetime, params: dict[str, object]) -> None:
        """Record the served version: info labels, creation time, contamination."""
        contamination = params.get("contamination")
        self.model_info.info({"version": version, "contamination": str(contamination or "auto")})
        self._model_created = created_at.timestamp()
        self.model_created_timestamp.set(self._model_created)
        self.model_loaded.set(1)
        if isinstance(contamination, int | float):
            self.model_contamination.set(float(contamination))
        else:
            self.model_contamination.set(float("nan"))

    def observe_many(self, histogram: Histogram, values: Iterable[float]) -> None:
        """Observe a batch's values at once: one increment per bucket, not one call per value.

        prometheus_client has no bulk observe, and calling ``observe`` per record cost about
        a sixth of the worker's CPU (profiled). This adds the same counts to the same buckets
        (a value goes to the first bound it does not exceed) and the same sum.
        """
        data = np.fromiter(values, dtype=np.float64)
        data = data[~np.isnan(data)]
        if data.size == 0:
            return
        bounds = histogram_bounds(histogram)  # the bounds observe() itself walks
        counts = np.bincount(np.searchsorted(bounds, data, side="left"), minlength=len(bounds))
        for bucket, count in zip(histogram_buckets(histogram), counts.tolist(), strict=True):
            if count:
                bucket.inc(count)
        histogram_sum(histogram).inc(float(data.sum()))

    def set_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """Replace the per-partition lag gauges with ``lags`` (partitions no longer owned go)."""
        wanted = {(topic, str(partition)): lag for (topic, partition), lag in lags.items()}
        for labels in list(self._lag_labels - set(wanted)):
            self.consumer_lag.remove(*labels)
        for labels, lag in wanted.items():
            self.consumer_lag.labels(*labels).set(lag)
        self._lag_labels = set(wanted)

    def set_drift(self, records: int, stats: dict[str, dict[str, float]] | None) -> None:
        """Replace the drift gauges (no series while the window is too small)."""
        self.drift_window_records.set(records)
        wanted = set(stats or {})
        for label in self._drift_labels - wanted:
            self.drift_psi.remove(label)
            self.drift_ks.remove(label)
        for label, values in (stats or {}).items():
            self.drift_psi.labels(label).set(values["psi"])
            self.drift_ks.labels(label).set(values["ks"])
        self._drift_labels = wanted

    def set_shadow(self, stats: ShadowStats | None) -> None:
        """The shadow gauges from the worker's counters (zeros when not shadowing)."""
        active, candidate, to_anomaly, to_normal, records = (
            (
                stats.active_anomalies,
                stats.candidate_anomalies,
                stats.flips_to_anomaly,
                stats.flips_to_normal,
                stats.records,
            )
            if stats is not None
            else (0, 0, 0, 0, 0)
        )
        share = 1 / records if records else 0.0
        self.shadow_records.set(records)
        self.shadow_anomaly_rate.labels("active").set(active * share)
        self.shadow_anomaly_rate.labels("candidate").set(candidate * share)
        self.shadow_flips.labels("to_anomaly").set(to_anomaly)
        self.shadow_flips.labels("to_normal").set(to_normal)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
