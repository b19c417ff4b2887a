"""Sending a batch's verdicts and dead letters: all at once, then confirmed together.

Two interchangeable sinks: :class:`AiokafkaSink` (a plain ``AIOKafkaProducer``, the default;
measured faster in ``bench/pipeline.py``) and :class:`FastStreamSink` (``broker.publish`` with
``no_confirm=True``). Both enqueue every message in input order before awaiting any of them,
so per-partition order holds, and :func:`publish_confirmed` returns only once the broker has
acknowledged every message (``acks=all``), or raises.

:class:`AiokafkaSink` appends a batch's verdicts straight into one record batch per
partition (aiokafka's ``create_batch``/``send_batch``), in input order: about a fifth of the
CPU of one ``send()`` per verdict. One acknowledgement then covers a partition's verdicts of
the batch; a refusal fails them all, which fails the batch as any refused verdict does. Dead
letters keep one ``send()`` each, so that one too large for the broker can be re-sent alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka.errors import MessageSizeTooLargeError

from consumer.processor import Kind, Outgoing
from shared.kafka.aiokafka_compat import default_partition, known_partitions

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from faststream.kafka import KafkaBroker

log = logging.getLogger("consumer.publishing")

HEADER_VALUE_TRUNCATED = "value_truncated"
HEADER_ORIGINAL_SIZE = "original_size"


class PublishError(Exception):
    """Some message of a batch was not acknowledged; the batch must be retried."""


class Sink(Protocol):
    """Enqueues one message and returns a future of its acknowledgement."""

    async def send(self, message: Outgoing) -> Awaitable[Any]: ...


# Messages enqueued together and the future of their acknowledgement.
Sent = tuple[Sequence[Outgoing], Awaitable[Any]]


class AiokafkaSink:
    """Publishes through a plain ``AIOKafkaProducer`` (acks=all, idempotent).

    A keyed message's partition is the one aiokafka's default partitioner picks (murmur2 of
    the key over all the topic's partitions), memoised per key and partition count: fleets
    have far fewer vehicles than messages, and the pure-Python hash was a tenth of the cost.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        *,
        memoise_partitions: bool = True,
        group_verdicts: bool = True,
    ) -> None:
        self.producer = producer
        self.memoise_partitions = memoise_partitions
        self.group_verdicts = group_verdicts
        self._partitions: dict[tuple[str, bytes, int], int] = {}

    def _partition_of(self, topic: str, key: bytes | None) -> int | None:
        if key is None or not self.memoise_partitions:
            return None
        known = known_partitions(self.producer, topic)
        if not known:
            return None  # no metadata yet: let send() wait for it and partition itself
        count = len(known)
        where = (topic, key, count)
        partition = self._partitions.get(where)
        if partition is None:
            if len(self._partitions) > 1_000_000:
                self._partitions.clear()
            partition = self._partitions[where] = default_partition(key, sorted(known))
        return partition

    async def send(self, message: Outgoing) -> Awaitable[Any]:
        future: Awaitable[Any] = await self.producer.send(
            message.topic,
            value=message.value,
            key=message.key,
            partition=self._partition_of(message.topic, message.key),
            headers=list(message.headers),
        )
        return future

    async def send_grouped(self, messages: Sequence[Outgoing], sent: list[Sent]) -> None:
        """Enqueue ``messages`` as one record batch per partition, in order; appends to ``sent``.

        A message whose partition is not known yet (no metadata), or that fits no record batch
        on its own, goes through :meth:`send` after whatever was batched before it for its
        partition.
        """
        producer = self.producer
        open_batches: dict[tuple[str, int], tuple[Any, list[Outgoing]]] = {}

        async def submit(topic: str, partition: int) -> None:
            builder, members = open_batches.pop((topic, partition))
            if members:
                sent.append(
                    (members, await producer.send_batch(builder, topic, partition=partition))
                )

        for message in messages:
            partition = self._partition_of(message.topic, message.key)
            if partition is None:
                sent.append(((message,), await self.send(message)))
                continue
            where = (message.topic, partition)
            for _ in range(2):  # into the open batch, else into a new one
                if where not in open_batches:
                    open_batches[where] = (producer.create_batch(), [])
                builder, members = open_batches[where]
                appended = builder.append(
                    key=message.key,
                    value=message.value,
                    timestamp=None,
                    headers=list(message.headers),  # the C record builder takes a list only
                )
                if appended is not None:
                    members.append(message)
                    break
                await submit(*where)  # full (or this message fits no batch): send it as it is
            else:
                sent.append(((message,), await self.send(message)))
        for where in list(open_batches):
            await submit(*where)


class FastStreamSink:
    """Publishes through FastStream's ``broker.publish(..., no_confirm=True)``."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker

    async def send(self, message: Outgoing) -> Awaitable[Any]:
        headers = {name: value.decode("utf-8", "replace") for name, value in message.headers}
        future: Awaitable[Any] = await self.broker.publish(
            message.value,
            message.topic,
            key=message.key,
            headers=headers,
            no_confirm=True,
        )
        return future


def truncated(message: Outgoing) -> Outgoing:
    """A dead letter whose value the broker refused as too large: sent without its value."""
    size = len(message.value or b"")
    headers = (
        *message.headers,
        (HEADER_VALUE_TRUNCATED, b"true"),
        (HEADER_ORIGINAL_SIZE, str(size).encode()),
    )
    return replace(message, value=b"", headers=headers)


async def _settle(futures: Sequence[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*futures, return_exceptions=True))


def _grouped(sink: Sink, messages: Sequence[Outgoing]) -> list[Outgoing]:
    """The verdicts to enqueue as record batches (none when the sink cannot, or when a dead
    letter goes to a verdict topic: then every message keeps its place, one by one)."""
    if not (isinstance(sink, AiokafkaSink) and sink.group_verdicts):
        return []
    verdicts = [m for m in messages if m.kind is Kind.VERDICT]
    if len(verdicts) < len(messages):
        topics = {m.topic for m in verdicts}
        if any(m.topic in topics for m in messages if m.kind is not Kind.VERDICT):
            return []
    return verdicts


async def _send_all(
    sink: Sink, messages: Sequence[Outgoing]
) -> list[tuple[Sequence[Outgoing], Any]]:
    """Enqueue every message in order; a dead letter refused client-side goes truncated.

    Returns each group of messages enqueued together with its outcome (a result or an error).
    """
    sent: list[Sent] = []
    together = _grouped(sink, messages)
    try:
        if together:
            assert isinstance(sink, AiokafkaSink)
            await sink.send_grouped(together, sent)
        for message in messages:
            if together and message.kind is Kind.VERDICT:
                continue
            try:
                sent.append(((message,), await sink.send(message)))
            except MessageSizeTooLargeError:
                if message.kind is not Kind.DEAD_LETTER:
                    raise
                smaller = truncated(message)
                sent.append(((smaller,), await sink.send(smaller)))
    except BaseException:
        # Retrieve what was already enqueued so no exception is left unobserved.
        await _settle([future for _, future in sent])
        raise
    results = await _settle([future for _, future in sent])
    return [(group, result) for (group, _), result in zip(sent, results, strict=True)]


async def publish_confirmed(sink: Sink, messages: Sequence[Outgoing]) -> None:
    """Send ``messages`` concurrently and wait until the broker acknowledged each one.

    A dead letter that the broker refuses as too large is re-sent without its value (the
    ``value_truncated`` header says so): a record that fits the telemetry topic but not the
    dead-letter topic must not block its partition. Any other failure raises
    :class:`PublishError`.
    """
    try:
        outcomes = await _send_all(sink, messages)
    except Exception as error:
        raise PublishError(f"could not enqueue the batch: {error!r}") from error
    retry: list[Outgoing] = []
    first_error: BaseException | None = None
    for group, result in outcomes:
        if not isinstance(result, BaseException):
            continue
        message = group[0]
        if (
            len(group) == 1
            and message.kind is Kind.DEAD_LETTER
            and isinstance(result, MessageSizeTooLargeError)
            and not any(name == HEADER_VALUE_TRUNCATED for name, _ in message.headers)
        ):
            retry.append(truncated(message))
        elif first_error is None:
            first_error = result
    if first_error is not None:
        raise PublishError(f"the broker did not acknowledge the batch: {first_error!r}") from (
            first_error
        )
    if retry:
        log.warning(
            "dead letters too large for the broker were sent without their value",
            extra={"count": len(retry)},
        )
        await publish_confirmed(sink, retry)
