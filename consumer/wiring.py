"""The worker's parts, one small factory each; :class:`consumer.app.Worker` assembles them.

Nothing here connects: the broker connects in the app's lifespan, and :func:`open_sink`
starts the plain producer (``CONSUMER_PUBLISHER=aiokafka``) only once it is entered there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaBroker

from consumer.context_reader import KafkaTailReader
from consumer.context_store import ContextStore
from consumer.handlers import BatchHandler
from consumer.metrics import WorkerMetrics
from consumer.monitor import ModelMonitor
from consumer.patient_broker import PatientKafkaBroker
from consumer.processor import BatchProcessor
from consumer.publishing import AiokafkaSink, FastStreamSink, Sink
from consumer.state import WorkerState
from consumer.topic_limits import TopicLimits
from consumer.tracing import MessageTracing
from shared.episodes import EpisodeRules
from shared.kafka import broker_options, client_options
from shared.registry import ModelRegistry
from shared.settings import Settings
from shared.tracing import CONSUMER_SERVICE, tracer_provider
from shared.worker_figures import ObservationStore, worker_id

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

PRODUCER_MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the broker's own limit is the one that counts
# aiokafka's default 16 KiB batches cost ~25 % of throughput with 500-record input batches.
PRODUCER_MAX_BATCH_BYTES = 256 * 1024


def producer_linger_ms(settings: Settings) -> int:
    """``CONSUMER_LINGER_MS``, or the publisher's default when it is unset."""
    if settings.consumer_linger_ms is not None:
        return settings.consumer_linger_ms
    return 0 if settings.consumer_publisher == "aiokafka" else 5


def producer_options(settings: Settings) -> dict[str, Any]:
    """Producer settings for verdicts and dead letters (both publishers use the same)."""
    return {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": producer_linger_ms(settings),
        "max_request_size": PRODUCER_MAX_REQUEST_BYTES,
        "max_batch_size": PRODUCER_MAX_BATCH_BYTES,
    }


@dataclass(frozen=True, slots=True)
class Telemetry:
    """FastStream's middlewares, and the tracer provider when spans go somewhere."""

    middlewares: tuple[Any, ...] = ()
    tracer_provider: TracerProvider | None = None

    def message_tracing(self) -> MessageTracing | None:
        """Spans for the verdicts and dead letters (``None`` when tracing is off)."""
        if self.tracer_provider is None:
            return None
        return MessageTracing(self.tracer_provider.get_tracer("consumer"))


def telemetry(
    settings: Settings, metrics: WorkerMetrics, span_exporter: SpanExporter | None
) -> Telemetry:
    """Prometheus and OpenTelemetry middlewares (``CONSUMER_TELEMETRY=false``: neither).

    Tracing is on when spans go somewhere: an injected exporter (tests, the benchmark) or
    ``OTEL_EXPORTER_OTLP_ENDPOINT``.
    """
    if not settings.consumer_telemetry:
        return Telemetry()
    from faststream.kafka.prometheus import KafkaPrometheusMiddleware

    prometheus = KafkaPrometheusMiddleware(registry=metrics.registry, app_name="anomaly_worker")
    if span_exporter is None and not settings.otel_exporter_otlp_endpoint:
        return Telemetry((prometheus,))
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    provider = tracer_provider(CONSUMER_SERVICE, settings, exporter=span_exporter)
    return Telemetry((prometheus, KafkaTelemetryMiddleware(tracer_provider=provider)), provider)


def make_broker(settings: Settings, middlewares: tuple[Any, ...]) -> PatientKafkaBroker:
    """The FastStream broker: the subscriber's connection (and the FastStream publisher).

    Its start waits for Kafka to accept the worker, and says why it does not meanwhile.
    """
    return PatientKafkaBroker(
        settings,
        **broker_options(settings),
        **producer_options(settings),
        graceful_timeout=settings.consumer_graceful_timeout_seconds,
        allow_auto_create_topics=False,
        logger=logging.getLogger("consumer.faststream"),  # through configure_logging's handler
        log_level=logging.DEBUG,  # FastStream's per-batch "Received"/"Processed" lines
        middlewares=middlewares,
    )


def make_registry(settings: Settings) -> ModelRegistry:
    """The model registry, read-only for the worker (it never prunes versions)."""
    return ModelRegistry(settings.model_dir, signing_key=settings.signing_key, retention=None)


def make_monitor(settings: Settings, state: WorkerState, metrics: WorkerMetrics) -> ModelMonitor:
    """The drift window and shadow comparison, written to the model volume."""
    return ModelMonitor(state, metrics, settings, ObservationStore(settings.model_dir), worker_id())


def make_processor(settings: Settings) -> BatchProcessor:
    """The pure batch core, configured by the contract's settings."""
    return BatchProcessor(
        anomaly_topic=settings.anomaly_topic,
        dlq_topic=settings.dlq_topic,
        publish_all=settings.publish_all_verdicts,
        max_record_bytes=settings.max_record_bytes,
        attribution_top_k=settings.attribution_top_k,
        alert_topic=settings.alert_topic,
    )


def make_contexts(
    settings: Settings, metrics: WorkerMetrics, reader: KafkaTailReader
) -> ContextStore:
    """The per-partition context of context models, rebuilt through ``reader``."""
    return ContextStore(
        reader,
        metrics,
        replay_seconds=settings.consumer_context_replay_seconds,
        max_record_bytes=settings.max_record_bytes,
        rules=episode_rules(settings) if settings.alert_episodes else None,
        replay_offsets=settings.alert_replay_offsets,
    )


def episode_rules(settings: Settings) -> EpisodeRules:
    """The alert episodes' rules of the ``ALERT_*`` settings."""
    return EpisodeRules(
        open_anomalous=settings.alert_open_anomalous,
        open_window=settings.alert_open_window,
        close_normal=settings.alert_close_normal,
        silence_seconds=settings.alert_silence_seconds,
        open_severity=settings.alert_open_severity,
    )


def make_handler(
    settings: Settings,
    sink: Sink,
    state: WorkerState,
    metrics: WorkerMetrics,
    *,
    monitor: ModelMonitor,
    tracing: MessageTracing | None,
    after_batch: Callable[[], Awaitable[None]],
    before_publish: Callable[[], Awaitable[None]] | None = None,
    contexts: ContextStore | None = None,
    limits: TopicLimits | None = None,
) -> BatchHandler:
    """The batch handler over ``sink``, committing as ``CONSUMER_BACKGROUND_COMMIT`` says."""
    return BatchHandler(
        make_processor(settings),
        sink,
        state,
        metrics,
        retry_backoff_max=settings.consumer_retry_backoff_max_seconds,
        before_publish=before_publish,
        tracing=tracing,
        after_batch=after_batch,
        background_commit=settings.consumer_background_commit,
        monitor=monitor,
        contexts=contexts,
        limits=limits,
        refused_attempts=settings.consumer_refused_attempts,
    )


@contextlib.asynccontextmanager
async def open_sink(
    settings: Settings, broker: KafkaBroker, limits: TopicLimits | None = None
) -> AsyncIterator[Sink]:
    """The sink ``CONSUMER_PUBLISHER`` names, ready to send while the block runs.

    ``aiokafka``: a plain producer started on entry and stopped (flushed) on exit.
    ``faststream``: the broker's own publisher, whose lifecycle is the broker's.
    """
    if settings.consumer_publisher != "aiokafka":
        yield FastStreamSink(broker)
        return
    from aiokafka import AIOKafkaProducer

    options = {**client_options(settings), **producer_options(settings)}
    if limits is not None:
        # Several records share a batch up to its size: never more than a topic takes.
        smallest = min([limits.of(settings.anomaly_topic), limits.of(settings.dlq_topic)])
        options["max_batch_size"] = max(1024, min(PRODUCER_MAX_BATCH_BYTES, smallest - 1024))

    def make_producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(**options)

    producer = make_producer()
    await producer.start()
    sink = AiokafkaSink(producer, make_producer=make_producer)
    try:
        yield sink
    finally:
        await sink.producer.stop()  # the one in use (a refusal may have renewed it)
