# One concern, a batch's messages from enqueue to acknowledgement, keeps this module past 300 lines.
"""Sending a batch's verdicts and dead letters: all at once, then confirmed together.

Two interchangeable sinks: :class:`AiokafkaSink` (a plain ``AIOKafkaProducer``, the default;
measured faster in ``bench/pipeline.py``) and :class:`FastStreamSink` (``broker.publish`` with
``no_confirm=True``). Each :meth:`Sink.send_all` enqueues every message in input order before
awaiting any of them, so per-partition order holds, and :func:`publish_confirmed` returns only
once the broker has acknowledged every message (``acks=all``), or raises. A dead letter too
large for the broker (refused on ``send`` or on acknowledgement) goes again without its value:
:func:`consumer.sizing.shrunk` is that rule. A refusal by the broker breaks aiokafka's
idempotent sequence for that partition (the refused batch's number is never reused, so every
later send there fails ``OutOfOrderSequenceNumber``): the sink is renewed (a fresh producer)
before anything is sent again, and :class:`PublishError` names the refused messages.

:class:`AiokafkaSink` appends a batch's verdicts straight into one record batch per
partition (aiokafka's ``create_batch``/``send_batch``), in input order: about a fifth of the
CPU of one ``send()`` per verdict. One acknowledgement then covers a partition's verdicts of
the batch; a refusal fails them all, which fails the batch as any refused verdict does. Dead
letters keep one ``send()`` each, so that one too large for the broker can be re-sent alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka.errors import (
    CorruptRecordException,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    RecordListTooLargeError,
)

from consumer.processor import Kind, Outgoing
from consumer.sizing import HEADER_ORIGINAL_SIZE, HEADER_VALUE_TRUNCATED, shrunk
from shared.kafka.aiokafka_compat import default_partition, known_partitions

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from faststream.kafka import KafkaBroker

log = logging.getLogger("consumer.publishing")

__all__ = ["HEADER_ORIGINAL_SIZE", "HEADER_VALUE_TRUNCATED", "PublishError", "shrunk"]

# The broker's refusals of what was sent, as opposed to its absence: retrying the same
# message cannot help, and each one breaks the idempotent producer's sequence.
REFUSALS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    OutOfOrderSequenceNumber,
)


def is_refusal(error: BaseException) -> bool:
    """Whether ``error`` is the broker refusing a message (not an outage or a timeout)."""
    return isinstance(error, REFUSALS)


class PublishError(Exception):
    """Some message of a batch was not acknowledged; the batch must be retried.

    ``refused``: the messages the broker refused (empty when it was unreachable instead).
    """

    def __init__(self, text: str, refused: Sequence[Outgoing] = ()) -> None:
        super().__init__(text)
        self.refused = tuple(refused)


# Messages enqueued together and the future of their acknowledgement.
Sent = tuple[Sequence[Outgoing], Awaitable[Any]]


class Sink(Protocol):
    """Enqueues a batch's messages, in order, and hands back their acknowledgement futures."""

    async def send_all(self, messages: Sequence[Outgoing]) -> list[Sent]:
        """Every message enqueued (none awaited), as groups that are acknowledged together.

        Raises when one cannot be enqueued, after the futures of the others have settled.
        """
        ...

    async def renew(self) -> bool:
        """Start sending through a fresh producer (a refusal broke the old one's sequence);
        ``False`` when this sink cannot."""
        ...


async def _settle(futures: Sequence[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*futures, return_exceptions=True))


async def send_each(
    send: Callable[[Outgoing], Awaitable[Awaitable[Any]]],
    messages: Sequence[Outgoing],
    sent: list[Sent],
) -> None:
    """Enqueue ``messages`` one ``send`` each, in order, appending to ``sent``.

    A dead letter refused client-side (aiokafka checks the size on ``send``) is enqueued
    again in its place, :func:`shrunk`.
    """
    for message in messages:
        try:
            sent.append(((message,), await send(message)))
        except MessageSizeTooLargeError as error:
            smaller = shrunk(message, error)
            if smaller is None:
                raise PublishError(f"refused on send: {error!r}", (message,)) from error
            sent.append(((smaller,), await send(smaller)))


async def enqueued(fill: Callable[[list[Sent]], Awaitable[None]]) -> list[Sent]:
    """What ``fill`` enqueued; if it raises, the enqueued futures settle first (none unobserved)."""
    sent: list[Sent] = []
    try:
        await fill(sent)
    except BaseException:
        await _settle([future for _, future in sent])
        raise
    return sent


class OneByOne:
    """A sink whose ``send_all`` is one ``send`` per message (subclasses define ``send``)."""

    async def send(self, message: Outgoing) -> Awaitable[Any]:
        raise NotImplementedError

    async def renew(self) -> bool:
        """Not supported: the producer is not this sink's own."""
        return False

    async def send_all(self, messages: Sequence[Outgoing]) -> list[Sent]:
        """Every message through :meth:`send`, in order."""

        async def fill(sent: list[Sent]) -> None:
            await send_each(self.send, messages, sent)

        return await enqueued(fill)


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
        make_producer: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self.producer = producer
        self.make_producer = make_producer
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

    async def renew(self) -> bool:
        """A fresh producer (a new producer id, sequences from zero); the old one is closed."""
        if self.make_producer is None:
            return False
        fresh = self.make_producer()
        await fresh.start()
        old, self.producer = self.producer, fresh
        try:
            await old.stop()
        except Exception as error:  # its sends have settled; a failing close changes nothing
            log.debug("closing the replaced producer failed", extra={"error": repr(error)})
        return True

    async def send(self, message: Outgoing) -> Awaitable[Any]:
        future: Awaitable[Any] = await self.producer.send(
            message.topic,
            value=message.value,
            key=message.key,
            partition=self._partition_of(message.topic, message.key),
            headers=list(message.headers),
        )
        return future

    def _groupable(self, messages: Sequence[Outgoing]) -> list[Outgoing]:
        """The verdicts to enqueue as record batches (none when grouping is off, or when a
        dead letter goes to a verdict topic: then every message keeps its place, one by one)."""
        if not self.group_verdicts:
            return []
        verdicts = [m for m in messages if m.kind is Kind.VERDICT]
        if len(verdicts) < len(messages):
            topics = {m.topic for m in verdicts}
            if any(m.topic in topics for m in messages if m.kind is not Kind.VERDICT):
                return []
        return verdicts

    async def send_all(self, messages: Sequence[Outgoing]) -> list[Sent]:
        """The verdicts as record batches per partition, then the rest one by one."""
        together = self._groupable(messages)

        async def fill(sent: list[Sent]) -> None:
            if together:
                await self.send_grouped(together, sent)
            rest = [m for m in messages if m.kind is not Kind.VERDICT] if together else messages
            await send_each(self.send, rest, sent)

        return await enqueued(fill)

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


class FastStreamSink(OneByOne):
    """Publishes through FastStream's ``broker.publish(..., no_confirm=True)``, one by one."""

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


async def publish_confirmed(sink: Sink, messages: Sequence[Outgoing], *, again: int = 1) -> None:
    """Send ``messages`` concurrently and wait until the broker acknowledged each one.

    A dead letter that the broker refuses as too large is re-sent without its value (the
    ``value_truncated`` header says so): a record that fits the telemetry topic but not the
    dead-letter topic must not block its partition. A refusal renews the sink's producer;
    the messages that failed only because it broke the sequence (``OutOfOrderSequenceNumber``)
    are re-sent with it, in their order, ``again`` times at most. Any other failure raises
    :class:`PublishError`, which names the refused messages.
    """
    try:
        sent = await sink.send_all(messages)
    except PublishError:
        raise
    except Exception as error:
        raise PublishError(f"could not enqueue the batch: {error!r}") from error
    results = await _settle([future for _, future in sent])
    resend: list[Outgoing] = []  # in the order they were sent
    refused: list[Outgoing] = []
    first_error: BaseException | None = None
    for (group, _), result in zip(sent, results, strict=True):
        if not isinstance(result, BaseException):
            continue
        smaller = shrunk(group[0], result) if len(group) == 1 else None
        if smaller is not None:
            resend.append(smaller)
            continue
        if isinstance(result, OutOfOrderSequenceNumber) and again > 0:
            resend.extend(group)  # a broken sequence fails what follows the refused message
            continue
        if is_refusal(result):
            refused.extend(group)
        if first_error is None or (is_refusal(result) and not is_refusal(first_error)):
            first_error = result  # a refusal is the news, rather than what it caused
    renewed = False
    if resend or refused:
        renewed = await sink.renew()
        log.warning(
            "the broker refused messages; a fresh producer sends from now on"
            if renewed
            else "the broker refused messages; this publisher cannot renew its producer",
            extra={"refused": len(refused), "resent": len(resend), "renewed": renewed},
        )
    if first_error is not None:
        raise PublishError(
            f"the broker did not acknowledge the batch: {first_error!r}", refused
        ) from first_error
    if resend:
        await publish_confirmed(sink, resend, again=again - 1 if renewed else 0)
