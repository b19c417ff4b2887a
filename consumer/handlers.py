# One concern, a batch's way from its records to its commit, keeps this module past 300 lines.
"""The batch handling: decode → score in one call → publish concurrently → confirm all → commit.

:class:`BatchHandler` is the thin I/O shell around :class:`consumer.processor.BatchProcessor`.
Its guarantees, which the integration tests check against a real broker:

* an offset is committed only after every verdict and dead letter of the records before it
  was acknowledged by the broker (``acks=all``); the commit names explicit offsets, only
  for the partitions the batch came from and that this member still owns;
* by default (``CONSUMER_BACKGROUND_COMMIT``) the commit runs in the background: once a
  batch's outputs are acknowledged its offsets are handed to one committer task and the next
  batch starts at once. One commit is in flight at a time, and the offsets of batches
  acknowledged meanwhile are merged into the next one, so commits only move forward. A
  rebalance waits for the committer as for a batch in hand, and so does a graceful shutdown
  (the committer holds FastStream's subscriber lock). A broker that lingers over offset
  commits (Kafka 4's ``group.coordinator.append.linger.ms``, 5 ms) then costs no throughput;
* a batch that cannot be published is rewound (``seek`` to its first offset per partition)
  and retried after a back-off, so no record is skipped; a record that cannot be decoded
  never fails a batch (it becomes a dead letter); a dead letter is cut to its topic's size
  limit before it is sent, and a batch the broker keeps refusing is bounded by
  :class:`consumer.refusals.RefusalGuard` (last-resort letters, then a stopped partition);
* a cancelled batch (SIGTERM past the graceful timeout) commits nothing;
* a commit refused after a rebalance (``CommitFailedError``/``IllegalStateError``) is
  logged: the new owner gets the records again (at least once).

The offsets are :class:`consumer.committer.OffsetCommitter`'s; the FastStream glue that
hands the handler aiokafka's raw ``ConsumerRecord`` tuple is :mod:`consumer.subscription`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalStateError, KafkaError

from consumer.committer import ConsumerLike, OffsetCommitter
from consumer.context_store import ContextStore
from consumer.faststream_compat import Hold
from consumer.metrics import WorkerMetrics
from consumer.monitor import BatchObserver
from consumer.processor import (
    BatchOutcome,
    BatchProcessor,
    ContextStates,
    Outgoing,
    RecordLike,
    offset_bounds,
)
from consumer.publishing import PublishError, Sink, publish_confirmed
from consumer.refusals import RefusalGuard, StoppedPartition
from consumer.shadow_contexts import ShadowContexts
from consumer.sizing import fit_all
from consumer.state import WorkerState
from consumer.topic_limits import TopicLimits
from consumer.tracing import MessageTracing, end_spans
from shared.schemas import format_timestamp

if TYPE_CHECKING:
    from shared.detector import Detector

log = logging.getLogger("consumer.handlers")


class BatchHandler:
    """Processes and publishes one batch at a time; commits behind it (or in line)."""

    def __init__(
        self,
        processor: BatchProcessor,
        sink: Sink,
        state: WorkerState,
        metrics: WorkerMetrics,
        *,
        retry_backoff_max: float = 5.0,
        before_publish: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Any] = asyncio.sleep,
        tracing: MessageTracing | None = None,
        after_batch: Callable[[], Awaitable[None]] | None = None,
        after_batch_interval: float = 0.5,
        background_commit: bool = True,
        monitor: BatchObserver | None = None,
        contexts: ContextStore | None = None,
        limits: TopicLimits | None = None,
        refused_attempts: int = 5,
    ) -> None:
        self.processor = processor
        self.limits = limits if limits is not None else TopicLimits()
        self.guard = RefusalGuard(refused_attempts, processor.dlq_topic)
        # The context models' per-partition history (without a reader: rebuilt empty).
        self.contexts = contexts if contexts is not None else ContextStore(None, metrics)
        # A context candidate's own copy of each partition's history (shadow scoring).
        self.shadow_contexts = ShadowContexts(lambda: self.contexts.sibling())
        self.sink = sink
        self.state = state
        self.metrics = metrics
        self.retry_backoff_max = retry_backoff_max
        # Awaited between scoring and publishing: tests hold a batch mid-flight with it.
        self.before_publish = before_publish
        self.clock = clock
        self.sleep = sleep
        self.tracing = tracing
        self.after_batch = after_batch
        # The hook runs after a batch at most this often (the lag gauges need no more).
        self.after_batch_interval = after_batch_interval
        self._after_batch_due = 0.0
        self.background_commit = background_commit
        # Shown every scored batch (the drift window and the shadow comparison).
        self.monitor = monitor
        # Set while no batch is in hand and no acknowledged offsets wait for their commit.
        self.idle = asyncio.Event()
        self.idle.set()
        self._consecutive_failures = 0
        self._in_hand = False
        self.committer = OffsetCommitter(state, metrics, on_settled=self._update_idle)

    async def handle(
        self, records: Sequence[RecordLike], consumer: ConsumerLike, hold: Hold | None = None
    ) -> bool:
        """Handle one batch; ``True`` when it was published and its offsets committed.

        With ``background_commit`` the offsets are handed to the committer task instead, and
        ``True`` means published (``hold``, when given, is held while that task runs; see
        :meth:`drain` to wait for it).
        """
        if not records:
            return True
        started = time.monotonic()
        self.state.batch_started_monotonic = started
        self._in_hand = True
        self.idle.clear()
        try:
            handled = await self._handle(records, consumer, started, hold)
            if self.after_batch is not None and time.monotonic() >= self._after_batch_due:
                self._after_batch_due = time.monotonic() + self.after_batch_interval
                try:
                    await self.after_batch()  # e.g. the lag gauges: never fails a batch
                except Exception as error:
                    log.debug("after-batch hook failed", extra={"error": repr(error)})
            return handled
        except asyncio.CancelledError:
            log.warning(
                "batch abandoned at shutdown; its offsets are not committed",
                extra={"records": len(records)},
            )
            raise
        finally:
            self.state.batch_started_monotonic = None
            self._in_hand = False
            self._update_idle()

    async def _shadow(
        self,
        detector: Detector,
        records: Sequence[RecordLike],
        starts: Mapping[tuple[str, int], int] | None,
        contexts: ContextStates | None,
    ) -> tuple[Detector | None, ContextStates | None]:
        """The candidate to score this batch in shadow, if any and comparable, and for a
        context candidate its states (see :mod:`consumer.shadow_contexts`), ending at
        ``starts`` (the batch's first offsets, found here when the active model needed none);
        the last await before scoring, so the monitor compares with the same candidate."""
        candidate = self.state.shadow if self.monitor is not None else None
        if (
            candidate is None
            or candidate.version == detector.version
            or candidate.n_features != detector.n_features
        ):
            if candidate is None:
                self.shadow_contexts.clear()
            return None, None
        if candidate.kind != "context":
            return candidate, None
        if starts is None:
            starts, _ = offset_bounds(records)
        states = await self.shadow_contexts.prepare(candidate, contexts, starts)
        if self.state.shadow is not candidate:  # replaced while its history was rebuilt
            return None, None
        return candidate, states

    def _update_idle(self) -> None:
        if not self._in_hand and not self.committer.running:
            self.idle.set()

    async def _handle(
        self,
        records: Sequence[RecordLike],
        consumer: ConsumerLike,
        started: float,
        hold: Hold | None,
    ) -> bool:
        if self.state.stopped_partitions:
            records = [
                r
                for r in records
                if f"{r.topic}-{r.partition}" not in self.state.stopped_partitions
            ]
            if not records:
                return False
        detector = self.state.detector
        if detector is None:  # cannot happen: consumption starts after the first model loads
            await self._fail(records, consumer, RuntimeError("no model loaded"))
            return False
        self.metrics.records_consumed.inc(len(records))
        try:
            contexts = starts = None
            if detector.kind == "context":
                starts, _ = offset_bounds(records)
                await self.contexts.prepare(detector, starts)  # rebuilds what is not in step
                contexts = self.contexts.states
            shadow, shadow_contexts = await self._shadow(detector, records, starts, contexts)
            scoring_started = time.perf_counter()
            outcome = self.processor.process(
                records,
                detector,
                format_timestamp(self.clock()),
                contexts,
                self.contexts.books if contexts is not None else None,
                shadow,
                shadow_contexts,
            )
            if contexts is not None:
                self.contexts.advance(outcome.next_offsets)
            if shadow_contexts is not None:
                if outcome.shadow_scores is not None:
                    self.shadow_contexts.advance(outcome.next_offsets)
                else:  # the candidate failed part-way: its states are not in step
                    self.shadow_contexts.drop(outcome.next_offsets)
            if self.monitor is not None and outcome.scored:
                self.monitor.observe(
                    detector, outcome.features, outcome.scores, outcome.shadow_scores
                )
            self.metrics.scoring_seconds.observe(time.perf_counter() - scoring_started)
            if self.before_publish is not None:
                await self.before_publish()
            messages = fit_all(outcome.messages, self.limits.limits, self.limits.default)
            await self._publish(records, self.guard.apply(messages))
        except (PublishError, KafkaError) as error:
            await self._fail(records, consumer, error)
            return False
        except Exception as error:  # a bug or a broken model: retry rather than skip
            first = records[0]
            log.exception(
                "batch processing failed",
                extra={"topic": first.topic, "partition": first.partition, "offset": first.offset},
            )
            await self._fail(records, consumer, error)
            return False
        acknowledged = time.time()
        self.guard.succeeded(outcome.next_offsets)
        if self.background_commit:
            self.committer.commit_later(consumer, outcome.next_offsets, hold)
        else:
            await self.committer.commit_now(consumer, outcome.next_offsets)
        self._succeeded(outcome, started)
        self.metrics.observe_many(
            self.metrics.end_to_end_seconds,
            (
                acknowledged - timestamp / 1000
                for timestamp in (getattr(r, "timestamp", None) for r in records)
                if timestamp is not None
            ),
        )
        self.metrics.observe_many(self.metrics.anomaly_score, outcome.scores)
        return True

    async def _publish(self, records: Sequence[Any], messages: Sequence[Outgoing]) -> None:
        """Publish and confirm; with tracing, the messages carry the trace context onward."""
        if self.tracing is None:
            await publish_confirmed(self.sink, messages)
            return
        traced, spans = self.tracing.instrument(records, messages)
        try:
            await publish_confirmed(self.sink, traced)
        except BaseException as error:
            end_spans(spans, error)
            raise
        end_spans(spans)

    async def drain(self) -> None:
        """Wait until every acknowledged offset was committed (or given up on)."""
        await self.committer.drain()

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop uncommitted offsets and context of revoked partitions (their new owner
        starts over)."""
        self.committer.forget(partitions)
        for tp in partitions:  # their new owner tries them afresh
            self.state.stopped_partitions.pop(f"{tp.topic}-{tp.partition}", None)
        self.contexts.drop((tp.topic, tp.partition) for tp in partitions)
        self.shadow_contexts.drop((tp.topic, tp.partition) for tp in partitions)

    def _succeeded(self, outcome: BatchOutcome, started: float) -> None:
        self._consecutive_failures = 0
        state, metrics = self.state, self.metrics
        published_anomalies = sum(1 for m in outcome.verdicts if m.is_anomaly)
        published_normal = len(outcome.verdicts) - published_anomalies
        state.batches += 1
        state.records += outcome.records
        state.scored += outcome.scored
        state.anomalies += outcome.anomalies
        state.verdicts_published += published_anomalies + published_normal
        state.dead_letters.update(outcome.dead_letters)
        state.last_batch_at = time.time()
        state.last_batch_monotonic = time.monotonic()
        metrics.batches.inc()
        metrics.batch_size.observe(outcome.records)
        metrics.batch_seconds.observe(state.last_batch_monotonic - started)
        metrics.verdicts_published.labels("anomaly").inc(published_anomalies)
        metrics.verdicts_published.labels("normal").inc(published_normal)
        metrics.records_scored.labels("anomaly").inc(outcome.anomalies)
        metrics.records_scored.labels("normal").inc(outcome.scored - outcome.anomalies)
        for reason, count in outcome.dead_letters.items():
            metrics.dead_letters.labels(reason).inc(count)
        if outcome.alerts:
            metrics.alerts.observe(outcome.alerts)
        for message in outcome.dead_letter_messages:
            log.warning(
                "record dead-lettered",
                extra={
                    "reason": message.reason.value if message.reason else None,
                    "topic": message.source_topic,
                    "partition": message.source_partition,
                    "offset": message.source_offset,
                    "dlq_topic": message.topic,
                },
            )

    async def _fail(
        self, records: Sequence[RecordLike], consumer: ConsumerLike, error: BaseException
    ) -> None:
        """Rewind every partition of the batch to its first record, then back off."""
        self._consecutive_failures += 1
        self.state.batch_failures += 1
        self.metrics.batch_failures.inc()
        first, _ = offset_bounds(records)
        # The batch may have joined its partitions' context: rebuilt before the retry.
        self.contexts.drop(first)
        self.shadow_contexts.drop(first)
        for (topic, partition), offset in first.items():
            # A partition revoked meanwhile is skipped: its new owner starts from the commit.
            with contextlib.suppress(IllegalStateError):
                consumer.seek(TopicPartition(topic, partition), offset)
        for stopped in self.guard.failed(first, error):
            self._stop(consumer, stopped)
        delay = min(self.retry_backoff_max, 0.1 * 2 ** min(self._consecutive_failures, 10))
        (topic, partition), offset = min(first.items())
        log.error(
            "batch not published; rewound to retry it",
            extra={
                "error": repr(error),
                "records": len(records),
                "retry_in_seconds": delay,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "first_offsets": {f"{t}-{p}": o for (t, p), o in sorted(first.items())},
            },
        )
        await self.sleep(delay)

    def _stop(self, consumer: ConsumerLike, stopped: StoppedPartition) -> None:
        """Consume no more of a partition whose record the broker refuses every way."""
        with contextlib.suppress(IllegalStateError):
            consumer.pause(TopicPartition(stopped.topic, stopped.partition))
        self.state.stopped_partitions[stopped.name] = {
            "offset": stopped.offset,
            "reason": stopped.reason,
        }
        log.critical(
            "partition stopped: the broker refuses a record's output and its last-resort "
            "dead letter; nothing past it is committed until the partition is revoked or "
            "the worker restarts",
            extra={
                "topic": stopped.topic,
                "partition": stopped.partition,
                "offset": stopped.offset,
                "error": stopped.reason,
            },
        )


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """Lets the batch in hand finish (and commit) before its partitions are given away."""

    def __init__(self, handler: BatchHandler, wait_seconds: float) -> None:
        self.handler = handler
        self.wait_seconds = wait_seconds

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        if not self.handler.idle.is_set():
            try:
                await asyncio.wait_for(self.handler.idle.wait(), self.wait_seconds)
            except TimeoutError:
                log.warning(
                    "rebalance did not wait longer for the batch in hand; it will not be committed",
                    extra={"waited_seconds": self.wait_seconds},
                )
        self.handler.forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # A partition's context is rebuilt before its first batch is scored (the batch's
        # first offset is where the rebuild ends); a state left from an earlier ownership is
        # stale, since another member may have scored the records since.
        self.handler.contexts.drop((tp.topic, tp.partition) for tp in assigned)
        self.handler.shadow_contexts.drop((tp.topic, tp.partition) for tp in assigned)
        log.debug("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})
