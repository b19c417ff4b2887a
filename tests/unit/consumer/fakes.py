"""Test doubles for the worker's core: records, a detector, a sink, a consumer, a handler."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from aiokafka import TopicPartition
from sklearn.ensemble import IsolationForest

from consumer.handlers import BatchHandler
from consumer.metrics import WorkerMetrics
from consumer.processor import BatchProcessor, Outgoing
from consumer.publishing import OneByOne
from consumer.state import WorkerState
from shared.detector import Detector
from shared.training_schemas import ModelMeta

TOPIC = "telemetry.raw"
N_FEATURES = 4


@dataclass(frozen=True)
class Rec:
    """A stand-in for aiokafka's ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def valid_value(vehicle: str = "VH-1", features: list[float] | None = None) -> bytes:
    return json.dumps(
        {
            "vehicle_id": vehicle,
            "timestamp": "2024-01-15T10:00:00Z",
            "feature_vector": features if features is not None else [0.1, 0.2, 0.3, 0.4],
        }
    ).encode()


def records(values: Sequence[bytes | None], partition: int = 0, start: int = 0) -> list[Rec]:
    return [
        Rec(TOPIC, partition, start + i, f"k{i}".encode(), value) for i, value in enumerate(values)
    ]


def decoded(message: Outgoing) -> Any:
    """A published message's value, decoded from JSON."""
    assert message.value is not None
    return json.loads(message.value)


def make_detector(version: str = "20240115100000", seed: int = 0) -> Detector:
    rng = np.random.default_rng(seed)
    model = IsolationForest(n_estimators=20, random_state=seed).fit(
        rng.normal(size=(256, N_FEATURES))
    )
    meta = ModelMeta(
        version=version,
        created_at=datetime(2024, 1, 15, tzinfo=UTC),
        n_features=N_FEATURES,
        record_count=256,
        params={},
        sha256="0" * 64,
    )
    return Detector(meta, model)


class FakeSink(OneByOne):
    """Records what is sent; ``fail_on`` makes the broker refuse chosen messages."""

    def __init__(self, fail_on: Any = None, raise_on_send: Any = None) -> None:
        self.sent: list[Outgoing] = []
        self.fail_on = fail_on or (lambda message: None)
        self.raise_on_send = raise_on_send or (lambda message: None)
        self.gate: asyncio.Event | None = None

    async def send(self, message: Outgoing) -> Awaitable[Any]:
        error = self.raise_on_send(message)
        if error is not None:
            raise error
        self.sent.append(message)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failure = self.fail_on(message)
        gate = self.gate

        async def settle() -> None:
            if gate is not None:
                await gate.wait()
            if failure is not None:
                future.set_exception(failure)
            else:
                future.set_result("ack")

        asyncio.get_running_loop().create_task(settle())
        return future


@dataclass
class FakeConsumer:
    """The consumer calls the handler makes: assignment, commit, seek.

    ``commit_gate`` holds every commit until it is set; ``commit_errors`` fail the next
    commits one by one (``commit_error`` fails them all); ``most_in_flight`` is the largest
    number of commits that were in flight at once.
    """

    assigned: set[TopicPartition] = field(
        default_factory=lambda: {TopicPartition(TOPIC, p) for p in range(3)}
    )
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)
    paused: set[TopicPartition] = field(default_factory=set)
    commit_error: BaseException | None = None
    commit_errors: list[BaseException] = field(default_factory=list)
    commit_gate: asyncio.Event | None = None
    in_flight: int = 0
    most_in_flight: int = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.commit_gate is not None:
                await self.commit_gate.wait()
            if self.commit_error is not None:
                raise self.commit_error
            if self.commit_errors:
                raise self.commit_errors.pop(0)
            self.commits.append(dict(offsets))
        finally:
            self.in_flight -= 1

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused.update(partitions)


@dataclass
class FakeHold:
    """Counts acquisitions like FastStream's subscriber lock (a graceful stop waits for 0)."""

    held: int = 0
    acquired: int = 0

    def acquire(self) -> None:
        self.held += 1
        self.acquired += 1

    def release(self) -> None:
        self.held -= 1


def build_handler(
    sink: FakeSink, *, detector: bool = True, background: bool = True
) -> tuple[BatchHandler, WorkerState, list[float]]:
    """A handler over ``sink`` publishing every verdict; the sleeps it asked for, recorded."""
    state = WorkerState(detector=make_detector() if detector else None)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    handler = BatchHandler(
        BatchProcessor(anomaly_topic="anomalies", dlq_topic="dlq", publish_all=True),
        sink,
        state,
        WorkerMetrics(),
        sleep=fake_sleep,
        background_commit=background,
    )
    return handler, state, sleeps


def mixed_batch() -> list[Rec]:
    """Two records on partition 0 (one undecodable) and one on partition 1."""
    return [
        *records([valid_value("VH-1"), b"garbage"], partition=0, start=100),
        *records([valid_value("VH-2")], partition=1, start=7),
    ]
