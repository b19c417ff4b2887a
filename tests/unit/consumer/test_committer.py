"""The offset committer behind the handler: one commit at a time, forward only, retried."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaTimeoutError,
)

from consumer.handlers import RebalanceListener
from tests.unit.consumer.fakes import (
    TOPIC,
    FakeConsumer,
    FakeHold,
    FakeSink,
    build_handler,
    mixed_batch,
    records,
    valid_value,
)


async def test_background_commit_lets_the_next_batch_start_and_keeps_commits_in_order() -> None:
    """The next batch runs while a commit is in flight; commits never overlap or go back."""
    handler, state, _ = build_handler(FakeSink())
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
    handler, _, _ = build_handler(sink)
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
    handler, state, _ = build_handler(FakeSink())
    consumer = FakeConsumer(commit_errors=[KafkaTimeoutError(), KafkaTimeoutError()])
    assert await handler.handle(mixed_batch(), consumer)
    await asyncio.wait_for(handler.drain(), 5)
    assert consumer.commits == [{TopicPartition(TOPIC, 0): 102, TopicPartition(TOPIC, 1): 8}]
    assert state.commit_failures == 0


async def test_rebalance_waits_for_the_background_commit_and_forgets_revoked_offsets() -> None:
    """Revocation waits for the commit in flight; offsets of revoked partitions are dropped."""
    handler, _, _ = build_handler(FakeSink())
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
