"""The context of the partitions a worker owns: one :class:`ContextState` per partition.

A context model judges a record in its vehicle's recent history, and that history lives here,
per assigned (topic, partition), with the offset after the last record it holds. Before a
batch is scored, :meth:`ContextStore.prepare` makes sure each of its partitions' state ends
exactly where the batch begins; when it does not (a partition just assigned, a batch rewound
after a failed publish, a model of another width) the state is rebuilt by re-reading the
partition's last ``horizon`` offsets before the batch through a :class:`TailReader`,
publishing and committing nothing. A record's history is bounded by offsets and event time
alone (:mod:`shared.context.kernel`), so the rebuilt state is the one a worker that never
stopped would hold, and its verdicts are the same.

The rebuild is bounded: at most ``horizon`` records per partition, and ``replay_seconds`` in
all (past it, a warning names each partition and how far it got, and scoring goes on with the
history rebuilt so far). It decodes and derives in chunks, yielding to the event loop between
them. Revoked partitions drop their state.

With alert episodes (``rules``), each partition also holds a
:class:`shared.episodes.EpisodeBook`. Its rebuild reads ``replay_offsets`` further back: the
records of the last ``replay_offsets`` offsets before the batch are scored and explained
again, each in a history of ``horizon`` offsets as in a straight run, and fed to the book,
whose events are dropped (they were published by whoever scored those records). The book
then holds what a straight run's would, provided no episode of the partition was open, and
no anomalous record was in a vehicle's opening window, at the replay's first offset: an
episode open for longer than ``replay_offsets`` offsets is not carried over (it is reopened
under the id of its first record inside the replay, and its earlier id never closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from consumer.metrics import WorkerMetrics
from consumer.processor import RecordLike
from shared.context import ContextState, epoch_seconds
from shared.decoding import decode_batch
from shared.episodes import LEAD_MAX, EpisodeBook, EpisodeRules
from shared.verdicts import score_context_rows

if TYPE_CHECKING:
    from shared.detector import Detector

log = logging.getLogger("consumer.context")

Where = tuple[str, int]
CHUNK_RECORDS = 2_000


class TailReader(Protocol):
    """Reads ranges of partitions, each in offset order, in chunks (the rebuild's port)."""

    def read(
        self, ranges: Mapping[Where, tuple[int, int]], chunk_records: int
    ) -> AsyncIterator[tuple[Where, Sequence[RecordLike]]]:
        """Chunks of each partition's records with ``start <= offset < stop`` (a start before
        the partition's beginning reads from the beginning); an empty chunk when a poll brought
        nothing, so that the caller's deadline holds even when the partition never delivers."""
        ...


@dataclass(slots=True)
class PartitionContext:
    """A partition's state and the offset after the last record it has seen."""

    state: ContextState
    next_offset: int
    book: EpisodeBook | None = None


class ContextStore:
    """Per assigned partition, the context state, kept in step with the records scored."""

    def __init__(
        self,
        reader: TailReader | None,
        metrics: WorkerMetrics,
        *,
        replay_seconds: float = 30.0,
        max_record_bytes: int = 65_536,
        chunk_records: int = CHUNK_RECORDS,
        monotonic: Callable[[], float] = time.monotonic,
        rules: EpisodeRules | None = None,
        replay_offsets: int = 0,
    ) -> None:
        self.rules = rules
        self.replay_offsets = max(0, replay_offsets)
        self.reader = reader
        self.metrics = metrics
        self.replay_seconds = replay_seconds
        self.max_record_bytes = max_record_bytes
        self.chunk_records = chunk_records
        self._monotonic = monotonic
        self._parts: dict[Where, PartitionContext] = {}

    def sibling(self) -> ContextStore:
        """A store of its own over the same reader and bounds, without episodes, with metrics
        of its own (a shadow candidate's histories)."""
        return ContextStore(
            self.reader,
            WorkerMetrics(),
            replay_seconds=self.replay_seconds,
            max_record_bytes=self.max_record_bytes,
            chunk_records=self.chunk_records,
            monotonic=self._monotonic,
        )

    @property
    def states(self) -> dict[Where, ContextState]:
        """Each partition's state, for :meth:`consumer.processor.BatchProcessor.process`."""
        return {where: part.state for where, part in self._parts.items()}

    @property
    def books(self) -> dict[Where, EpisodeBook] | None:
        """Each partition's alert episodes (``None`` without ``rules``)."""
        if self.rules is None:
            return None
        return {w: part.book for w, part in self._parts.items() if part.book is not None}

    def open_episodes(self) -> int:
        """Episodes open over all partitions."""
        return sum(
            len(part.book.open_episodes()) for part in self._parts.values() if part.book is not None
        )

    def vehicles(self) -> int:
        """Vehicles held over all partitions."""
        return sum(len(part.state) for part in self._parts.values())

    def partitions(self) -> list[Where]:
        return sorted(self._parts)

    def _gauges(self) -> None:
        self.metrics.context_vehicles.set(self.vehicles())
        self.metrics.alerts.open.set(self.open_episodes())

    async def prepare(
        self,
        detector: Detector,
        first_offsets: Mapping[Where, int],
        source: Mapping[Where, ContextState] | None = None,
    ) -> None:
        """Make each partition's state end where the batch begins, where it does not: a copy
        of the partition's state in ``source`` (states in step with the batch, of the model's
        width: the active model's, for a shadow candidate's store, which keeps no episodes),
        else a rebuild from the partition's tail."""
        stale = {
            where: offset
            for where, offset in first_offsets.items()
            if (part := self._parts.get(where)) is None
            or part.next_offset != offset
            or part.state.n_sensors != detector.n_features
        }
        if source is not None:
            for where in list(stale):
                state = source.get(where)
                if state is not None and state.n_sensors == detector.n_features:
                    self._parts[where] = PartitionContext(state.copy(), stale.pop(where))
            self._gauges()
        if stale:
            await self.rebuild(detector, stale)

    def advance(self, next_offsets: Mapping[Where, int]) -> None:
        """The batch was scored: each partition's state now ends after its last record."""
        for where, offset in next_offsets.items():
            part = self._parts.get(where)
            if part is not None:
                part.next_offset = offset
        self._gauges()

    def drop(self, partitions: Iterable[Where]) -> None:
        """Forget these partitions' state (revoked, or left mid-batch by a failure)."""
        for where in partitions:
            self._parts.pop(where, None)
        self._gauges()

    async def rebuild(self, detector: Detector, targets: Mapping[Where, int]) -> None:
        """Fresh states for ``targets`` (partition -> the offset to rebuild up to), from the
        last ``horizon`` offsets before it; nothing is published or committed."""
        started = self._monotonic()
        deadline = started + self.replay_seconds
        horizon = detector.context.params_.horizon if detector.context is not None else 0
        fresh = {where: detector.new_state() for where in targets}
        books = {where: self._new_book(detector) for where in targets}
        depth = self.replay_offsets if self.rules is not None else 0
        ranges = {where: (max(0, stop - horizon - depth), stop) for where, stop in targets.items()}
        reached = {where: start for where, (start, _stop) in ranges.items()}
        read = 0
        truncated = False
        if self.reader is not None and horizon > 0:
            chunks = self.reader.read(ranges, self.chunk_records)
            async with contextlib.aclosing(chunks):  # type: ignore[type-var]  # an async generator
                async for where, chunk in chunks:
                    if where in fresh and chunk:
                        self._derive(
                            detector, fresh[where], chunk, books[where], targets[where] - depth
                        )
                        reached[where] = chunk[-1].offset + 1
                        read += len(chunk)
                    await asyncio.sleep(0)  # let heartbeats, health probes and commits run
                    if self._monotonic() > deadline:
                        truncated = any(reached[w] < targets[w] for w in targets)
                        break
        for where, stop in targets.items():
            self._parts[where] = PartitionContext(fresh[where], stop, books[where])
        elapsed = self._monotonic() - started
        self.metrics.context_replay_records.inc(read)
        self.metrics.context_replay_seconds.observe(elapsed)
        self._gauges()
        if truncated:
            self.metrics.context_replay_truncated.inc()
            for where, stop in sorted(targets.items()):
                if reached[where] < stop:
                    log.warning(
                        "context rebuild stopped at CONSUMER_CONTEXT_REPLAY_SECONDS; this "
                        "partition's vehicles are scored with the history rebuilt so far",
                        extra={
                            "topic": where[0],
                            "partition": where[1],
                            "rebuilt_from": ranges[where][0],
                            "rebuilt_to": reached[where],
                            "committed": stop,
                            "seconds": round(elapsed, 3),
                        },
                    )
        log.info(
            "context rebuilt",
            extra={
                "partitions": {f"{t}-{p}": o for (t, p), o in sorted(targets.items())},
                "records": read,
                "vehicles": sum(len(state) for state in fresh.values()),
                "seconds": round(elapsed, 3),
            },
        )

    def _new_book(self, detector: Detector) -> EpisodeBook | None:
        if self.rules is None:
            return None
        return EpisodeBook(self.rules, severity_scale(detector))

    def _derive(
        self,
        detector: Detector,
        state: ContextState,
        chunk: Sequence[RecordLike],
        book: EpisodeBook | None,
        scored_from: int,
    ) -> None:
        """The chunk joins the state; its records from ``scored_from`` on are scored again and
        fed to ``book`` (their events dropped)."""
        decoded = decode_batch(
            [r.value for r in chunk], detector.n_features, max_bytes=self.max_record_bytes
        )
        if not decoded.index:
            return
        offsets = np.fromiter(
            (chunk[i].offset for i in decoded.index), np.int64, len(decoded.index)
        )
        times = epoch_seconds(decoded.timestamps)
        split = len(offsets) if book is None else int(np.searchsorted(offsets, scored_from))
        ids = decoded.vehicle_ids
        if split > 0:  # history only: what nobody reads is not scored
            detector.remember(
                state, ids[:split], times[:split], decoded.features[:split], offsets[:split]
            )
        if split < len(offsets) and book is not None:
            scored = score_context_rows(
                detector,
                state,
                ids[split:],
                times[split:],
                decoded.features[split:],
                LEAD_MAX,
                offsets[split:],
            )
            first = chunk[0]
            book.severity_scale = severity_scale(detector)
            book.feed(
                first.topic,
                first.partition,
                ids[split:],
                decoded.timestamps[split:],
                times[split:],
                offsets[split:].tolist(),
                scored.scores,
                scored.flags,
                scored.attributions,
                detector.version,
            )


def severity_scale(detector: Detector) -> float:
    """``1 - threshold`` of the model's forest: what :func:`shared.episodes.severity` divides by."""
    return 1.0 + float(detector.isolation_forest.offset_)
