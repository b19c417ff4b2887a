"""The scoring worker as an ASGI application (FastStream's ``AsgiFastStream``).

    python -m consumer                                   # uvicorn on CONSUMER_PORT
    faststream run consumer.app:create_app --factory --host 0.0.0.0 --port 8001

(FastStream's CLI needs the ``faststream[cli]`` extra, which the project does not install;
``python -m consumer`` is the supported entry point.)

Start-up: the broker connects (readiness needs it), the sink opens (the plain producer
starts) and the batch handler is built over it, and a model watcher polls the registry. The
telemetry subscriber does not exist until a model has loaded: only then is it created and
started (a FastStream dynamic subscriber), so a worker without a model joins no group and
commits nothing. Shutdown (SIGTERM): the watcher stops, the subscriber waits up to
``CONSUMER_GRACEFUL_TIMEOUT_SECONDS`` for the batch in hand and otherwise cancels it
uncommitted, then the sink closes (the producer flushes).

HTTP on the same port (:mod:`consumer.health`): ``/healthz`` (alive), ``/health/ready``
(200 or 503), ``/health`` (details), ``/metrics`` (Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from faststream.asgi import AsgiFastStream

from consumer import health
from consumer.context_reader import KafkaTailReader
from consumer.faststream_compat import subscriber_consumer
from consumer.handlers import BatchHandler
from consumer.metrics import WorkerMetrics
from consumer.model_watcher import ModelWatcher
from consumer.state import WorkerState
from consumer.subscription import telemetry_subscriber
from consumer.topic_limits import fetch_topic_limits
from consumer.wiring import (
    make_broker,
    make_contexts,
    make_handler,
    make_monitor,
    make_registry,
    open_sink,
    telemetry,
)
from shared.kafka import client_options
from shared.kafka.diagnosis import describe
from shared.settings import Settings, load_settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from opentelemetry.sdk.trace.export import SpanExporter

    from consumer.faststream_compat import BatchSubscriber

log = logging.getLogger("consumer.app")


class Worker:
    """Owns the broker, the sink, the model watcher and the batch handler."""

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
        self.telemetry = telemetry(settings, self.metrics, span_exporter)
        self.broker = make_broker(settings, self.telemetry.middlewares)
        self.monitor = make_monitor(settings, self.state, self.metrics)
        self.watcher = ModelWatcher(
            make_registry(settings),
            self.state,
            self.metrics,
            settings.model_poll_seconds,
            on_model=self.start_consuming,
        )
        self.batch_hook = batch_hook
        # Built at start-up, over the sink opened then (the producer needs the event loop).
        self.handler: BatchHandler | None = None
        self.subscriber: BatchSubscriber | None = None
        self.consuming_since: float | None = None
        # Why the subscriber could not start (e.g. no ACL on the group), for /health/ready.
        self.consume_problem: str | None = None
        self._resources = contextlib.AsyncExitStack()
        self._lag_task: asyncio.Task[None] | None = None
        self._broker_task: asyncio.Task[None] | None = None
        # The partitions' positions and lag as the lag poller last read them (for /health).
        self.partitions_found: health.Partitions = {}
        self._start_lock = asyncio.Lock()
        self.app = AsgiFastStream(
            self.broker,
            asgi_routes=health.routes(self),
            after_startup=[self.after_startup],
            on_shutdown=[self.on_shutdown],
            after_shutdown=[self.after_shutdown],
            logger=logging.getLogger("consumer.faststream"),
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def after_startup(self) -> None:
        """Broker connected: open the sink, build the handler, start the model watcher."""
        settings = self.settings
        limits = await fetch_topic_limits(
            client_options(settings), [settings.anomaly_topic, settings.dlq_topic]
        )
        sink = await self._resources.enter_async_context(open_sink(settings, self.broker, limits))
        # The context rebuild's own consumer (started on the first rebuild), closed after the sink.
        reader = KafkaTailReader(self.settings)
        self._resources.push_async_callback(reader.close)
        self.handler = make_handler(
            self.settings,
            sink,
            self.state,
            self.metrics,
            monitor=self.monitor,
            tracing=self.telemetry.message_tracing(),
            after_batch=self.update_lag,
            before_publish=self.batch_hook,
            contexts=make_contexts(self.settings, self.metrics, reader),
            limits=limits,
        )
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
        self._broker_task = asyncio.create_task(self.watch_broker(), name="broker-watch")

    async def watch_broker(self) -> None:
        """Ping the broker every second; the probes read the answer and never wait for one."""
        lost: float | None = None
        while True:
            try:
                ok = self.broker.running and await self.broker.ping(health.PING_TIMEOUT_SECONDS)
            except Exception:
                ok = False
            if not ok and self.state.broker_connected and self.consuming_since is not None:
                lost = time.monotonic()
                log.warning("broker connection lost; retrying until it answers")
            elif ok and lost is not None:
                log.info(
                    "broker connection restored",
                    extra={"down_seconds": round(time.monotonic() - lost, 1)},
                )
                lost = None
            self.state.broker_connected = ok
            await asyncio.sleep(health.BROKER_CHECK_SECONDS)

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
        found = await health.partitions(self.consumer())
        self.partitions_found = found
        lags: dict[tuple[str, int], int] = {}
        for name, partition in found.items():
            lag = partition["lag"]
            if lag is not None:
                topic, _, number = name.rpartition("-")
                lags[(topic, int(number))] = lag
        self.metrics.set_lag(lags)

    async def start_consuming(self) -> None:
        """Create and start the telemetry subscriber (once: after the first model loads)."""
        async with self._start_lock:
            if self.subscriber is not None:
                return
            settings, handler = self.settings, self.handler
            assert handler is not None, "the watcher starts after the handler is built"
            subscriber = telemetry_subscriber(
                self.broker, settings, handler, traced=self.telemetry.tracer_provider is not None
            )
            if settings.consumer_gc_freeze:
                # Everything alive now (the libraries, the model) lives as long as the process:
                # out of the collector's sight, a full collection takes milliseconds, not a
                # tenth of a second that every record in flight would wait.
                gc.collect()
                gc.freeze()
            try:
                await subscriber.start()
            except BaseException as error:
                await subscriber.stop()
                if isinstance(error, Exception):
                    self.consume_problem = describe(error)
                    log.warning(
                        "Kafka refused the worker: %s; retrying at the next model poll",
                        self.consume_problem,
                        extra={"reason": self.consume_problem, "error": type(error).__name__},
                    )
                raise
            self.subscriber = subscriber
            self.consume_problem = None
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
        for task in (self._lag_task, self._broker_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._lag_task = self._broker_task = None

    async def after_shutdown(self) -> None:
        """After the subscriber stopped (batch finished or abandoned): close the sink."""
        self.state.consuming = False
        await self.monitor.stop()  # writes the last drift and shadow figures
        await self._resources.aclose()  # the producer flushes and closes
        provider = self.telemetry.tracer_provider
        if provider is not None:
            provider.shutdown()  # flushes the spans still batched for OTLP

    def consumer(self) -> AIOKafkaConsumer | None:
        """The subscriber's aiokafka consumer, once consuming."""
        return subscriber_consumer(self.subscriber) if self.subscriber is not None else None


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
    worker = Worker(settings or load_settings(), span_exporter=span_exporter, batch_hook=batch_hook)
    app = worker.app
    app.worker = worker  # type: ignore[attr-defined]  # for tests and the benchmark
    return app
