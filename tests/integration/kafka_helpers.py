"""Small aiokafka helpers for tests that talk to a real broker.

    await create_topics(bootstrap, [topic], partitions=3)
    metas = await produce(bootstrap, topic, [b"a", b"b"], keys=[b"k1", b"k2"])
    records = await consume_all(bootstrap, topic, expected_count=2, timeout=30)

Values and keys may be ``bytes``, ``str`` (sent as UTF-8) or ``None``; headers are given per
message as ``[(name, bytes), ...]``. Records come back as :class:`Record`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

Payload = bytes | str | None
Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class Record:
    """One consumed record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


def _encode(payload: Payload) -> bytes | None:
    return payload.encode() if isinstance(payload, str) else payload


def to_record(message: Any) -> Record:
    """A consumed aiokafka message as a :class:`Record`."""
    return Record(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((name, bytes(value)) for name, value in message.headers),
        timestamp=message.timestamp,
    )


async def describe_topics(bootstrap: str, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The broker's metadata of ``names`` (topic -> aiokafka's metadata dict)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {topic["topic"]: topic for topic in await admin.describe_topics(list(names))}
    finally:
        await admin.close()


def _ready(meta: dict[str, Any] | None, partitions: int) -> bool:
    if meta is None or meta["error_code"] != 0 or len(meta["partitions"]) != partitions:
        return False
    return all(p["error_code"] == 0 and p["leader"] >= 0 for p in meta["partitions"])


async def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 3,
    *,
    replication_factor: int = 1,
    configs: dict[str, str] | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 (bounds the create request and the metadata wait)
) -> None:
    """Create ``names`` (an existing topic is fine) and wait until every partition has a leader."""
    names = list(names)
    deadline = time.monotonic() + timeout
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(name, partitions, replication_factor, topic_configs=configs)
                for name in names
            ],
            timeout_ms=int(timeout * 1000),
        )
        for topic_error in response.topic_errors:
            topic, code = topic_error[0], topic_error[1]
            if code not in (0, TopicAlreadyExistsError.errno):
                error = for_code(code)
                raise error(f"creating topic {topic!r} failed: {topic_error}")
        while True:
            metadata = {t["topic"]: t for t in await admin.describe_topics(names)}
            if all(_ready(metadata.get(name), partitions) for name in names):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not ready after {timeout}s: {metadata}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[Payload],
    keys: Sequence[Payload] | None = None,
    headers: Sequence[Headers | None] | None = None,
    *,
    partition: int | None = None,
    max_request_size: int = 1_048_576,
) -> list[Any]:
    """Send ``values`` (with the matching ``keys``/``headers``) and wait for every ack.

    Returns aiokafka's ``RecordMetadata`` of each message (``.partition``, ``.offset``), in order.
    ``max_request_size`` is the producer's own limit (raise it for values near 1 MiB).
    """
    values = list(values)
    if keys is not None and len(keys) != len(values):
        raise ValueError(f"{len(keys)} keys for {len(values)} values")
    if headers is not None and len(headers) != len(values):
        raise ValueError(f"{len(headers)} header lists for {len(values)} values")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=max_request_size
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value=_encode(value),
                key=_encode(keys[i]) if keys is not None else None,
                headers=list(headers[i] or []) if headers is not None else None,
                partition=partition,
            )
            for i, value in enumerate(values)
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


async def consume_all(
    bootstrap: str,
    topic: str,
    expected_count: int,
    timeout: float = 30.0,  # noqa: ASYNC109 (a deadline for polling, not for one await)
    *,
    settle: float = 0.0,
) -> list[Record]:
    """Read ``topic`` from the beginning (no consumer group, nothing committed).

    Returns once ``expected_count`` records arrived, after polling ``settle`` more seconds for any
    extra ones; raises ``TimeoutError`` when fewer than ``expected_count`` arrive in ``timeout``.
    Records of one partition are in offset order.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records = await poll_records(consumer, expected_count, timeout)
        if len(records) < expected_count:
            raise TimeoutError(
                f"got {len(records)} of {expected_count} records from {topic!r} in {timeout}s"
            )
        if settle > 0:
            records += await poll_records(consumer, None, settle)
        return records
    finally:
        await consumer.stop()


async def poll_records(
    consumer: AIOKafkaConsumer,
    expected_count: int | None,
    timeout: float,  # noqa: ASYNC109 (a deadline for polling, not for one await)
) -> list[Record]:
    """Poll a started consumer until ``expected_count`` records arrived or ``timeout`` passed.

    With ``expected_count=None`` it polls for the whole ``timeout`` (to show nothing arrives).
    """
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while expected_count is None or len(records) < expected_count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        batches = await consumer.getmany(timeout_ms=max(1, int(min(left, 0.5) * 1000)))
        for messages in batches.values():
            records.extend(to_record(message) for message in messages)
    return records


async def committed_offsets(bootstrap: str, group_id: str) -> dict[TopicPartition, int]:
    """The offsets committed by ``group_id`` (partition -> next offset to read)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()
