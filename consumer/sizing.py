"""A dead letter sized before it is sent, against its topic's real limit (pure).

The broker refuses a record batch larger than the topic's ``max.message.bytes``; aiokafka's
idempotent producer numbers the refused batch anyway and never takes the number back, so
every later send to that partition fails (``OutOfOrderSequenceNumber``). A dead letter
carries its record's value plus headers, so a value that fits the telemetry topic can miss
the same limit on the dead-letter topic. :func:`fit_dead_letter` cuts the value first, so
such a letter is never refused; ``value_truncated`` and ``original_size`` say so.

The size is the Kafka v2 format's, for a batch of that one record (the producer's batches
hold a record past its batch size alone): :data:`BATCH_OVERHEAD` plus the record's fields,
an upper bound as aiokafka's own estimate is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from aiokafka.errors import MessageSizeTooLargeError

from consumer.processor import Kind, Outgoing

HEADER_VALUE_TRUNCATED = "value_truncated"
HEADER_ORIGINAL_SIZE = "original_size"

# The v2 record batch header (61 bytes, the log overhead included) and a record's largest
# fixed part: its length, attributes, timestamp and offset deltas (varints, 21 bytes at most).
BATCH_OVERHEAD = 61 + 21


def varint_size(value: int) -> int:
    """Bytes of ``value`` as a Kafka zigzag varint."""
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def _field(data: bytes | None) -> int:
    return 1 if data is None else varint_size(len(data)) + len(data)


def record_bytes(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """An upper bound of one record's batch on the wire (what ``max.message.bytes`` limits)."""
    size = BATCH_OVERHEAD + _field(key) + _field(value) + varint_size(len(headers))
    for name, data in headers:
        size += _field(name.encode()) + _field(data)
    return size


def message_bytes(message: Outgoing) -> int:
    """:func:`record_bytes` of an outgoing message."""
    return record_bytes(message.key, message.value, message.headers)


def truncated(message: Outgoing, value: bytes) -> Outgoing:
    """``message`` with ``value`` in place of its own, marked ``value_truncated``."""
    headers = (
        *message.headers,
        (HEADER_VALUE_TRUNCATED, b"true"),
        (HEADER_ORIGINAL_SIZE, str(len(message.value or b"")).encode()),
    )
    return replace(message, value=value, headers=headers)


def is_truncated(message: Outgoing) -> bool:
    """Whether ``message`` was cut already (it is never cut twice)."""
    return any(name == HEADER_VALUE_TRUNCATED for name, _ in message.headers)


def fit_dead_letter(message: Outgoing, limit: int) -> Outgoing:
    """A dead letter whose value is cut, when need be, so that it fits ``limit`` bytes.

    Anything else, or a letter that fits, is returned as it is. The cut keeps the value's
    first bytes (what fits); a letter whose key and headers alone miss the limit keeps none.
    """
    if message.kind is not Kind.DEAD_LETTER or message_bytes(message) <= limit:
        return message
    if is_truncated(message):
        return replace(message, value=b"")
    empty = truncated(message, b"")
    room = limit - message_bytes(empty)
    # the value's length varint grows with the value: at most 5 bytes for any Kafka record
    keep = max(0, room - 5)
    return truncated(message, (message.value or b"")[:keep])


def fit_all(messages: Sequence[Outgoing], limit_of: dict[str, int], default: int) -> list[Outgoing]:
    """Every dead letter of ``messages`` fitted to its topic's limit (``default`` if unknown)."""
    return [
        fit_dead_letter(m, limit_of.get(m.topic, default)) if m.kind is Kind.DEAD_LETTER else m
        for m in messages
    ]


def shrunk(message: Outgoing, error: BaseException) -> Outgoing | None:
    """The rule for a dead letter refused as too large anyway: it goes again, valueless.

    ``None`` for anything else (a verdict, another error, a dead letter already cut): that
    failure stands.
    """
    if (
        message.kind is not Kind.DEAD_LETTER
        or not isinstance(error, MessageSizeTooLargeError)
        or is_truncated(message)
    ):
        return None
    return truncated(message, b"")
