"""The FastStream glue: the telemetry subscriber, its parser, decoder and argument type.

The subscriber hands :class:`consumer.handlers.BatchHandler` aiokafka's raw
``ConsumerRecord`` tuple, with neither FastStream's parser (which decodes headers as UTF-8)
nor its JSON decoder touching a record; offsets are the handler's to commit (manual acks,
FastStream's fake consumer). It is created only once a model has loaded, as a dynamic
(non-persistent) subscriber, so a worker without a model joins no group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from faststream import AckPolicy

from consumer.fast_depends_compat import AwaitedRawField
from consumer.faststream_compat import (
    KafkaMessage,
    raw_batch_message,
    subscriber_consumer,
    subscriber_lock,
)
from consumer.handlers import BatchHandler, RebalanceListener
from consumer.tracing import trace_carrier
from shared.settings import Settings

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from consumer.faststream_compat import BatchSubscriber

RawBatch = Annotated[tuple[Any, ...], AwaitedRawField()]
"""The type of the subscriber function's argument: the raw ``ConsumerRecord`` tuple."""


async def parse_batch(records: tuple[Any, ...], *, traced: bool) -> KafkaMessage:
    """A batch parser that touches neither values nor headers (they may not be UTF-8).

    ``traced``: each record's trace context goes into ``batch_headers``, to which FastStream's
    telemetry middleware links the batch span (one entry per record with a ``traceparent``,
    its ``correlation_id`` the record's coordinates).
    """
    first, last = records[0], records[-1]
    batch_headers: list[dict[str, str]] = []
    if traced:
        for record in records:
            carrier = trace_carrier(record)
            if carrier is not None:
                carrier["correlation_id"] = f"{record.topic}-{record.partition}-{record.offset}"
                batch_headers.append(carrier)
    return raw_batch_message(
        records,
        batch_headers=batch_headers,
        message_id=f"{first.topic}-{first.partition}-{first.offset}-{last.offset}",
        correlation_id=f"{first.topic}-{first.partition}-{first.offset}",
    )


# FastStream passes a one-argument parser the message alone (a second argument would be
# FastStream's own parser): one wrapper per mode.
async def parse_raw_batch(records: tuple[Any, ...]) -> KafkaMessage:
    """:func:`parse_batch` without trace links (tracing off)."""
    return await parse_batch(records, traced=False)


async def parse_traced_batch(records: tuple[Any, ...]) -> KafkaMessage:
    """:func:`parse_batch` with each traced record's context for the batch span's links."""
    return await parse_batch(records, traced=True)


async def decode_raw_batch(message: KafkaMessage) -> tuple[Any, ...]:
    """The handler's body: the raw ``ConsumerRecord`` tuple, not JSON-decoded."""
    records: tuple[Any, ...] = message.raw_message
    return records


def telemetry_subscriber(
    broker: KafkaBroker, settings: Settings, handler: BatchHandler, *, traced: bool
) -> BatchSubscriber:
    """Declare the telemetry subscriber (not started) whose batches go to ``handler``."""
    session_timeout_ms = settings.consumer_session_timeout_ms
    subscriber = broker.subscriber(
        settings.telemetry_topic,
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        parser=parse_traced_batch if traced else parse_raw_batch,
        decoder=decode_raw_batch,
        listener=RebalanceListener(handler, settings.consumer_rebalance_wait_seconds),
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 3),
        persistent=False,
        include_in_schema=False,
    )

    @subscriber
    async def score_telemetry(records: RawBatch) -> None:
        consumer = subscriber_consumer(subscriber)
        if consumer is None:  # stopped between fetch and call: leave it uncommitted
            return
        # The subscriber's lock: a graceful stop waits for the background commit too.
        await handler.handle(records, consumer, hold=subscriber_lock(subscriber))

    return subscriber
