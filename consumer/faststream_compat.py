"""Every FastStream internal the worker relies on, behind one door.

FastStream keeps these out of its documented API, so a release may change them. Each is
covered by ``tests/unit/consumer/test_compat.py``, which fails on the first release that
breaks it; the range in ``pyproject.toml`` is pinned to the minor those tests passed on.

* :func:`subscriber_lock`: the ``MultiLock`` a started subscriber keeps in ``lock``; its
  graceful stop waits (up to ``graceful_timeout``) until every holder released it, so the
  background committer holds it too;
* :func:`subscriber_consumer`: the ``AIOKafkaConsumer`` a started Kafka subscriber keeps in
  ``consumer`` (assignment, positions, explicit commits);
* :func:`raw_batch_message`: a ``KafkaMessage`` built by our own parser around the raw
  record tuple, with FastStream's ``FAKE_CONSUMER`` so that FastStream never commits;
* :data:`BatchSubscriber`: the class of a batch subscriber, for annotations only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from faststream._internal.endpoint.subscriber.utils import MultiLock
from faststream.kafka.message import FAKE_CONSUMER as FAKE_CONSUMER
from faststream.kafka.message import KafkaMessage as KafkaMessage

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from faststream.kafka.subscriber.usecase import BatchSubscriber as BatchSubscriber


class Hold(Protocol):
    """Something a graceful shutdown waits for while it is held (the subscriber's lock)."""

    def acquire(self) -> None: ...

    def release(self) -> None: ...


def subscriber_lock(subscriber: Any) -> Hold | None:
    """The lock a started subscriber's graceful stop waits for (``None`` before its start)."""
    lock = getattr(subscriber, "lock", None)
    return lock if isinstance(lock, MultiLock) else None


def subscriber_consumer(subscriber: Any) -> AIOKafkaConsumer | None:
    """The aiokafka consumer of a started Kafka subscriber (``None`` when it is stopped)."""
    consumer: AIOKafkaConsumer | None = subscriber.consumer
    return consumer


def raw_batch_message(
    records: tuple[Any, ...],
    *,
    message_id: str,
    correlation_id: str,
    batch_headers: list[dict[str, str]] | None = None,
) -> KafkaMessage:
    """FastStream's message for a batch whose body is left undecoded and never committed.

    ``batch_headers`` feed FastStream's telemetry middleware, which links the batch span to
    every entry with a ``traceparent`` and a distinct ``correlation_id``.
    """
    return KafkaMessage(
        body=b"",
        raw_message=records,
        batch_headers=batch_headers,
        message_id=message_id,
        correlation_id=correlation_id,
        consumer=FAKE_CONSUMER,  # offsets are committed by the worker, never by FastStream
    )
