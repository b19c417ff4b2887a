"""The Kafka adapter of :class:`consumer.context_store.TailReader`: a partition's tail, re-read.

One ``AIOKafkaConsumer`` outside the worker's group (no group id, no commits), built with
:func:`shared.kafka.client_options` and started on the first rebuild, then kept for the next
ones (a rebalance should not wait for a new connection); each read assigns the partitions
it needs and seeks. It closes with the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition

from consumer.processor import RecordLike
from shared.kafka import client_options
from shared.settings import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

Where = tuple[str, int]


class KafkaTailReader:
    """Reads ranges of the telemetry topic's partitions for the context rebuild."""

    def __init__(self, settings: Settings, poll_ms: int = 200) -> None:
        self.settings = settings
        self.poll_ms = poll_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            from aiokafka import AIOKafkaConsumer

            options: dict[str, Any] = client_options(self.settings)
            options["client_id"] = f"{options.get('client_id', 'vehicle-anomaly')}-context-replay"
            consumer = AIOKafkaConsumer(
                **options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def read(
        self, ranges: Mapping[Where, tuple[int, int]], chunk_records: int
    ) -> AsyncIterator[tuple[Where, Sequence[RecordLike]]]:
        """Chunks of each partition's records with ``start <= offset < stop``."""
        async with self._lock:
            consumer = await self._started()
            wanted = {TopicPartition(*where): bounds for where, bounds in ranges.items()}
            consumer.assign(list(wanted))
            begin = await consumer.beginning_offsets(list(wanted))
            live: dict[TopicPartition, int] = {}
            for tp, (start, stop) in wanted.items():
                start = max(start, begin[tp])
                if stop > start:
                    consumer.seek(tp, start)
                    live[tp] = stop
            consumer.pause(*(tp for tp in wanted if tp not in live))
            try:
                while live:
                    batches = await consumer.getmany(
                        *live, timeout_ms=self.poll_ms, max_records=chunk_records
                    )
                    if not any(batches.values()):
                        # nothing came: an empty chunk lets the caller check its deadline
                        idle = next(iter(live))
                        yield (idle.topic, idle.partition), []
                    for tp, messages in batches.items():
                        end = live.get(tp)
                        if end is None or not messages:
                            continue
                        if messages[-1].offset >= end:
                            messages = [m for m in messages if m.offset < end]
                        if messages:
                            yield (tp.topic, tp.partition), messages
                    for tp in list(live):
                        if await consumer.position(tp) >= live[tp]:
                            consumer.pause(tp)
                            del live[tp]
            finally:
                consumer.pause(*wanted)  # fetch nothing more until the next read

    async def close(self) -> None:
        """Stop the consumer, if one was started."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
