"""The FastStream, fast_depends and prometheus_client internals the worker uses, one test each.

They fail on the first release that changes them (see ``consumer/faststream_compat.py``,
``consumer/fast_depends_compat.py`` and ``consumer/prometheus_compat.py``, the only importers
of those internals).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Annotated, Any

from fast_depends.library import CustomField
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.message import AckStatus

from consumer import faststream_compat
from consumer.fast_depends_compat import AwaitedRawField


def batch_subscriber(broker: KafkaBroker, **options: Any) -> Any:
    """A manual-ack batch subscriber on ``broker``, as the worker declares its own."""
    subscriber = broker.subscriber(
        "compat", batch=True, ack_policy=AckPolicy.MANUAL, group_id="g", **options
    )

    @subscriber  # type: ignore[untyped-decorator]  # FastStream's decorator is not typed for mypy
    async def handle(records: Any) -> None:
        pass

    return subscriber


async def test_started_subscriber_lock_is_the_multilock_its_graceful_stop_waits_for() -> None:
    """start() sets ``lock`` to a MultiLock, and stop() waits until every holder released it."""
    from faststream._internal.endpoint.subscriber.usecase import SubscriberUsecase

    broker = KafkaBroker(graceful_timeout=5)
    subscriber = batch_subscriber(broker)
    assert faststream_compat.subscriber_lock(subscriber) is None  # not started: a nullcontext
    async with TestKafkaBroker(broker):
        await SubscriberUsecase.start(subscriber)  # the generic start, without a real consumer
        hold = faststream_compat.subscriber_lock(subscriber)
        assert hold is not None and hold is subscriber.lock
        hold.acquire()
        stopping = asyncio.create_task(subscriber.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        hold.release()
        await asyncio.wait_for(stopping, 1)


def test_kafka_subscriber_keeps_its_consumer_in_an_attribute() -> None:
    """A batch subscriber is a BatchSubscriber whose ``consumer`` slot is None until it starts."""
    from faststream.kafka.subscriber.usecase import BatchSubscriber, LogicSubscriber

    subscriber = batch_subscriber(KafkaBroker())
    assert isinstance(subscriber, BatchSubscriber)
    assert "consumer" in LogicSubscriber.__slots__
    assert faststream_compat.subscriber_consumer(subscriber) is None


async def test_raw_batch_message_carries_the_records_and_never_commits() -> None:
    """The message wraps the tuple as is, keeps batch headers, and its ack commits nothing."""
    records = (object(), object())
    links = [{"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "correlation_id": "a"}]
    message = faststream_compat.raw_batch_message(
        records, message_id="m", correlation_id="c", batch_headers=links
    )
    assert message.raw_message is records and message.body == b""
    assert (message.message_id, message.correlation_id) == ("m", "c")
    assert message.batch_headers == links
    assert message.committed is AckStatus.ACKED  # FastStream skips its own commit
    assert message.consumer is faststream_compat.FAKE_CONSUMER
    await message.ack()  # a no-op on the fake consumer
    plain = faststream_compat.raw_batch_message(records, message_id="m", correlation_id="c")
    assert plain.batch_headers == []


def test_custom_field_use_takes_keyword_arguments_only() -> None:
    """``CustomField.use(self, /, **kwargs)`` is the method the awaited field overrides."""
    parameters = list(inspect.signature(CustomField.use).parameters.values())
    assert [p.kind for p in parameters] == [
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.VAR_KEYWORD,
    ]
    field = AwaitedRawField()
    assert field.cast is False
    assert inspect.iscoroutinefunction(field.use)


async def test_a_coroutine_use_is_awaited_not_run_in_a_thread() -> None:
    """The handler gets the raw tuple, and fast_depends resolves it without a worker thread."""
    import anyio.to_thread

    from consumer.subscription import decode_raw_batch, parse_raw_batch

    broker = KafkaBroker(graceful_timeout=5)
    subscriber = broker.subscriber(
        "raw-batch",
        batch=True,
        ack_policy=AckPolicy.MANUAL,
        parser=parse_raw_batch,
        decoder=decode_raw_batch,
        group_id="g",
    )
    got: list[Any] = []

    @subscriber
    async def handle(records: Annotated[tuple[Any, ...], AwaitedRawField()]) -> None:
        got.append(records)

    real = anyio.to_thread.run_sync
    hops: list[Any] = []

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await real(func, *args, **kwargs)

    anyio.to_thread.run_sync = counting  # type: ignore[assignment]  # counts thread hops
    try:
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish(b"\xff", "raw-batch")
            assert isinstance(got[0], tuple | list)  # the test client hands a list
            assert got[0][0].value == b"\xff"
    finally:
        anyio.to_thread.run_sync = real
    assert hops == []


def test_histogram_bounds_buckets_and_sum_are_what_observe_updates() -> None:
    """Incrementing the private bucket and sum equals observe(); bounds end with +Inf."""
    from prometheus_client import CollectorRegistry, Histogram

    from consumer import prometheus_compat

    def histogram() -> Histogram:
        return Histogram("h", "x", registry=CollectorRegistry(), buckets=(0.5, 2.0))

    by_observe, by_compat = histogram(), histogram()
    by_observe.observe(1.0)
    assert list(prometheus_compat.histogram_bounds(by_compat)) == [0.5, 2.0, float("inf")]
    buckets = prometheus_compat.histogram_buckets(by_compat)
    assert len(buckets) == 3
    buckets[1].inc(1)
    prometheus_compat.histogram_sum(by_compat).inc(1.0)

    def samples(h: Histogram) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name, s.labels, s.value)
            for metric in h.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        ]

    assert samples(by_compat) == samples(by_observe)
