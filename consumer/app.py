"""The scoring worker as an ASGI application (FastStream's ``AsgiFastStream``).

    python -m consumer                                   # uvicorn on CONSUMER_PORT
    faststream run consumer.app:create_app --factory --host 0.0.0.0 --port 8001

(FastStream's CLI needs the ``faststream[cli]`` extra, which the project does not install;
``python -m consumer`` is the supported entry point.)

Start-up: the broker connects (readiness needs it), the plain producer starts, and a model
watcher polls the registry. The telemetry subscriber does not exist until a model has
loaded: only then is it created and started (a FastStream dynamic subscriber), so a worker
without a model joins no group and commits nothing. Shutdown (SIGTERM): the watcher stops,
the subscriber waits up to ``CONSUMER_GRACEFUL_TIMEOUT_SECONDS`` for the batch in hand and
otherwise cancels it uncommitted, then the producer flushes and closes.

HTTP on the same port: ``/healthz`` (alive), ``/health/ready`` (200 or 503), ``/health``
(details), ``/metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker

from consumer.faststream_compat import subscriber_consumer
from consumer.handlers import BatchHandler
from consumer.metrics import WorkerMetrics
from consumer.model_watcher import ModelWatcher
from consumer.monitor import ModelMonitor
from consumer.processor import BatchProcessor
from consumer.publishing import AiokafkaSink, FastStreamSink, Sink
from consumer.state import WorkerState
from consumer.subscription import telemetry_subscriber
from consumer.tracing import MessageTracing
from shared.kafka import broker_options, client_options
from shared.observations import ObservationStore, worker_id
from shared.registry import ModelRegistry
from shared.settings import Settings, load_settings
from shared.tracing import CONSUMER_SERVICE, tracer_provider

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from consumer.faststream_compat import BatchSubscriber

log = logging.getLogger("consumer.app")

PRODUCER_MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the broker's own limit is the one that counts
# aiokafka's default 16 KiB batches cost ~25 % of throughput with 500-record input batches.
PRODUCER_MAX_BATCH_BYTES = 256 * 1024
PING_TIMEOUT_SECONDS = 2.0


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


def _json(body: dict[str, Any], status: int = 200) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(body, default=str).encode(),
        status_code=status,
        headers={"content-type": "application/json"},
    )


class Worker:
    """Owns the broker, the producer, the model watcher and the batch handler."""

    def __init__(
        self,
        settings: Settings,
        *,
        span_exporter: SpanExporter | None = None,
        batch_hook: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.state = WorkerState()
        self.metrics = WorkerMetrics()
        # Tracing is on when spans go somewhere: an injected exporter (tests, the benchmark)
        # or OTEL_EXPORTER_OTLP_ENDPOINT; CONSUMER_TELEMETRY=false turns it and FastStream's
        # own Prometheus middleware off.
        self.tracer_provider: TracerProvider | None = None
        middlewares: list[Any] = []
        if settings.consumer_telemetry:
            from faststream.kafka.prometheus import KafkaPrometheusMiddleware

            middlewares.append(
                KafkaPrometheusMiddleware(registry=self.metrics.registry, app_name="anomaly_worker")
            )
            if span_exporter is not None or settings.otel_exporter_otlp_endpoint:
                from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

                self.tracer_provider = tracer_provider(
                    CONSUMER_SERVICE, settings, exporter=span_exporter
                )
                middlewares.append(KafkaTelemetryMiddleware(tracer_provider=self.tracer_provider))
        self.middlewares: tuple[Any, ...] = tuple(middlewares)
        self.registry = ModelRegistry(
            settings.model_dir, signing_key=settings.signing_key, retention=None
        )
        self.broker = KafkaBroker(
            **broker_options(settings),
            **producer_options(settings),
            graceful_timeout=settings.consumer_graceful_timeout_seconds,
            allow_auto_create_topics=False,
            logger=logging.getLogger("consumer.faststream"),  # through configure_logging's handler
            log_level=logging.DEBUG,  # FastStream's per-batch "Received"/"Processed" lines
            middlewares=self.middlewares,
        )
        self.producer: AIOKafkaProducer | None = None
        self.sink: Sink = FastStreamSink(self.broker)
        self.monitor = ModelMonitor(
            self.state,
            self.metrics,
            settings,
            ObservationStore(settings.model_dir),
            worker_id(),
        )
        self.processor = BatchProcessor(
            anomaly_topic=settings.anomaly_topic,
            dlq_topic=settings.dlq_topic,
            publish_all=settings.publish_all_verdicts,
            max_record_bytes=settings.max_record_bytes,
            attribution_top_k=settings.attribution_top_k,
        )
        self.handler = BatchHandler(
            self.processor,
            self.sink,
            self.state,
            self.metrics,
            retry_backoff_max=settings.consumer_retry_backoff_max_seconds,
            before_publish=batch_hook,
            tracing=(
                MessageTracing(self.tracer_provider.get_tracer("consumer"))
                if self.tracer_provider is not None
                else None
            ),
            after_batch=self.update_lag,
            background_commit=settings.consumer_background_commit,
            monitor=self.monitor,
        )
        self._lag_task: asyncio.Task[None] | None = None
        self.watcher = ModelWatcher(
            self.registry,
            self.state,
            self.metrics,
            settings.model_poll_seconds,
            on_model=self.start_consuming,
        )
        self.subscriber: BatchSubscriber | None = None
        self.consuming_since: float | None = None
        self._start_lock = asyncio.Lock()
        self.app = AsgiFastStream(
            self.broker,
            asgi_routes=[
                ("/healthz", get(self.healthz, include_in_schema=False)),
                ("/health/ready", get(self.ready, include_in_schema=False)),
                ("/health", get(self.health, include_in_schema=False)),
                ("/metrics", get(self.metrics_route, include_in_schema=False)),
                ("/asyncapi.json", get(self.asyncapi_route, include_in_schema=False)),
            ],
            after_startup=[self.after_startup],
            on_shutdown=[self.on_shutdown],
            after_shutdown=[self.after_shutdown],
            logger=logging.getLogger("consumer.faststream"),
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def after_startup(self) -> None:
        """Broker connected: start the verdict producer and the model watcher."""
        if self.settings.consumer_publisher == "aiokafka":
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(
                **client_options(self.settings),
                **producer_options(self.settings),
            )
            await producer.start()
            self.producer = producer
            self.handler.sink = self.sink = AiokafkaSink(producer)
        log.info(
            "worker started; waiting for a model before consuming",
            extra={
                "publisher": self.settings.consumer_publisher,
                "model_dir": str(self.settings.model_dir),
            },
        )
        self.watcher.start()
        self.monitor.start()
        self._lag_task = asyncio.create_task(self._poll_lag(), name="lag-poller")

    async def _poll_lag(self) -> None:
        """Keep the lag gauges fresh while no batch arrives (an idle or stuck consumer)."""
        while True:
            await asyncio.sleep(self.settings.consumer_lag_poll_seconds)
            try:
                await self.update_lag()
            except Exception as error:  # metrics must never stop the worker
                log.debug("lag update failed", extra={"error": repr(error)})

    async def update_lag(self) -> None:
        """Per assigned partition: high watermark minus the consumer's position."""
        partitions = await self._partitions()
        lags: dict[tuple[str, int], int] = {}
        for name, found in partitions.items():
            lag = found["lag"]
            if lag is not None:
                topic, _, partition = name.rpartition("-")
                lags[(topic, int(partition))] = lag
        self.metrics.set_lag(lags)

    async def start_consuming(self) -> None:
        """Create and start the telemetry subscriber (once: after the first model loads)."""
        async with self._start_lock:
            if self.subscriber is not None:
                return
            settings = self.settings
            subscriber = telemetry_subscriber(
                self.broker, settings, self.handler, traced=self.tracer_provider is not None
            )

            if self.settings.consumer_gc_freeze:
                # Everything alive now (the libraries, the model) lives as long as the process:
                # out of the collector's sight, a full collection takes milliseconds, not a
                # tenth of a second that every record in flight would wait.
                gc.collect()
                gc.freeze()
            try:
                await subscriber.start()
            except BaseException:
                await subscriber.stop()
                raise
            self.subscriber = subscriber
            self.state.consuming = True
            self.consuming_since = time.monotonic()
            log.info(
                "consuming",
                extra={
                    "topic": settings.telemetry_topic,
                    "group": settings.consumer_group,
                    "model_version": self.state.model_version,
                },
            )

    async def on_shutdown(self) -> None:
        """Before the broker stops: no more model swaps or subscriber starts."""
        await self.watcher.stop()
        task, self._lag_task = self._lag_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def after_shutdown(self) -> None:
        """After the subscriber stopped (batch finished or abandoned): close the producer."""
        self.state.consuming = False
        await self.monitor.stop()  # writes the last drift and shadow figures
        producer, self.producer = self.producer, None
        if producer is not None:
            await producer.stop()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()  # flushes the spans still batched for OTLP

    # -- health ----------------------------------------------------------------------------

    def _consumer(self) -> AIOKafkaConsumer | None:
        return subscriber_consumer(self.subscriber) if self.subscriber is not None else None

    async def _partitions(self) -> dict[str, dict[str, int | None]]:
        consumer = self._consumer()
        if consumer is None:
            return {}
        found: dict[str, dict[str, int | None]] = {}
        for tp in sorted(consumer.assignment()):
            highwater = consumer.highwater(tp)
            try:
                position: int | None = await asyncio.wait_for(consumer.position(tp), 0.5)
            except Exception:
                position = None
            lag = highwater - position if highwater is not None and position is not None else None
            found[f"{tp.topic}-{tp.partition}"] = {
                "position": position,
                "highwater": highwater,
                "lag": lag,
            }
        return found

    async def readiness(self) -> tuple[bool, list[str], dict[str, Any]]:
        """Ready: broker reachable, a model loaded, consuming, and progressing (or idle)."""
        reasons: list[str] = []
        if not self.broker.running or not await self.broker.ping(PING_TIMEOUT_SECONDS):
            reasons.append("broker not connected")
        if self.state.detector is None:
            reasons.append("no model loaded")
        partitions = await self._partitions()
        if not self.state.consuming:
            reasons.append("not consuming")
        stall = self.settings.consumer_stall_seconds
        now = time.monotonic()
        if self.state.batch_started_monotonic is not None:
            held = now - self.state.batch_started_monotonic
            if held > stall:
                reasons.append(f"a batch has been in hand for {held:.0f}s")
        lagging = any((p["lag"] or 0) > 0 for p in partitions.values())
        if lagging and self.state.consuming:
            since = max(filter(None, (self.state.last_batch_monotonic, self.consuming_since)))
            if now - since > stall:
                reasons.append(f"records waiting and no batch committed for {now - since:.0f}s")
        ready = not reasons
        self.metrics.ready.set(1 if ready else 0)
        return ready, reasons, partitions

    async def healthz(self, scope: Any) -> AsgiResponse:
        return _json({"status": "alive"})

    async def ready(self, scope: Any) -> AsgiResponse:
        ready, reasons, _ = await self.readiness()
        return _json(
            {"ready": ready, "reasons": reasons, "model_version": self.state.model_version},
            200 if ready else 503,
        )

    async def health(self, scope: Any) -> AsgiResponse:
        ready, reasons, partitions = await self.readiness()
        return _json(
            {
                "ready": ready,
                "reasons": reasons,
                "broker_running": self.broker.running,
                "publisher": self.settings.consumer_publisher,
                **self.state.summary(),
                "assigned_partitions": sorted(partitions),
                "partitions": partitions,
                "telemetry_topic": self.settings.telemetry_topic,
                "consumer_group": self.settings.consumer_group,
            }
        )

    async def metrics_route(self, scope: Any) -> AsgiResponse:
        return AsgiResponse(
            self.metrics.render(), headers={"content-type": self.metrics.content_type}
        )

    async def asyncapi_route(self, scope: Any) -> AsgiResponse:
        """The AsyncAPI document of this worker's topics and messages (docs/asyncapi.json)."""
        from consumer.asyncapi import document

        return _json(document(self.settings))


def create_app(
    settings: Settings | None = None,
    *,
    span_exporter: SpanExporter | None = None,
    batch_hook: Callable[[], Awaitable[None]] | None = None,
) -> AsgiFastStream:
    """Build the worker's ASGI app; nothing connects until its lifespan starts.

    ``span_exporter`` (tests, benchmarks) receives the spans; without it they go to OTLP
    when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and tracing is off otherwise.
    ``batch_hook`` (tests) is awaited between scoring a batch and publishing it.
    """
    worker = Worker(
        settings or load_settings(),
        span_exporter=span_exporter,
        batch_hook=batch_hook,
    )
    app = worker.app
    app.worker = worker  # type: ignore[attr-defined]  # for tests and the benchmark
    return app
