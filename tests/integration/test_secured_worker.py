"""The worker against a broker with TLS, SASL/SCRAM-SHA-512 and ACLs (``secured_kafka``).

It signs in as ``worker``, which holds only the README's ACLs; a wrong password or a principal
without ACLs leaves it running and not ready, with a reason and a log line that name the cause.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka import client_options
from tests.integration.secured_broker import ANOMALIES, DLQ, GROUP, RAW, SecuredBroker
from tests.integration.worker_helpers import (
    Topics,
    WorkerProcess,
    publish_model,
    stopping,
    telemetry,
)

TOPICS = Topics(RAW, ANOMALIES, DLQ, GROUP)
# The first test also waits for the secured broker (and, on a fresh clone with Docker, for its jars).
pytestmark = pytest.mark.timeout(900)


def worker(broker: SecuredBroker, tmp_path: Path, name: str, **kafka: str) -> WorkerProcess:
    """A worker process signed in with ``kafka`` (the settings of ``client_env``)."""
    publish_model(tmp_path / "models")
    extra: dict[str, Any] = {key.lower(): value for key, value in kafka.items()}
    return WorkerProcess.make(
        broker.bootstrap, TOPICS, tmp_path / "models", tmp_path, name, **extra
    )


async def produce_as(
    broker: SecuredBroker, user: str, values: list[bytes], keys: list[bytes]
) -> None:
    producer = AIOKafkaProducer(**client_options(broker.settings(user)))
    await producer.start()
    try:
        for value, key in zip(values, keys, strict=True):
            await producer.send(RAW, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_as(
    broker: SecuredBroker, user: str, topic: str, count: int, within: float
) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(broker.settings(user)),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while len(found) < count and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                found.extend(messages)
    finally:
        await consumer.stop()
    return found


async def test_worker_scores_with_only_its_documented_acls(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """Signed in as ``worker`` over TLS, the worker gets ready and publishes verdicts."""
    process = worker(secured_kafka, tmp_path, "worker", **secured_kafka.client_env("worker"))
    async with stopping(process.start()):
        await process.wait_ready(timeout=120)
        values, keys = telemetry(50, seed=3, anomaly_every=10)
        await produce_as(secured_kafka, "cli", values, keys)
        verdicts = await read_as(secured_kafka, "admin", ANOMALIES, 5, within=60)
        assert len(verdicts) >= 5, process.tail()


async def assert_waits_saying(process: WorkerProcess, cause: str) -> None:
    """Not ready with a reason naming ``cause``, a log line naming it, and still running."""
    health = await process.wait_for(
        lambda h: any(cause in reason for reason in h["reasons"]), 180, f"a reason naming {cause}"
    )
    assert not health["ready"]
    response = await process.get("/health/ready")
    assert response is not None and response.status_code == 503
    assert any(cause in reason for reason in response.json()["reasons"])
    refusals = [
        line
        for line in process.log_path.read_text().splitlines()
        if "Kafka refused the worker" in line
    ]
    assert refusals and cause in refusals[0], process.tail()
    assert process.alive()


async def test_worker_with_a_wrong_password_waits_not_ready_and_says_why(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """A wrong password: the worker keeps running, not ready, its reason and log naming authentication."""
    env = secured_kafka.client_env("worker", password="not-the-password")
    process = worker(secured_kafka, tmp_path, "bad-password", **env)
    async with stopping(process.start()):
        await assert_waits_saying(process, "Kafka authentication failed")


async def test_worker_without_acls_waits_not_ready_and_says_why(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """A principal with no ACL: the worker keeps running, not ready, its reason and log naming authorization."""
    process = worker(secured_kafka, tmp_path, "no-acl", **secured_kafka.client_env("outsider"))
    async with stopping(process.start()):
        await assert_waits_saying(process, "Kafka authorization failed")


async def test_worker_without_its_group_acl_waits_not_ready_and_says_why(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """Every ACL but Read on the group: the worker keeps running, not ready, naming authorization."""
    process = worker(secured_kafka, tmp_path, "no-group", **secured_kafka.client_env("groupless"))
    async with stopping(process.start()):
        await assert_waits_saying(process, "Kafka authorization failed")
