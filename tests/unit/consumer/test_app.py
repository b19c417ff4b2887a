"""The app factory without a broker: routes, readiness, configuration errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from consumer.app import create_app
from shared.errors import ConfigurationError
from shared.settings import Settings, load_settings


def settings(tmp_path: Path) -> Settings:
    return Settings(
        kafka_bootstrap_servers="127.0.0.1:1",
        model_dir=tmp_path,
        _env_file=None,
    )


async def get(app: object, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # any ASGI app, typed as object
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        return await client.get(path)


async def test_create_app_connects_nothing_and_is_not_ready(tmp_path: Path) -> None:
    """A fresh app answers /healthz, and /health/ready says 503 with its reasons."""
    app = create_app(settings(tmp_path))
    alive = await get(app, "/healthz")
    assert alive.status_code == 200
    ready = await get(app, "/health/ready")
    assert ready.status_code == 503
    reasons = ready.json()["reasons"]
    assert "no model loaded" in reasons
    assert "broker not connected" in reasons
    details = (await get(app, "/health")).json()
    assert details["model_version"] is None
    assert details["batches_processed"] == 0
    assert details["assigned_partitions"] == []


async def test_readiness_names_why_kafka_refused_the_worker(tmp_path: Path) -> None:
    """The broker's and the subscriber's refusals (as the Kafka client found them) are in the reasons."""
    app = create_app(settings(tmp_path))
    worker: Any = app.worker  # type: ignore[attr-defined]  # create_app hangs the worker on the app
    worker.broker.problem = "Kafka authentication failed (SASL user or password): bad password"
    worker.consume_problem = "Kafka authorization failed (a missing ACL or IAM permission): group"
    reasons = (await get(app, "/health/ready")).json()["reasons"]
    assert f"broker not connected: {worker.broker.problem}" in reasons
    assert f"not consuming: {worker.consume_problem}" in reasons


async def test_metrics_are_prometheus_text_with_conventional_names(tmp_path: Path) -> None:
    """/metrics exposes the worker's counters with _total suffixes and the batch histogram."""
    app = create_app(settings(tmp_path))
    response = await get(app, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "anomaly_worker_records_consumed_total",
        'anomaly_worker_verdicts_published_total{outcome="anomaly"}',
        'anomaly_worker_dead_letters_total{reason="invalid_json"}',
        "anomaly_worker_batch_size_records_bucket",
        "anomaly_worker_model_reloads_total",
        "anomaly_worker_model_reload_failures_total",
    ):
        assert name in text


def test_bad_option_names_the_variable() -> None:
    """An invalid CONSUMER_* value raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=r"^invalid configuration: CONSUMER_PUBLISHER: "):
        load_settings(consumer_publisher="carrier-pigeon", _env_file=None)


def test_bulk_observe_equals_one_observe_per_value() -> None:
    """observe_many leaves a histogram exactly as observing each value in turn would."""
    import numpy as np
    from prometheus_client import CollectorRegistry, Histogram

    from consumer.metrics import WorkerMetrics

    values = [
        *np.random.default_rng(0).normal(0, 3, size=500).tolist(),
        0.005,
        0.0,
        1e9,
        float("inf"),
    ]
    one, bulk = CollectorRegistry(), CollectorRegistry()
    buckets = (-1.0, 0.0, 0.005, 0.5, 2.0)
    slow = Histogram("h", "x", registry=one, buckets=buckets)
    fast = Histogram("h", "x", registry=bulk, buckets=buckets)
    for value in values:
        slow.observe(value)
    WorkerMetrics.observe_many(None, fast, values)  # type: ignore[arg-type]  # self is unused

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {
            (sample.name, sample.labels.get("le", "")): sample.value
            for metric in registry.collect()
            for sample in metric.samples
            if not sample.name.endswith("_created")
        }

    expected, got = samples(one), samples(bulk)
    assert got == expected  # every bucket and the count (no _sum series: a bucket is negative)
    assert fast._sum.get() == slow._sum.get() == float("inf")  # the inf value dominates both
    finite = [v for v in values if v != float("inf")]
    fast_finite = Histogram("f", "x", registry=CollectorRegistry(), buckets=buckets)
    WorkerMetrics.observe_many(None, fast_finite, finite)  # type: ignore[arg-type]  # self is unused
    assert fast_finite._sum.get() == pytest.approx(sum(finite), rel=1e-12)


async def test_worker_serves_its_asyncapi_document(tmp_path: Path) -> None:
    """/asyncapi.json answers the generated document with the configured topics."""
    app = create_app(settings(tmp_path))
    response = await get(app, "/asyncapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["asyncapi"].startswith("3.")
    assert {c["address"] for c in spec["channels"].values()} >= {"telemetry.raw"}


def test_producer_linger_depends_on_the_publisher_unless_set() -> None:
    """No linger for the aiokafka publisher (it enqueues a batch at once), 5 ms for FastStream's."""
    from consumer.wiring import producer_linger_ms, producer_options

    def worker(**values: Any) -> Settings:
        return Settings(_env_file=None, **values)

    assert producer_linger_ms(worker(consumer_publisher="aiokafka")) == 0
    assert producer_linger_ms(worker(consumer_publisher="faststream")) == 5
    assert producer_linger_ms(worker(consumer_publisher="faststream", consumer_linger_ms=2)) == 2
    assert producer_options(worker(consumer_linger_ms=7))["linger_ms"] == 7


async def test_faststream_publisher_sink_is_the_broker_and_needs_no_producer(
    tmp_path: Path,
) -> None:
    """CONSUMER_PUBLISHER=faststream: the sink publishes through the broker, nothing to start."""
    from faststream.kafka import KafkaBroker

    from consumer.publishing import FastStreamSink
    from consumer.wiring import open_sink

    broker = KafkaBroker("127.0.0.1:1")
    chosen = Settings(
        model_dir=tmp_path,
        consumer_publisher="faststream",
        _env_file=None,
    )
    async with open_sink(chosen, broker) as sink:
        assert isinstance(sink, FastStreamSink) and sink.broker is broker


async def test_the_handler_is_built_at_start_up_over_the_opened_sink(tmp_path: Path) -> None:
    """No handler (and so no placeholder sink) exists before the lifespan starts."""
    app = create_app(settings(tmp_path))
    assert app.worker.handler is None  # type: ignore[attr-defined]  # set by create_app


async def test_probes_read_the_kept_broker_state_and_never_ping(tmp_path: Path) -> None:
    """A broker whose ping would hang does not hold /health/ready: the kept answer is used."""
    import asyncio

    app = create_app(settings(tmp_path))
    worker = app.worker  # type: ignore[attr-defined]  # create_app hangs the worker on the app

    async def hang(timeout: float) -> bool:  # noqa: ASYNC109 (broker.ping's signature)
        await asyncio.sleep(3600)
        return True

    worker.broker.ping = hang
    ready = await asyncio.wait_for(get(app, "/health/ready"), 5)
    assert "broker not connected" in ready.json()["reasons"]
    worker.state.broker_connected = True
    ready = await asyncio.wait_for(get(app, "/health/ready"), 5)
    assert "broker not connected" not in ready.json()["reasons"]
    details = await asyncio.wait_for(get(app, "/health"), 5)
    assert details.json()["registry_error"] is None
