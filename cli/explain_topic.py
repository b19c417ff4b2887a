"""The latest anomalous verdicts on the anomalies topic, read backwards without a group."""

from __future__ import annotations

import json
import time
from typing import Any

from cli import kafkaio
from cli.config import Context
from cli.errors import CliError
from cli.explain_input import check_verdict


async def latest_from_topic(
    context: Context,
    topic: str,
    *,
    count: int,
    vehicle: str | None,
    scan: int,
    timeout: float,  # noqa: ASYNC109 (a bound on the whole read)
) -> tuple[list[dict[str, Any]], int]:
    """The latest ``count`` anomalous verdicts (of ``vehicle``), oldest first, and how many
    verdicts were read to find them.

    Reads each partition backwards from its end, in growing steps, at most ``scan`` verdicts
    per partition, until the ``count`` newest matches are newer than anything still unread.
    """
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    async with kafkaio.admin(context) as admin:
        partitions = (await kafkaio.partitions_of(admin, [topic], context))[topic]
    deadline = time.monotonic() + timeout
    async with kafkaio.consumer(context, auto_offset_reset="earliest") as consumer:
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        try:
            beginning = await consumer.beginning_offsets(assigned)
            end = await consumer.end_offsets(assigned)
        except KafkaError as error:
            raise CliError(f"reading {topic!r} failed: {kafkaio.kafka_reason(error)}") from None
        floor = {tp: max(beginning[tp], end[tp] - scan) for tp in assigned}
        lower = dict(end)  # [lower, end) of each partition has been read
        oldest: dict[Any, int] = {}  # the earliest timestamp read on each partition
        found: list[tuple[int, int, int, dict[str, Any]]] = []
        step = max(count * 4, 200)
        while True:
            ranges = {
                tp: (max(floor[tp], lower[tp] - step), lower[tp])
                for tp in assigned
                if lower[tp] > floor[tp]
            }
            if not ranges:
                break
            for message in await _read_ranges(consumer, ranges, deadline, topic, timeout):
                tp = TopicPartition(message.topic, message.partition)
                oldest[tp] = min(oldest.get(tp, message.timestamp), message.timestamp)
                verdict = _anomalous(message.value, vehicle)
                if verdict is not None:
                    found.append((message.timestamp, message.partition, message.offset, verdict))
            for tp, (low, _high) in ranges.items():
                lower[tp] = low
            if len(found) >= count:
                found.sort(key=lambda item: item[:3], reverse=True)
                # anything still unread on a partition is older than what was read there
                unread_bound = [oldest.get(tp, -1) for tp in assigned if lower[tp] > floor[tp]]
                if not unread_bound or found[count - 1][0] >= max(unread_bound):
                    break
            step *= 2
    found.sort(key=lambda item: item[:3], reverse=True)
    read = sum(end[tp] - lower[tp] for tp in assigned)
    return [verdict for *_, verdict in reversed(found[:count])], read


async def _read_ranges(
    consumer: Any,
    ranges: dict[Any, tuple[int, int]],
    deadline: float,
    topic: str,
    timeout: float,  # noqa: ASYNC109
) -> list[Any]:
    """The messages of each partition's [low, high) offsets."""
    from aiokafka.errors import KafkaError

    for tp, (low, _high) in ranges.items():
        consumer.seek(tp, low)
    pending = set(ranges)
    others = [tp for tp in consumer.assignment() if tp not in pending]
    if others:
        consumer.pause(*others)
    consumer.resume(*pending)
    messages: list[Any] = []
    try:
        while pending:
            if time.monotonic() > deadline:
                raise CliError(f"reading {topic!r} took longer than {timeout:g} s (see --timeout)")
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, batch in batches.items():
                high = ranges[tp][1]
                messages.extend(m for m in batch if m.offset < high)
            for tp in list(pending):
                if await consumer.position(tp) >= ranges[tp][1]:
                    pending.discard(tp)
                    consumer.pause(tp)
    except KafkaError as error:
        raise CliError(f"reading {topic!r} failed: {kafkaio.kafka_reason(error)}") from None
    return messages


def _anomalous(value: bytes | None, vehicle: str | None) -> dict[str, Any] | None:
    try:
        verdict = json.loads(value or b"")
    except (TypeError, ValueError):
        return None
    if not isinstance(verdict, dict) or verdict.get("is_anomaly") is not True:
        return None
    if vehicle is not None and verdict.get("vehicle_id") != vehicle:
        return None
    try:
        return check_verdict(verdict, "")
    except CliError:
        return None
