"""The context rebuild after a rebalance: 3 partitions' tails re-read into a fresh state.

The worker's own store and reader (:class:`consumer.context_store.ContextStore` over
:class:`consumer.context_reader.KafkaTailReader`), in this process: a topic of 3 partitions
holding ``readings`` readings of each of ``vehicles`` vehicles (at most ``horizon`` offsets
per partition are re-read), and the time from assignment (the store asked to rebuild the
three partitions up to their ends) to the state rebuilt, with the kernel compiled beforehand
(the worker compiles it when it loads the model) and the reader's consumer connected on the
first, untimed rebuild, as after the worker's first assignment.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.pipeline_broker import PARTITIONS, create_topics, preload
from bench.pipeline_workload import N_FEATURES, publish_model
from consumer.context_reader import KafkaTailReader
from consumer.context_store import ContextStore
from consumer.metrics import WorkerMetrics
from shared.detector import load_detector
from shared.registry import ModelRegistry
from shared.settings import Settings


def fleet_records(vehicles: int, readings: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """``readings`` readings of each vehicle, one a second, interleaved in time."""
    rng = np.random.default_rng(seed)
    values, keys = [], []
    rows = rng.normal(size=(vehicles * readings, N_FEATURES)).round(6).tolist()
    for step in range(readings):
        second = f"2024-01-15T10:{step // 60 % 60:02d}:{step % 60:02d}Z"
        for v in range(vehicles):
            vehicle = f"VH-{v:04d}"
            body = {"vehicle_id": vehicle, "timestamp": second, "feature_vector": rows.pop()}
            values.append(json.dumps(body).encode())
            keys.append(vehicle.encode())
    return values, keys


async def replay_time(
    bootstrap: str, vehicles: int = 1_000, readings: int = 150, repeat: int = 3
) -> dict[str, Any]:
    """Seconds from assignment to the state of 3 partitions rebuilt (median of ``repeat``)."""
    topic = f"bench-replay-{uuid.uuid4().hex[:6]}"
    await create_topics(bootstrap, [topic])
    values, keys = fleet_records(vehicles, readings, seed=3)
    await preload(bootstrap, topic, values, keys)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        model_dir = Path(tmp)
        version = publish_model(model_dir, seed=0, kind="context")
        detector = load_detector(ModelRegistry(model_dir), version)
    detector.derive(detector.new_state(), ["x"], np.zeros(1), np.zeros((1, N_FEATURES)))
    settings = Settings(kafka_bootstrap_servers=bootstrap, telemetry_topic=topic, _env_file=None)
    reader = KafkaTailReader(settings)
    metrics = WorkerMetrics()
    store = ContextStore(reader, metrics)
    probe = ContextStore(reader, WorkerMetrics())
    try:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        targets = {(topic, tp.partition): ends[tp] for tp in tps}
        await probe.prepare(detector, {where: 1 for where in targets})  # connects the reader
        samples = []
        for _ in range(repeat):
            store.drop(list(targets))
            started = time.perf_counter()
            await store.prepare(detector, targets)
            samples.append(time.perf_counter() - started)
    finally:
        await reader.close()
    horizon = detector.context.params_.horizon if detector.context is not None else 0
    replayed = sum(min(end, horizon) for end in targets.values())
    samples.sort()
    return {
        "partitions": PARTITIONS,
        "vehicles": vehicles,
        "records_per_partition": {str(p): o for (_t, p), o in sorted(targets.items())},
        "horizon_offsets": horizon,
        "records_replayed": replayed,
        "vehicles_rebuilt": store.vehicles(),
        "seconds": round(samples[len(samples) // 2], 3),
        "samples_seconds": [round(s, 3) for s in samples],
    }
