"""The broker the integration tests run against behaves like Kafka: topics, groups, offsets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.kafka_helpers import (
    committed_offsets,
    consume_all,
    create_topics,
    describe_topics,
    poll_records,
    produce,
)

N = 30


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def test_metadata_lists_topic_with_requested_partitions(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    """A created topic appears in the broker's metadata with the requested partition count."""
    topic = unique_topic()
    await create_topics(kafka_bootstrap, [topic], partitions=5)

    metadata = await describe_topics(kafka_bootstrap, [topic])

    assert metadata[topic]["error_code"] == 0
    assert sorted(p["partition"] for p in metadata[topic]["partitions"]) == [0, 1, 2, 3, 4]


async def test_produce_then_consume_all_round_trips_keys_values_and_headers(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    """Every produced record comes back once with its key, value and headers, in partition order."""
    topic = unique_topic()
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    values = [f"value-{i}" for i in range(N)]
    keys = [f"vehicle-{i % 7}" for i in range(N)]
    headers = [[("seq", str(i).encode())] for i in range(N)]

    metas = await produce(kafka_bootstrap, topic, values, keys=keys, headers=headers)
    records = await consume_all(kafka_bootstrap, topic, expected_count=N, timeout=30, settle=0.5)

    assert len(records) == N
    assert {(r.key, r.value, r.headers) for r in records} == {
        (k.encode(), v.encode(), (("seq", h[0][1]),))
        for k, v, h in zip(keys, values, headers, strict=True)
    }
    assert {(m.partition, m.offset) for m in metas} == {(r.partition, r.offset) for r in records}
    for partition in {r.partition for r in records}:
        offsets = [r.offset for r in records if r.partition == partition]
        assert offsets == sorted(offsets)
    # One key always lands on one partition.
    assert all(
        len({r.partition for r in records if r.key == k}) == 1 for k in {r.key for r in records}
    )


async def test_committed_offset_survives_consumer_restart(
    kafka_bootstrap: str, unique_topic: Callable[..., str]
) -> None:
    """A new consumer in the same group resumes after the offsets its predecessor committed."""
    topic = unique_topic()
    group = f"g-{topic}"
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    first = [f"first-{i}" for i in range(N)]
    await produce(kafka_bootstrap, topic, first, keys=[f"k{i}" for i in range(N)])

    consumer = _consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        seen = await poll_records(consumer, N, timeout=30)
        assert Counter(r.value for r in seen) == Counter(v.encode() for v in first)
        await consumer.commit()
    finally:
        await consumer.stop()

    # What the group committed is exactly the end of what it read, partition by partition.
    ends = {TopicPartition(topic, p): 0 for p in range(3)}
    for record in seen:
        tp = TopicPartition(record.topic, record.partition)
        ends[tp] = max(ends[tp], record.offset + 1)
    committed = await committed_offsets(kafka_bootstrap, group)
    assert {tp: max(committed.get(tp, 0), 0) for tp in ends} == ends
    assert sum(ends.values()) == N

    second = [f"second-{i}" for i in range(N)]
    await produce(kafka_bootstrap, topic, second, keys=[f"k{i}" for i in range(N)])

    restarted = _consumer(kafka_bootstrap, topic, group)
    await restarted.start()
    try:
        resumed = await poll_records(restarted, N, timeout=30)
        resumed += await poll_records(restarted, None, timeout=1.0)  # and nothing more
    finally:
        await restarted.stop()

    assert Counter(r.value for r in resumed) == Counter(v.encode() for v in second)
    for record in resumed:
        assert record.offset >= ends[TopicPartition(record.topic, record.partition)]
