"""(d) of the pipeline benchmark: the publish path alone, verdicts/s through each sink."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.pipeline_broker import create_topics


async def publish_path(bootstrap: str, messages: int, repeat: int) -> dict[str, Any]:
    """Verdicts/s through each sink alone: 500 per batch, sent together, confirmed together."""
    from faststream.kafka import KafkaBroker

    from consumer.processor import Kind, Outgoing
    from consumer.publishing import AiokafkaSink, FastStreamSink, Sink, publish_confirmed
    from consumer.wiring import producer_options
    from shared.settings import Settings

    topic = f"bench-publish-{uuid.uuid4().hex[:6]}"
    await create_topics(bootstrap, [topic])
    # each sink with the producer settings the worker gives it (the linger differs)
    options = {
        name: producer_options(Settings(_env_file=None, consumer_publisher=name))
        for name in ("aiokafka", "faststream")
    }
    body = json.dumps(
        {
            "vehicle_id": "VH-0001",
            "timestamp": "2024-01-15T10:00:00Z",
            "anomaly_score": -0.01,
            "is_anomaly": True,
            "model_version": "20240115100000",
            "scored_at": "2024-01-15T10:00:00.123Z",
            "source": {"topic": "telemetry", "partition": 0, "offset": 123456},
        }
    ).encode()
    batches = [
        [
            Outgoing(
                Kind.VERDICT,
                topic,
                f"VH-{(b * 500 + i) % 500:04d}".encode(),
                body,
                (),
                "telemetry",
                0,
                b * 500 + i,
            )
            for i in range(500)
        ]
        for b in range(messages // 500)
    ]
    broker = KafkaBroker(bootstrap, **options["faststream"], log_level=10)
    await broker.connect()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options["aiokafka"])
    await producer.start()
    sinks: dict[str, Sink] = {
        "aiokafka": AiokafkaSink(producer),
        "faststream": FastStreamSink(broker),
    }
    rates: dict[str, list[int]] = {name: [] for name in sinks}
    try:
        for repetition in range(repeat):
            names = list(sinks) if repetition % 2 == 0 else list(sinks)[::-1]
            for name in names:
                started = time.perf_counter()
                for batch in batches:
                    await publish_confirmed(sinks[name], batch)
                rates[name].append(round(len(batches) * 500 / (time.perf_counter() - started)))
    finally:
        await producer.stop()
        await broker.stop()
    return {
        name: {"messages_per_s": sorted(values)[len(values) // 2], "samples": values}
        for name, values in rates.items()
    }
