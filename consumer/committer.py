"""Committing a batch's offsets once its outputs are acknowledged: in line, or behind it.

:class:`OffsetCommitter` is the offset half of :class:`consumer.handlers.BatchHandler`. A
commit names explicit offsets, only for the partitions this member still owns (the others
are logged and left to their new owner). In the background mode one committer task runs at
a time: the offsets of batches acknowledged while it commits are merged into its next
commit, so commits only move forward. The task holds FastStream's subscriber lock (the
``hold``), so a graceful shutdown waits for it as for a batch in hand. A commit refused
after a rebalance (``CommitFailedError``/``IllegalStateError``) is logged and counted: the
new owner gets the records again (at least once); any other commit error is retried.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from consumer.faststream_compat import Hold
from consumer.metrics import WorkerMetrics
from consumer.state import WorkerState

log = logging.getLogger("consumer.handlers")  # its lines were the handler's: same logger

COMMIT_RETRY_SECONDS = 0.1
COMMIT_ATTEMPTS = 5


class ConsumerLike(Protocol):
    """The part of ``AIOKafkaConsumer`` the handler and the committer use."""

    def assignment(self) -> set[TopicPartition]: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def pause(self, *partitions: TopicPartition) -> None: ...


class OffsetCommitter:
    """Commits acknowledged offsets; ``on_settled`` runs when the background task ends."""

    def __init__(
        self,
        state: WorkerState,
        metrics: WorkerMetrics,
        on_settled: Callable[[], None] = lambda: None,
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.on_settled = on_settled
        # Acknowledged, not yet committed: partition -> the offset after its last answered record.
        self._uncommitted: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """``True`` while the background task commits (or waits to retry)."""
        return self._task is not None

    def owned(
        self,
        consumer: ConsumerLike,
        offsets: Mapping[tuple[str, int], int] | Mapping[TopicPartition, int],
    ) -> dict[TopicPartition, int]:
        """The offsets of the partitions this member still owns (the others are logged)."""
        wanted = {TopicPartition(*where): offset for where, offset in offsets.items()}
        owned = consumer.assignment()
        lost = sorted(str(tp) for tp in wanted if tp not in owned)
        if lost:
            log.warning(
                "partitions were revoked while their batch was in hand; their records "
                "will be redelivered to the new owner",
                extra={"partitions": lost},
            )
        return {tp: offset for tp, offset in wanted.items() if tp in owned}

    async def commit_now(
        self, consumer: ConsumerLike, offsets: Mapping[tuple[str, int], int]
    ) -> None:
        """Commit the owned part of ``offsets`` before returning (the in-line mode)."""
        await self._commit(consumer, self.owned(consumer, offsets))

    async def _commit(self, consumer: ConsumerLike, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            self.state.commit_failures += 1
            self.metrics.commit_failures.inc()
            log.warning(
                "offset commit refused (group rebalanced); the records will be redelivered",
                extra={"error": repr(error)},
            )

    def commit_later(
        self, consumer: ConsumerLike, offsets: Mapping[tuple[str, int], int], hold: Hold | None
    ) -> None:
        """Hand acknowledged offsets to the committer task (starting it when none runs)."""
        uncommitted = self._uncommitted
        for (topic, partition), offset in offsets.items():
            tp = TopicPartition(topic, partition)
            if offset > uncommitted.get(tp, -1):
                uncommitted[tp] = offset
        if self._task is None or self._task.done():
            if hold is not None:
                hold.acquire()
            task = asyncio.create_task(self._commit_behind(consumer), name="offset-committer")
            task.add_done_callback(functools.partial(self._done, hold))
            self._task = task

    def _done(self, hold: Hold | None, task: asyncio.Task[None]) -> None:
        # Also runs for a task cancelled before it started (its ``finally`` never ran).
        if hold is not None:
            hold.release()
        if self._task is task:
            self._task = None
            self.on_settled()

    async def _commit_behind(self, consumer: ConsumerLike) -> None:
        """Commit what was acknowledged until nothing is left; one commit at a time."""
        failures = 0
        try:
            while self._uncommitted:
                wanted, self._uncommitted = self._uncommitted, {}
                offsets = self.owned(consumer, wanted)
                try:
                    await self._commit(consumer, offsets)
                except KafkaError as error:
                    # Not a refusal (the coordinator moved, a timeout...): keep the offsets
                    # unless a later batch brought newer ones, and try again shortly.
                    failures += 1
                    log.warning(
                        "offset commit failed; retrying",
                        extra={"error": repr(error), "attempt": failures},
                    )
                    for tp, offset in offsets.items():
                        self._uncommitted.setdefault(tp, offset)
                    if failures >= COMMIT_ATTEMPTS:
                        return  # the next batch (or a rebalance, or a restart) tries again
                    await asyncio.sleep(COMMIT_RETRY_SECONDS * failures)
        except Exception:  # never an unobserved task error; the offsets are simply redelivered
            log.exception("offset committer failed")
        finally:
            if self._task is asyncio.current_task():
                self._task = None
                self.on_settled()

    async def drain(self) -> None:
        """Wait until every acknowledged offset was committed (or given up on)."""
        while (task := self._task) is not None and not task.done():
            await asyncio.shield(task)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop uncommitted offsets of revoked partitions (their new owner starts over)."""
        for tp in partitions:
            self._uncommitted.pop(tp, None)
