# One concern, the pure steps of training from the topic, keeps this module past 300 lines.
"""Training a model version from the raw telemetry topic's own history: the pure part.

A topic job (:mod:`shared.topic_jobs`) runs three steps:

1. a :class:`TopicReader` (the port; the Kafka adapter is :mod:`shared.kafka.topic_reader`)
   finds the range's offsets, reads the flagged records' positions from the anomalies topic
   when asked, and reads the raw records of the range into :class:`TopicRecords`;
2. :func:`select_and_decode` (blocking) puts the records in **the training order**, keeps
   the range's records, drops the flagged ones, and validates the rest with
   :func:`shared.decoding.decode_batch` (the worker's rules); a record that fails is skipped
   and counted under its dead-letter reason;
3. :func:`fit_and_publish` (blocking) fits and publishes the version as ``POST /ingest`` does
   (a context model orders each vehicle's records by their own ``timestamp`` as it fits).

**The training order** is ascending (Kafka timestamp, partition, offset). Training from the
topic gives exactly the model that ``POST /ingest`` gives for the same records sent in that
order with the same parameters (``random_state`` included).

**The range** (:class:`TopicTrainingSpec`). ``last=N``: the N newest records of the topic in
that order. ``since=A, until=B``: the records whose Kafka timestamp t has A <= t < B (B
defaults to the moment the job was accepted). Either way a partition is read no further than
its end when the job started: records produced meanwhile are left out. How a reader finds
those offsets is said in :mod:`shared.kafka.topic_reader`.

**Dimension.** The dimension most valid records have is trained on (a tie goes to the
dimension seen first in the training order); records of another dimension are skipped as
``dimension_mismatch``.

**Flagged records** (``exclude_flagged``): a raw record is left out when any verdict with
``is_anomaly: true`` on the anomalies topic (up to its end when the job started) names it in
``source`` (topic, partition, offset).
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shared.decoding import DecodedBatch, decode_batch, decode_record
from shared.errors import InvalidRecordError, TrainingError
from shared.jobs import JobProgress
from shared.registry import ModelRegistry
from shared.schemas import DeadLetterReason
from shared.settings import Settings
from shared.training import train_matrix
from shared.training_schemas import TrainingParams, TrainingResponse

Int64s = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.float64]

DECODE_CHUNK = 10_000
# A partition position is packed with its partition as partition << 40 | offset.
OFFSET_BITS = 40

ProgressHook = Callable[[], None]


@dataclass(frozen=True, slots=True)
class TopicTrainingSpec:
    """What a topic job reads (one range) and how it trains on it.

    Either ``last`` or ``since`` (with an optional ``until``) is set; the api's request body
    is checked for that before a spec is made.
    """

    last: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    exclude_flagged: bool = False
    params: TrainingParams | None = None
    feature_names: list[str] | None = None


def ceil_ms(moment: datetime) -> int:
    """``moment`` in Kafka's epoch milliseconds, a fraction of a millisecond rounded up."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-micros // 1000)


def window_ms(spec: TopicTrainingSpec, now: datetime) -> tuple[int, int]:
    """``[since, until)`` in Kafka's epoch milliseconds (a record's ``t`` is in it when since <= t < until)."""
    assert spec.since is not None
    since = ceil_ms(spec.since)
    until = ceil_ms(spec.until if spec.until is not None else now)
    return max(since, 0), max(until, 0)


def pack_position(partition: int, offset: int) -> int:
    """One record's position as one integer (the form :attr:`TopicRecords.flagged` holds)."""
    return (partition << OFFSET_BITS) | offset


@dataclass
class TopicRecords:
    """The raw records read from the range's offsets, in the order they were read."""

    timestamps: array[int] = field(default_factory=lambda: array("q"))
    partitions: array[int] = field(default_factory=lambda: array("q"))
    offsets: array[int] = field(default_factory=lambda: array("q"))
    values: list[bytes | None] = field(default_factory=list)
    flagged: Int64s = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    since_ms: int | None = None
    until_ms: int | None = None
    last: int | None = None

    def __len__(self) -> int:
        return len(self.values)


class TopicReader(Protocol):
    """The port a topic job reads through (the Kafka adapter: ``shared.kafka.topic_reader``)."""

    async def read(
        self,
        spec: TopicTrainingSpec,
        progress: JobProgress,
        *,
        now: datetime,
        max_records: int,
        on_progress: ProgressHook | None = None,
    ) -> TopicRecords:
        """Read the spec's range of the raw topic (and, if asked, the flagged positions).

        ``now`` is when the job was accepted (``until``'s default). ``progress`` is updated
        as records arrive (phase, partitions, counts); ``on_progress`` is called after each
        fetch. Raises :class:`~shared.errors.TopicNotFoundError` or
        :class:`~shared.errors.KafkaUnavailableError` when a topic or Kafka cannot be used,
        and :class:`~shared.errors.TooManyRecordsError` when a ``since`` range holds more
        than ``max_records`` records.
        """
        ...


# --- selecting and decoding -------------------------------------------------------------------


@dataclass
class Decoded:
    """The valid records, in the order given: readings, vehicle ids, timestamps; and the
    skipped ones' counts by dead-letter reason."""

    features: Matrix
    vehicle_ids: list[str]
    timestamps: list[str]
    skipped: dict[str, int]


@dataclass
class Prepared:
    """The training records, in the training order, and what was left out of them."""

    features: Matrix
    records_selected: int
    outside_range: int
    excluded_flagged: int
    skipped: dict[str, int]
    vehicle_ids: list[str] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)

    @property
    def records_used(self) -> int:
        return int(self.features.shape[0])


def training_order(timestamps: Int64s, partitions: Int64s, offsets: Int64s) -> Int64s:
    """Indices that sort records by (Kafka timestamp, partition, offset)."""
    return np.lexsort((offsets, partitions, timestamps)).astype(np.int64)


def select_and_decode(records: TopicRecords, *, max_bytes: int) -> Prepared:
    """Order, select, exclude and validate the records read (blocking: run it in a thread)."""
    timestamps = np.frombuffer(records.timestamps, dtype=np.int64)
    partitions = np.frombuffer(records.partitions, dtype=np.int64)
    offsets = np.frombuffer(records.offsets, dtype=np.int64)
    order = training_order(timestamps, partitions, offsets)
    outside = 0
    if records.last is not None:
        order = order[-records.last :] if records.last < len(order) else order
    elif records.since_ms is not None and records.until_ms is not None:
        stamps = timestamps[order]
        inside = (stamps >= records.since_ms) & (stamps < records.until_ms)
        outside = int(len(order) - np.count_nonzero(inside))
        order = order[inside]
    selected = len(order)
    excluded = 0
    if len(records.flagged):
        packed = (partitions[order] << OFFSET_BITS) | offsets[order]
        is_flagged = np.isin(packed, records.flagged)
        excluded = int(np.count_nonzero(is_flagged))
        order = order[~is_flagged]
    values = [records.values[i] for i in order.tolist()]
    decoded = decode_in_order(values, max_bytes=max_bytes)
    return Prepared(
        features=decoded.features,
        records_selected=selected,
        outside_range=outside,
        excluded_flagged=excluded,
        skipped=decoded.skipped,
        vehicle_ids=decoded.vehicle_ids,
        timestamps=decoded.timestamps,
    )


def _first_width(values: Sequence[bytes | None], max_bytes: int) -> int | None:
    for raw in values:
        if raw is None:
            continue
        try:
            return len(decode_record(raw, max_bytes=max_bytes)[2])
        except InvalidRecordError:
            continue
    return None


def decode_in_order(
    values: Sequence[bytes | None], *, max_bytes: int, chunk_size: int = DECODE_CHUNK
) -> Decoded:
    """The valid records (in the given order) and the skipped counts by reason.

    Validation is :func:`shared.decoding.decode_batch`'s. The dimension most valid records have
    wins (a tie: the one seen first); the others count as ``dimension_mismatch``.
    """
    skipped = Counter[str]()
    blocks: list[DecodedBatch] = []  # batches decoded at the first width seen
    # records of other widths, per width: vehicle ids, timestamps, feature vectors
    strays: dict[int, tuple[list[str], list[str], list[list[float]]]] = {}
    counts = Counter[int]()
    first_seen: dict[int, int] = {}
    width: int | None = None
    for start in range(0, len(values), chunk_size):
        chunk = values[start : start + chunk_size]
        if width is None:
            width = _first_width(chunk, max_bytes)
        batch = decode_batch(chunk, width or 1, max_bytes=max_bytes)
        if width is not None and batch.index:
            blocks.append(batch)
            counts[width] += len(batch.index)
            first_seen.setdefault(width, start + batch.index[0])
        for failure in batch.failures:
            if failure.reason is not DeadLetterReason.DIMENSION_MISMATCH:
                skipped[failure.reason.value] += 1
                continue
            raw = chunk[failure.index]
            assert raw is not None  # only a decoded record can mismatch
            vehicle, stamp, vector = decode_record(raw, max_bytes=max_bytes)
            ids, stamps, rows = strays.setdefault(len(vector), ([], [], []))
            ids.append(vehicle)
            stamps.append(stamp)
            rows.append(vector)
            counts[len(vector)] += 1
            first_seen.setdefault(len(vector), start + failure.index)
    if not counts:
        return Decoded(np.empty((0, 0), dtype=np.float64), [], [], dict(skipped))
    chosen = max(counts, key=lambda d: (counts[d], -first_seen[d]))
    mismatched = sum(counts.values()) - counts[chosen]
    if mismatched:
        skipped[DeadLetterReason.DIMENSION_MISMATCH.value] += mismatched
    if chosen == width:
        return Decoded(
            np.concatenate([b.features for b in blocks]).reshape(-1, chosen),
            [v for b in blocks for v in b.vehicle_ids],
            [t for b in blocks for t in b.timestamps],
            dict(skipped),
        )
    ids, stamps, rows = strays[chosen]
    features = np.array(rows, dtype=np.float64).reshape(-1, chosen)
    return Decoded(features, ids, stamps, dict(skipped))


# --- training ---------------------------------------------------------------------------------


def fit_and_publish(
    registry: ModelRegistry,
    prepared: Prepared,
    request_params: TrainingParams | None,
    settings: Settings,
    *,
    activate: bool,
    feature_names: list[str] | None = None,
) -> TrainingResponse:
    """Fit on the prepared matrix and publish, as ``POST /ingest`` does (blocking)."""
    features = prepared.features
    if features.shape[0] == 0:
        left_out = []
        if prepared.excluded_flagged:
            left_out.append(f"{prepared.excluded_flagged} excluded as flagged")
        if prepared.skipped:
            reasons = ", ".join(f"{n} {r}" for r, n in sorted(prepared.skipped.items()))
            left_out.append(f"{sum(prepared.skipped.values())} invalid ({reasons})")
        detail = f"no record to train on: the range holds {prepared.records_selected} record(s)"
        raise TrainingError(detail + (f" ({'; '.join(left_out)})" if left_out else ""))
    return train_matrix(
        registry,
        features,
        request_params,
        settings,
        activate=activate,
        feature_names=feature_names,
        vehicle_ids=prepared.vehicle_ids,
        timestamps=prepared.timestamps,
    )


def elapsed_since(started: float) -> float:
    """Seconds since ``started`` (a ``time.perf_counter()``), to the millisecond."""
    return round(time.perf_counter() - started, 3)
