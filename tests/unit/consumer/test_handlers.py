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
)

from consumer.handlers import RebalanceListener
from tests.unit.consumer.fakes import (
    TOPIC,
    FakeConsumer,
    FakeSink,
    build_handler,
    make_detector,
    mixed_batch,
    records,
    valid_value,
)

both_commit_modes = pytest.mark.parametrize("background", [True, False], ids=["behind", "inline"])


@both_commit_modes
async def test_success_publishes_everything_then_commits_next_offsets(background: bool) -> None:
    """All messages are acknowledged before the commit, which names the offsets after the batch."""
    sink = FakeSink()
    handler, state, _ = build_handler(sink, background=background)
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
    handler, _, _ = build_handler(sink, background=background)
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
    handler, state, sleeps = build_handler(sink, background=background)
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
    handler, _, _ = build_handler(sink)
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
    handler, _, _ = build_handler(FakeSink(), background=background)
    consumer = FakeConsumer(assigned={TopicPartition(TOPIC, 1)})
    assert await handler.handle(mixed_batch(), consumer)
    await handler.drain()
    assert consumer.commits == [{TopicPartition(TOPIC, 1): 8}]


@both_commit_modes
@pytest.mark.parametrize("error", [CommitFailedError(), IllegalStateError()])
async def test_refused_commit_is_logged_not_raised(error: Exception, background: bool) -> None:
    """A commit refused after a rebalance does not crash the worker (records are redelivered)."""
    handler, state, _ = build_handler(FakeSink(), background=background)
    consumer = FakeConsumer(commit_error=error)
    assert await handler.handle(mixed_batch(), consumer)
    await handler.drain()
    assert state.commit_failures == 1
    assert handler.idle.is_set()


async def test_no_model_rewinds() -> None:
    """Without a detector nothing is published or committed."""
    sink = FakeSink()
    handler, _, _ = build_handler(sink, detector=False)
    consumer = FakeConsumer()
    assert not await handler.handle(mixed_batch(), consumer)
    assert sink.sent == []
    assert consumer.commits == []
    assert consumer.seeks


async def test_verdicts_carry_the_version_in_use_when_the_batch_started() -> None:
    """A swap takes effect from the next batch."""
    sink = FakeSink()
    handler, state, _ = build_handler(sink)
    consumer = FakeConsumer()
    await handler.handle(records([valid_value()]), consumer)
    state.detector = make_detector(version="20250101000000", seed=1)
    await handler.handle(records([valid_value()], start=1), consumer)
    versions = [m.value.split(b'"model_version":"')[1][:14] for m in sink.sent if m.value]
    assert versions == [b"20240115100000", b"20250101000000"]


async def test_rebalance_waits_for_the_batch_in_hand() -> None:
    """Revocation waits (bounded) until the batch in hand has committed."""
    sink = FakeSink()
    sink.gate = asyncio.Event()
    handler, _, _ = build_handler(sink)
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
    handler, _, _ = build_handler(FakeSink())
    handler.idle.clear()
    listener = RebalanceListener(handler, wait_seconds=0.05)
    await asyncio.wait_for(listener.on_partitions_revoked({TopicPartition(TOPIC, 0)}), 1)


async def test_after_batch_hook_runs_at_most_once_per_interval() -> None:
    """The after-batch hook (the lag gauges) is not paid on every batch."""
    calls: list[float] = []

    async def hook() -> None:
        calls.append(1.0)

    handler, _, _ = build_handler(FakeSink())
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
    handler, _, _ = build_handler(sink)
    seen: list[int] = []

    async def hook() -> None:
        seen.append(len(sink.sent))

    handler.before_publish = hook
    assert await handler.handle(mixed_batch(), FakeConsumer())
    assert seen == [0]
    assert len(sink.sent) == 3


async def test_handler_shows_each_scored_batch_to_the_monitor() -> None:
    """The monitor sees the scored rows and their scores; a batch with none is not shown."""
    seen: list[tuple[str, Any, Any]] = []

    class Monitor:
        def observe(
            self, detector: Any, features: Any, scores: Any, candidate_scores: Any = None
        ) -> None:
            assert candidate_scores is None  # (no candidate)
            seen.append((detector.version, features.shape, list(scores)))

    handler, state, _ = build_handler(FakeSink())
    handler.monitor = Monitor()
    consumer = FakeConsumer()
    assert await handler.handle(mixed_batch(), consumer)
    assert await handler.handle(records([b"garbage"], start=50), consumer)
    assert state.detector is not None
    ((version, shape, scores),) = seen
    assert version == state.detector.version and shape == (2, 4) and len(scores) == 2


async def test_a_batch_refused_every_way_stops_only_its_partition() -> None:
    """Refused N times: a last-resort letter; refused N more: that partition paused, not ready."""
    from aiokafka.errors import MessageSizeTooLargeError

    sink = FakeSink(
        fail_on=lambda m: MessageSizeTooLargeError() if m.source_offset == 100 else None
    )
    handler, state, _ = build_handler(sink, background=False)
    handler.guard.attempts = 2
    consumer = FakeConsumer()
    for _ in range(4):
        assert not await handler.handle(mixed_batch(), consumer)
    last_resort = [m for m in sink.sent if m.source_offset == 100 and m.value == b""]
    assert last_resort and dict(last_resort[0].headers)["error"] == b"publish_refused"
    assert consumer.paused == {TopicPartition(TOPIC, 0)}
    assert state.stopped_partitions[f"{TOPIC}-0"]["offset"] == 100
    assert consumer.commits == []
    # the stopped partition's records are skipped; the other partition goes on
    assert await handler.handle(mixed_batch(), consumer)
    assert consumer.commits == [{TopicPartition(TOPIC, 1): 8}]


async def test_a_last_resort_letter_that_is_taken_ends_the_refusals() -> None:
    """When the broker takes the last-resort letter the batch commits past the record."""
    from aiokafka.errors import MessageSizeTooLargeError

    def refuse(message: Any) -> Exception | None:
        refusable = message.source_offset == 100 and message.kind == "verdict"
        return MessageSizeTooLargeError() if refusable else None

    handler, state, _ = build_handler(FakeSink(fail_on=refuse), background=False)
    handler.guard.attempts = 2
    consumer = FakeConsumer()
    results = [await handler.handle(mixed_batch(), consumer) for _ in range(3)]
    assert results == [False, False, True]
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 102, TopicPartition(TOPIC, 1): 8}]
    assert state.stopped_partitions == {}
