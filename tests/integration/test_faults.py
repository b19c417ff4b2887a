"""Faults that once stopped a partition, against a real broker: each test prints its figures.

Run with ``-s`` to see them (records in, answered, missing, duplicates, recovery time); the
figures in docs/operations.md ("Faults") come from these runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.kafka_helpers import produce
from tests.integration.worker_helpers import (
    Outputs,
    Topics,
    asgi_get,
    collect_outputs,
    expected_offsets,
    group_offsets,
    publish_model,
    running_worker,
    telemetry,
    wait_until,
    worker_settings,
)

# Within about 200 bytes of the broker's default 1 MiB: it fits the telemetry topic, but the
# dead letter's headers push it past the same limit on the dead-letter topic.
NEAR_LIMIT_BYTES = 1_048_400


def near_limit_value() -> bytes:
    """A JSON value of exactly ``NEAR_LIMIT_BYTES`` bytes (valid JSON, too large to score)."""
    head, tail = b'{"pad": "', b'"}'
    return head + b"x" * (NEAR_LIMIT_BYTES - len(head) - len(tail)) + tail


def figures(name: str, sent: set[tuple[int, int]], outputs: Outputs, recovery: float) -> None:
    """Print one fault's figures as a JSON line (``pytest -s`` shows them)."""
    answered = outputs.answered() & sent
    line = {
        "fault": name,
        "records_in": len(sent),
        "answered": len(answered),
        "missing": len(sent - answered),
        "duplicates": outputs.duplicates(),
        "recovery_seconds": round(recovery, 2),
    }
    print("FAULT-FIGURES " + json.dumps(line))


async def committed_to(bootstrap: str, group: str, partition: int, end: int, within: float) -> bool:
    """Whether ``group`` commits ``end`` on ``partition`` within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = {tp.partition: o for tp, o in (await group_offsets(bootstrap, group)).items()}
        if found.get(partition) == end:
            return True
        await asyncio.sleep(0.2)
    return False


async def set_topic_config(bootstrap: str, topic: str, name: str, value: str) -> None:
    """Change one config of ``topic`` on the broker (as an operator would, at runtime)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {name: value})])
    finally:
        await admin.close()


async def test_a_dead_letter_near_the_size_limit_does_not_stop_its_partition(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """Issue 17's case: a 1,048,400-byte value among 2,003 records; every offset answered once."""
    publish_model(model_dir)
    before, keys_before = telemetry(1000, seed=3)
    after, keys_after = telemetry(1000, seed=4, start=1000)
    values = [*before, b"nope", b"[1,2]", b"", near_limit_value(), *after]
    keys = [*keys_before, b"BAD-1", b"BAD-2", b"BAD-3", b"BAD-4", *keys_after]
    metas = await produce(
        kafka_bootstrap,
        topics.telemetry,
        values,
        keys=keys,
        partition=0,
        max_request_size=2_000_000,
    )
    sent = expected_offsets(metas)
    big = (0, 1003)
    assert metas[1003].offset == 1003
    settings = worker_settings(kafka_bootstrap, topics, model_dir, publish_all_verdicts=True)
    started = time.monotonic()
    async with running_worker(settings) as worker:
        outputs = await collect_outputs(kafka_bootstrap, topics, sent, timeout=90)
        committed = await committed_to(kafka_bootstrap, topics.group, 0, len(values), 30)
        recovery = time.monotonic() - started
        ready = await asgi_get(worker, "/health/ready")
    figures("dead letter near the size limit", sent, outputs, recovery)

    assert outputs.answered() == sent
    assert outputs.duplicates() == 0
    assert committed
    assert ready.status_code == 200, ready.json()
    (letter,) = outputs.dead_letters[big]
    headers = dict(letter.headers)
    assert headers["error"] == b"too_large"
    assert headers["value_truncated"] == b"true"
    assert headers["original_size"] == str(NEAR_LIMIT_BYTES).encode()
    assert len(letter.value or b"") < NEAR_LIMIT_BYTES


async def test_a_limit_lowered_at_runtime_costs_a_fresh_producer_not_the_partition(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """The broker refuses a dead letter sized to a stale limit: renewed producer, no loss."""
    publish_model(model_dir)
    settings = worker_settings(kafka_bootstrap, topics, model_dir, publish_all_verdicts=True)
    async with running_worker(settings) as worker:
        await wait_until(lambda: worker.state.consuming, 30, "consumption")
        await set_topic_config(kafka_bootstrap, topics.dlq, "max.message.bytes", "100000")
        assert worker.handler.limits.of(topics.dlq) > 100_000  # learnt before the change
        before, keys_before = telemetry(500, seed=5)
        after, keys_after = telemetry(500, seed=6, start=500)
        big = b'{"pad": "' + b"x" * 300_000 + b'"}'
        values = [*before, b"nope", big, b"[1]", *after]
        keys = [*keys_before, b"BAD-1", b"BAD-2", b"BAD-3", *keys_after]
        started = time.monotonic()
        metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys, partition=0)
        sent = expected_offsets(metas)
        outputs = await collect_outputs(kafka_bootstrap, topics, sent, timeout=90)
        committed = await committed_to(kafka_bootstrap, topics.group, 0, len(values), 30)
        recovery = time.monotonic() - started
        ready = await asgi_get(worker, "/health/ready")
    figures("dead-letter limit lowered at runtime", sent, outputs, recovery)

    assert outputs.answered() == sent
    assert outputs.duplicates() == 0
    assert committed
    assert ready.status_code == 200, ready.json()
    (letter,) = outputs.dead_letters[(0, 501)]
    assert dict(letter.headers)["value_truncated"] == b"true"
    assert letter.value == b""


async def test_a_record_refused_every_way_stops_its_partition_and_only_that(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """Not even a headers-only letter fits the DLQ: partition 0 stops, uncommitted; 1 goes on."""
    await set_topic_config(kafka_bootstrap, topics.dlq, "max.message.bytes", "120")
    publish_model(model_dir)
    first, first_keys = telemetry(100, seed=7)
    rest, rest_keys = telemetry(100, seed=8, start=100)
    stuck = await produce(
        kafka_bootstrap,
        topics.telemetry,
        [*first, b"nope", *rest],
        keys=[*first_keys, b"BAD", *rest_keys],
        partition=0,
    )
    other = await produce(kafka_bootstrap, topics.telemetry, first, keys=first_keys, partition=1)
    settings = worker_settings(
        kafka_bootstrap,
        topics,
        model_dir,
        publish_all_verdicts=True,
        consumer_refused_attempts=2,
        consumer_retry_backoff_max_seconds=0.5,
    )
    started = time.monotonic()
    async with running_worker(settings) as worker:
        await wait_until(lambda: worker.state.stopped_partitions, 60, "stopped partition")
        stopped_after = time.monotonic() - started
        ready = await asgi_get(worker, "/health/ready")
        assert await committed_to(kafka_bootstrap, topics.group, 1, len(other), 30)
        outputs = await collect_outputs(
            kafka_bootstrap, topics, expected_offsets(stuck) | expected_offsets(other), timeout=5
        )
        committed = {
            tp.partition: o
            for tp, o in (await group_offsets(kafka_bootstrap, topics.group)).items()
        }
    figures(
        "a record refused every way (partition stopped)",
        expected_offsets(stuck) | expected_offsets(other),
        outputs,
        stopped_after,
    )

    assert ready.status_code == 503
    assert any("stopped at offset" in reason for reason in ready.json()["reasons"])
    assert committed.get(0, 0) <= 100  # never past the refused record
    assert expected_offsets(other) <= outputs.answered()


async def test_five_percent_poison_with_two_megabyte_values_loses_and_repeats_nothing(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """Issue 17's storm, scaled to 20,000 records: 5% poison, ten 2 MB values among them."""
    await set_topic_config(kafka_bootstrap, topics.telemetry, "max.message.bytes", "3000000")
    publish_model(model_dir)
    values, keys = telemetry(20_000, seed=9)
    poison = [b"nope", b"[1,2]", b"", b'{"vehicle_id": 1}']
    huge = b'{"pad": "' + b"x" * 2_000_000 + b'"}'
    for bad, i in enumerate(range(0, len(values), 20)):  # every 20th record: 5%
        values[i] = huge if bad % 100 == 0 else poison[bad % len(poison)]
    assert sum(v == huge for v in values) == 10
    metas = await produce(
        kafka_bootstrap, topics.telemetry, values, keys=keys, max_request_size=3_000_000
    )
    sent = expected_offsets(metas)
    settings = worker_settings(kafka_bootstrap, topics, model_dir, publish_all_verdicts=True)
    started = time.monotonic()
    async with running_worker(settings):
        outputs = await collect_outputs(kafka_bootstrap, topics, sent, timeout=240)
        recovery = time.monotonic() - started
    figures("5% poison, ten 2 MB values, 20,000 records", sent, outputs, recovery)

    assert outputs.answered() == sent
    assert outputs.duplicates() == 0
    cut = [
        r
        for rs in outputs.dead_letters.values()
        for r in rs
        if dict(r.headers).get("value_truncated")
    ]
    assert len(cut) == 10
