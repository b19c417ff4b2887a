"""A bound on retrying what the broker refuses (pure): no record can stop a partition unseen.

A batch that fails because the broker is unreachable is retried until it comes back (nothing
is lost in an outage). A batch the broker *refuses* (:func:`consumer.publishing.is_refusal`:
a message too large, a broken sequence) would fail the same way forever, re-publishing the
batch's other verdicts each time. :class:`RefusalGuard` counts those attempts per batch:

1. after ``attempts`` of them, each refused record is answered by a *last resort* dead letter
   instead (``error=publish_refused``, no key, no value, ``value_truncated``), which fits any
   topic that takes a record at all;
2. should that be refused as often too, the record's partition is *stopped*: the handler
   pauses it at the batch's first offset there, commits nothing past it, and readiness says
   why, until the partition is revoked or the worker restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from consumer.processor import (
    HEADER_ERROR,
    HEADER_ERROR_DETAIL,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
    MAX_DETAIL_CHARS,
    Kind,
    Outgoing,
)
from consumer.publishing import PublishError
from consumer.sizing import HEADER_VALUE_TRUNCATED
from shared.schemas import DeadLetterReason

Source = tuple[str, int, int]  # topic, partition, offset of the record a message answers
Where = tuple[str, int]


@dataclass(frozen=True, slots=True)
class StoppedPartition:
    """A partition the worker no longer consumes: where it stopped, and why."""

    topic: str
    partition: int
    offset: int
    reason: str

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}"


def source_of(message: Outgoing) -> Source:
    return (message.source_topic, message.source_partition, message.source_offset)


def last_resort_letter(message: Outgoing, dlq_topic: str, detail: str) -> Outgoing:
    """The smallest answer to ``message``'s record: a dead letter of headers only."""
    topic, partition, offset = source_of(message)
    headers = (
        (HEADER_ERROR, DeadLetterReason.PUBLISH_REFUSED.value.encode()),
        (HEADER_ERROR_DETAIL, detail[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
        (HEADER_SOURCE_TOPIC, topic.encode()),
        (HEADER_SOURCE_PARTITION, str(partition).encode()),
        (HEADER_SOURCE_OFFSET, str(offset).encode()),
        (HEADER_VALUE_TRUNCATED, b"true"),
    )
    return Outgoing(
        kind=Kind.DEAD_LETTER,
        topic=dlq_topic,
        key=None,
        value=b"",
        headers=headers,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        reason=DeadLetterReason.PUBLISH_REFUSED,
    )


class RefusalGuard:
    """Counts a batch's refused attempts; says what to send instead, and what to stop."""

    def __init__(self, attempts: int, dlq_topic: str) -> None:
        self.attempts = attempts
        self.dlq_topic = dlq_topic
        # the records answered by a last resort letter, with the refusal that made it so
        self.last_resort: dict[Source, str] = {}
        self._batch: tuple[tuple[Where, int], ...] | None = None
        self._count = 0

    def apply(self, messages: Sequence[Outgoing]) -> list[Outgoing]:
        """``messages`` with each last-resort record's message replaced by its letter."""
        if not self.last_resort:
            return list(messages)
        return [
            last_resort_letter(m, self.dlq_topic, self.last_resort[source_of(m)])
            if source_of(m) in self.last_resort
            else m
            for m in messages
        ]

    def failed(self, first: Mapping[Where, int], error: BaseException) -> list[StoppedPartition]:
        """Count a failed attempt of the batch starting at ``first``; the partitions to stop.

        Anything but a refusal resets the count (an outage is retried without a bound).
        """
        refused = error.refused if isinstance(error, PublishError) else ()
        batch = tuple(sorted(first.items()))
        if not refused:
            self._batch, self._count = None, 0
            return []
        if batch != self._batch:
            self._batch, self._count = batch, 0
        self._count += 1
        if self._count < self.attempts:
            return []
        self._count = 0
        detail = repr(error.__cause__ or error)
        sources = {source_of(m) for m in refused}
        fresh = sources - set(self.last_resort)
        if fresh:
            self.last_resort.update(dict.fromkeys(fresh, detail))
            return []
        stopped: dict[Where, StoppedPartition] = {}
        for topic, partition, _ in sorted(sources):
            where = (topic, partition)
            offset = first.get(where)
            if offset is not None and where not in stopped:
                stopped[where] = StoppedPartition(topic, partition, offset, detail)
        return list(stopped.values())

    def succeeded(self, next_offsets: Mapping[Where, int]) -> None:
        """The batch was published: its count ends, and its last-resort records are done."""
        self._batch, self._count = None, 0
        if self.last_resort:
            self.last_resort = {
                (t, p, o): detail
                for (t, p, o), detail in self.last_resort.items()
                if o >= next_offsets.get((t, p), -1)
            }
