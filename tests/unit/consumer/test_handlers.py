"""The batch handler's I/O shell with fakes: publish all, confirm, then commit; never before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
)

from consumer.handlers import BatchHandler, RebalanceListener
from consumer.metrics import WorkerMetrics
from consumer.processor import BatchProcessor, Kind, Outgoing
from consumer.publishing import PublishError, publish_confirmed
from consumer.state import WorkerState
from tests.unit.consumer.fakes import (
    TOPIC,
    FakeConsumer,
    FakeHold,
    FakeSink,
    Rec,
    make_detector,
    records,
    valid_value,
)


def build(
    sink: FakeSink, *, detector: bool = True, background: bool = True
) -> tuple[BatchHandler, WorkerState, list[float]]:
    state = WorkerState(detector=make_detector() if detector else None)
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    handler = BatchHandler(
        BatchProcessor(anomaly_topic="anomalies", dlq_topic="dlq", publish_all=True),
        sink,
        state,
        WorkerMetrics(),
        sleep=fake_sleep,
        background_commit=background,
    )
    return handler, state, sleeps


both_commit_modes = pytest.mark.parametrize("background", [True, False], ids=["behind", "inline"])


def mixed_batch() -> list[Rec]:
    return [
        *records([valid_value("VH-1"), b"garbage"], partition=0, start=100),
        *records([valid_value("VH-2")], partition=1, start=7),
    ]


@both_commit_modes
async def test_success_publishes_everything_then_commits_next_offsets(background: bool) -> None:
    """All messages are acknowledged before the commit, which names the offsets after the batch."""
    sink = FakeSink()
    handler, state, _ = build(sink, background=background)
    consumer = FakeConsumer()
    assert await handler.handle(mixed_batch(), consumer)
    await handler.drain()
    assert [m.source_offset for m in sink.sent] == [100, 101, 7]
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 102, TopicPartition(TOPIC, 1): 8}]
    assert consumer.seeks == []
    assert state.batches == 1
    assert state.records == 3
    assert state.dead_letters == {"invalid_json": 1}
    assert handler.idle.is_set()


@both_commit_modes
async def test_commit_waits_for_every_acknowledgement(background: bool) -> None:
    """While any message is unacknowledged nothing is committed."""
    sink = FakeSink()
    sink.gate = asyncio.Event()
    handler, _, _ = build(sink, background=background)
    consumer = FakeConsumer()
    task = asyncio.create_task(handler.handle(mixed_batch(), consumer))
    await asyncio.sleep(0.05)
    assert len(sink.sent) == 3
    assert consumer.commits == []
    assert not handler.idle.is_set()
    sink.gate.set()
    assert await task
    await handler.drain()
    assert len(consumer.commits) == 1
    assert handler.idle.is_set()


@both_commit_modes
async def test_publish_failure_rewinds_and_commits_nothing(background: bool) -> None:
    """A refused message rewinds each partition to the batch's first offset, with a back-off."""
    sink = FakeSink(fail_on=lambda m: KafkaTimeoutError() if m.source_offset == 7 else None)
    handler, state, sleeps = build(sink, background=background)
    consumer = FakeConsumer()
    assert not await handler.handle(mixed_batch(), consumer)
    await handler.drain()
    assert consumer.commits == []
    assert sorted(consumer.seeks) == [
        (TopicPartition(TOPIC, 0), 100),
        (TopicPartition(TOPIC, 1), 7),
    ]
    assert state.batch_failures == 1
    assert state.batches == 0
    assert len(sleeps) == 1
    assert not await handler.handle(mixed_batch(), consumer)
    assert sleeps[1] > sleeps[0]  # exponential back-off


async def test_cancelled_batch_commits_nothing() -> None:
    """A batch cancelled mid-publish (shutdown timeout) leaves its offsets uncommitted."""
    sink = FakeSink()
    sink.gate = asyncio.Event()
    handler, _, _ = build(sink)
    consumer = FakeConsumer()
    task = asyncio.create_task(handler.handle(mixed_batch(), consumer))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sink.gate.set()
    await asyncio.sleep(0.01)
    await handler.drain()
    assert consumer.commits == []
    assert handler.idle.is_set()


@both_commit_modes
async def test_revoked_partitions_are_not_committed(background: bool) -> None:
    """Offsets of a partition revoked meanwhile are left to its new owner."""
    handler, _, _ = build(FakeSink(), background=background)
    consumer = FakeConsumer(assigned={TopicPartition(TOPIC, 1)})
    assert await handler.handle(mixed_batch(), consumer)
    await handler.drain()
    assert consumer.commits == [{TopicPartition(TOPIC, 1): 8}]


@both_commit_modes
@pytest.mark.parametrize("error", [CommitFailedError(), IllegalStateError()])
async def test_refused_commit_is_logged_not_raised(error: Exception, background: bool) -> None:
    """A commit refused after a rebalance does not crash the worker (records are redelivered)."""
    handler, state, _ = build(FakeSink(), background=background)
    consumer = FakeConsumer(commit_error=error)
    assert await handler.handle(mixed_batch(), consumer)
    await handler.drain()
    assert state.commit_failures == 1
    assert handler.idle.is_set()


async def test_background_commit_lets_the_next_batch_start_and_keeps_commits_in_order() -> None:
    """The next batch runs while a commit is in flight; commits never overlap or go back."""
    handler, state, _ = build(FakeSink())
    consumer = FakeConsumer(commit_gate=asyncio.Event())
    hold = FakeHold()
    assert await handler.handle(records([valid_value()], partition=0, start=10), consumer, hold)
    assert consumer.commits == []  # returned before its commit finished
    assert not handler.idle.is_set()
    assert hold.held == 1
    # Two more batches while the first commit is still in flight: their offsets wait, merged.
    assert await handler.handle(records([valid_value()], partition=0, start=11), consumer, hold)
    assert await handler.handle(records([valid_value()], partition=1, start=3), consumer, hold)
    assert state.batches == 3
    assert consumer.commits == []
    assert consumer.commit_gate is not None
    consumer.commit_gate.set()
    await handler.drain()
    assert consumer.commits == [
        {TopicPartition(TOPIC, 0): 11},
        {TopicPartition(TOPIC, 0): 12, TopicPartition(TOPIC, 1): 4},
    ]
    assert consumer.most_in_flight == 1
    assert handler.idle.is_set()
    assert hold.held == 0
    assert hold.acquired == 1


async def test_background_commit_never_covers_an_unacknowledged_batch() -> None:
    """A batch that fails to publish adds nothing to the commit behind the one before it."""
    sink = FakeSink(fail_on=lambda m: KafkaTimeoutError() if m.source_offset >= 20 else None)
    handler, _, _ = build(sink)
    consumer = FakeConsumer(commit_gate=asyncio.Event())
    assert await handler.handle(records([valid_value()], start=19), consumer)
    assert not await handler.handle(records([valid_value()], start=20), consumer)
    assert consumer.commit_gate is not None
    consumer.commit_gate.set()
    await handler.drain()
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 20}]
    assert consumer.seeks == [(TopicPartition(TOPIC, 0), 20)]


async def test_background_commit_retries_a_failed_commit() -> None:
    """A commit that fails for another reason than a rebalance is tried again."""
    handler, state, _ = build(FakeSink())
    consumer = FakeConsumer(commit_errors=[KafkaTimeoutError(), KafkaTimeoutError()])
    assert await handler.handle(mixed_batch(), consumer)
    await asyncio.wait_for(handler.drain(), 5)
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 102, TopicPartition(TOPIC, 1): 8}]
    assert state.commit_failures == 0


async def test_rebalance_waits_for_the_background_commit_and_forgets_revoked_offsets() -> None:
    """Revocation waits for the commit in flight; offsets of revoked partitions are dropped."""
    handler, _, _ = build(FakeSink())
    consumer = FakeConsumer(commit_gate=asyncio.Event())
    listener = RebalanceListener(handler, wait_seconds=5)
    assert await handler.handle(records([valid_value()], partition=0, start=5), consumer)
    revoke = asyncio.create_task(listener.on_partitions_revoked({TopicPartition(TOPIC, 0)}))
    await asyncio.sleep(0.02)
    assert not revoke.done()
    assert consumer.commit_gate is not None
    consumer.commit_gate.set()
    await asyncio.wait_for(revoke, 1)
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 6}]

    # Timed out while a commit hangs: the revoked partition's pending offsets are forgotten.
    consumer.commit_gate.clear()
    assert await handler.handle(records([valid_value()], partition=1, start=0), consumer)
    assert await handler.handle(records([valid_value()], partition=1, start=1), consumer)
    await RebalanceListener(handler, wait_seconds=0.05).on_partitions_revoked(
        {TopicPartition(TOPIC, 1)}
    )
    consumer.commit_gate.set()
    await handler.drain()
    assert consumer.commits[1:] == [{TopicPartition(TOPIC, 1): 1}]  # not the forgotten 2


async def test_no_model_rewinds() -> None:
    """Without a detector nothing is published or committed."""
    sink = FakeSink()
    handler, _, _ = build(sink, detector=False)
    consumer = FakeConsumer()
    assert not await handler.handle(mixed_batch(), consumer)
    assert sink.sent == []
    assert consumer.commits == []
    assert consumer.seeks


async def test_verdicts_carry_the_version_in_use_when_the_batch_started() -> None:
    """A swap takes effect from the next batch."""
    sink = FakeSink()
    handler, state, _ = build(sink)
    consumer = FakeConsumer()
    await handler.handle(records([valid_value()]), consumer)
    state.detector = make_detector(version="20250101000000", seed=1)
    await handler.handle(records([valid_value()], start=1), consumer)
    versions = [m.value.split(b'"model_version":"')[1][:14] for m in sink.sent if m.value]
    assert versions == [b"20240115100000", b"20250101000000"]


async def test_too_large_dead_letter_is_resent_without_its_value() -> None:
    """A dead letter the broker refuses as too large goes again without value, marked."""

    def refuse(message: Outgoing) -> Exception | None:
        big = message.kind is Kind.DEAD_LETTER and len(message.value or b"") > 10
        return MessageSizeTooLargeError() if big else None

    sink = FakeSink(fail_on=refuse)
    letter = Outgoing(
        Kind.DEAD_LETTER, "dlq", b"k", b"x" * 100, (("error", b"too_large"),), TOPIC, 0, 1
    )
    await publish_confirmed(sink, [letter])
    assert [m.value for m in sink.sent] == [b"x" * 100, b""]
    headers = dict(sink.sent[1].headers)
    assert headers["value_truncated"] == b"true"
    assert headers["original_size"] == b"100"


async def test_client_side_size_refusal_of_a_dead_letter_is_truncated() -> None:
    """aiokafka's own size check on send() is handled the same way."""

    def refuse(message: Outgoing) -> Exception | None:
        return MessageSizeTooLargeError() if len(message.value or b"") > 10 else None

    sink = FakeSink(raise_on_send=refuse)
    letter = Outgoing(Kind.DEAD_LETTER, "dlq", None, b"x" * 100, (), TOPIC, 0, 1)
    await publish_confirmed(sink, [letter])
    assert [m.value for m in sink.sent] == [b""]


async def test_too_large_verdict_is_a_batch_failure() -> None:
    """Only dead letters are truncated; any other refusal fails the batch."""
    sink = FakeSink(fail_on=lambda m: MessageSizeTooLargeError())
    verdict = Outgoing(Kind.VERDICT, "anomalies", b"VH", b"{}", (), TOPIC, 0, 1)
    with pytest.raises(PublishError):
        await publish_confirmed(sink, [verdict])


async def test_rebalance_waits_for_the_batch_in_hand() -> None:
    """Revocation waits (bounded) until the batch in hand has committed."""
    sink = FakeSink()
    sink.gate = asyncio.Event()
    handler, _, _ = build(sink)
    consumer = FakeConsumer()
    listener = RebalanceListener(handler, wait_seconds=5)
    task = asyncio.create_task(handler.handle(mixed_batch(), consumer))
    await asyncio.sleep(0.02)
    revoke = asyncio.create_task(listener.on_partitions_revoked({TopicPartition(TOPIC, 0)}))
    await asyncio.sleep(0.02)
    assert not revoke.done()
    sink.gate.set()
    await task
    await asyncio.wait_for(revoke, 1)
    assert consumer.commits


async def test_rebalance_wait_is_bounded() -> None:
    """A stuck batch does not hold a rebalance longer than the configured wait."""
    handler, _, _ = build(FakeSink())
    handler.idle.clear()
    listener = RebalanceListener(handler, wait_seconds=0.05)
    await asyncio.wait_for(listener.on_partitions_revoked({TopicPartition(TOPIC, 0)}), 1)


async def test_faststream_glue_keeps_records_raw() -> None:
    """The parser and decoder hand over the raw records, even with non-UTF-8 headers."""

    class Raw:
        topic, partition, offset, key, value, timestamp = TOPIC, 0, 3, None, b"\xff", 0

        def __init__(self) -> None:
            self.headers: Any = [("h", b"\xff\xfe"), ("n", None)]

    batch = (Raw(), Raw())
    from consumer.subscription import decode_raw_batch, parse_raw_batch

    message = await parse_raw_batch(batch)
    assert await decode_raw_batch(message) is batch


async def test_memoised_partitions_match_aiokafkas_default_partitioner() -> None:
    """Keyed verdicts land where aiokafka's default partitioner would put them."""
    from aiokafka.partitioner import DefaultPartitioner

    from consumer.publishing import AiokafkaSink

    class Cluster:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return {0, 1, 2, 3, 4}

    class Producer:
        client = type("Client", (), {"cluster": Cluster()})()

        def __init__(self) -> None:
            self.partitions: list[int | None] = []

        async def send(self, topic: str, **kwargs: Any) -> Any:
            self.partitions.append(kwargs["partition"])
            return asyncio.get_running_loop().create_future()

    producer = Producer()
    sink = AiokafkaSink(producer)  # type: ignore[arg-type]
    keys = [f"VH-{i}".encode() for i in range(200)] * 2
    for key in keys:
        await sink.send(Outgoing(Kind.VERDICT, "anomalies", key, b"{}", (), TOPIC, 0, 0))
    await sink.send(Outgoing(Kind.DEAD_LETTER, "dlq", None, b"x", (), TOPIC, 0, 0))
    expected = [DefaultPartitioner()(key, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]) for key in keys]
    assert producer.partitions == [*expected, None]


async def test_after_batch_hook_runs_at_most_once_per_interval() -> None:
    """The after-batch hook (the lag gauges) is not paid on every batch."""
    calls: list[float] = []

    async def hook() -> None:
        calls.append(1.0)

    handler, _, _ = build(FakeSink())
    handler.after_batch = hook
    consumer = FakeConsumer()
    for start in (0, 1, 2):
        assert await handler.handle(records([valid_value()], start=start), consumer)
    assert len(calls) == 1
    handler.after_batch_interval = 0.0
    handler._after_batch_due = 0.0
    for start in (3, 4):
        assert await handler.handle(records([valid_value()], start=start), consumer)
    assert len(calls) == 3


async def test_before_publish_hook_holds_the_scored_batch() -> None:
    """The hook (tests' batch hold) runs after scoring and before anything is sent."""
    sink = FakeSink()
    handler, _, _ = build(sink)
    seen: list[int] = []

    async def hook() -> None:
        seen.append(len(sink.sent))

    handler.before_publish = hook
    assert await handler.handle(mixed_batch(), FakeConsumer())
    assert seen == [0]
    assert len(sink.sent) == 3


async def test_traced_parser_links_only_records_that_carry_a_traceparent() -> None:
    """The traced parser adds one batch header per traced record, keyed by its coordinates."""
    from consumer.subscription import parse_raw_batch, parse_traced_batch

    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"

    class Raw:
        topic, partition, key, value, timestamp = TOPIC, 2, None, b"{}", 0

        def __init__(self, offset: int, headers: Any) -> None:
            self.offset = offset
            self.headers = headers

    batch = (Raw(5, [("traceparent", parent.encode())]), Raw(6, [("h", b"\xff")]), Raw(7, None))
    traced = await parse_traced_batch(batch)
    assert traced.batch_headers == [{"traceparent": parent, "correlation_id": f"{TOPIC}-2-5"}]
    assert traced.raw_message is batch
    assert traced.message_id == f"{TOPIC}-2-5-7"
    assert (await parse_raw_batch(batch)).batch_headers == []


async def test_handler_shows_each_scored_batch_to_the_monitor() -> None:
    """The monitor sees the scored rows and their scores; a batch with none is not shown."""
    seen: list[tuple[str, Any, Any]] = []

    class Monitor:
        def observe(self, detector: Any, features: Any, scores: Any) -> None:
            seen.append((detector.version, features.shape, list(scores)))

    handler, state, _ = build(FakeSink())
    handler.monitor = Monitor()
    consumer = FakeConsumer()
    assert await handler.handle(mixed_batch(), consumer)
    assert await handler.handle(records([b"garbage"], start=50), consumer)
    assert state.detector is not None
    ((version, shape, scores),) = seen
    assert version == state.detector.version and shape == (2, 4) and len(scores) == 2
