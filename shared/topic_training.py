"""Training a model version from the raw telemetry topic's own history (``POST /ingest/from-topic``).

Three steps, each usable on its own:

1. :func:`read_topic` (async, aiokafka, the project's Kafka options: TLS, SASL, MSK IAM)
   finds the range's offsets, reads the flagged records' positions from the anomalies topic
   when asked, and reads the raw records of the range.
2. :func:`select_and_decode` (blocking) puts the records in **the training order**, keeps
   the range's records, drops the flagged ones, and validates the rest with
   :func:`shared.schemas.decode_batch` (the worker's rules); a record that fails is skipped
   and counted under its dead-letter reason.
3. :func:`fit_and_publish` (blocking) fits and publishes the version as ``POST /ingest`` does.

**The training order** is ascending (Kafka timestamp, partition, offset). Training from the
topic gives exactly the model that ``POST /ingest`` gives for the same records sent in that
order with the same parameters (``random_state`` included).

**The range.** ``{"last": N}``: the N newest records of the topic in that order. The reader
finds, with ``offsets_for_times``, the latest timestamp T from which the partitions hold at
least N records, reads every partition from there to its end, and keeps the newest N. That
is exactly the N newest when each partition's timestamps do not decrease (LogAppendTime, or
producers stamping records as they send them); otherwise it is the N newest of the records
from those offsets on.
``{"since": A, "until": B}``: the records whose Kafka timestamp t has A <= t < B (B defaults
to the moment the job was accepted); each partition is read from the first offset whose
timestamp is >= A to the first whose timestamp is >= B. Either way a partition is read no
further than its end when the job started: records produced meanwhile are left out.

**Dimension.** The dimension most valid records have is trained on (a tie goes to the
dimension seen first in the training order); records of another dimension are skipped as
``dimension_mismatch``.

**Flagged records** (``exclude_flagged``): the whole anomalies topic, up to its end when the
job started, is read first; a raw record is left out when any verdict with
``is_anomaly: true`` names it in ``source`` (topic, partition, offset).
"""

from __future__ import annotations

import logging
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from shared.errors import (
    InvalidRecordError,
    KafkaUnavailableError,
    TooManyRecordsError,
    TopicNotFoundError,
    TrainingError,
)
from shared.jobs import JobProgress, PartitionRange
from shared.kafka import client_options
from shared.kafka.aiokafka_compat import fetch_all_metadata
from shared.registry import ModelRegistry
from shared.schemas import (
    DeadLetterReason,
    FeatureNames,
    Timestamp,
    TrainingParams,
    TrainingResponse,
    decode_batch,
    decode_record,
    parse_timestamp,
)
from shared.settings import Settings
from shared.training import train_matrix

logger = logging.getLogger(__name__)

Int64s = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.float64]

DECODE_CHUNK = 10_000
# A partition position is packed with its partition as partition << 40 | offset.
_OFFSET_BITS = 40
# How far past "now" the search for the newest records looks for producer timestamps.
_FUTURE_MS = 366 * 24 * 3600 * 1000


# --- the request ----------------------------------------------------------------------------

LAST_EXAMPLE: dict[str, Any] = {
    "last": 10000,
    "exclude_flagged": True,
    "params": {"n_estimators": 200, "max_samples": 1.0, "random_state": 42},
}
RANGE_EXAMPLE: dict[str, Any] = {
    "since": "2024-01-14T00:00:00Z",
    "until": "2024-01-15T00:00:00Z",
}


def _one_range_only(schema: dict[str, Any]) -> None:
    """The schema states the rule the validator enforces: either `last`, or `since` (+ `until`)."""
    properties = schema.get("properties", {})
    shared = {k: v for k, v in properties.items() if k in ("exclude_flagged", "params")}

    def branch(*names: str, required: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {**{n: properties[n] for n in names if n in properties}, **shared},
            "required": [required],
            "additionalProperties": False,
        }

    schema["oneOf"] = [
        branch("last", required="last"),
        branch("since", "until", required="since"),
    ]
    schema["examples"] = [LAST_EXAMPLE, RANGE_EXAMPLE]


class TopicTrainingRequest(BaseModel):
    """The body of ``POST /ingest/from-topic``: one range, and how to train."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_range_only)

    last: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        None,
        description="the newest N records of the topic (at most INGEST_TOPIC_MAX_RECORDS); "
        "not with since/until",
    )
    since: Timestamp | SkipJsonSchema[None] = Field(
        None, description="RFC 3339: the records whose Kafka timestamp is at or after this"
    )
    until: Timestamp | SkipJsonSchema[None] = Field(
        None,
        description="RFC 3339: ... and before this (default: when the job is accepted); "
        "needs since",
    )
    exclude_flagged: StrictBool = Field(
        False, description="skip the records an earlier verdict on the anomalies topic flagged"
    )
    params: TrainingParams | None = Field(None, description="as for POST /ingest")
    feature_names: FeatureNames = Field(
        None, description="as for POST /ingest: names of the features, in feature_vector order"
    )

    @field_validator("last", "since", "until", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null: leave the field out instead")
        return value

    @field_validator("last", mode="before")
    @classmethod
    def _integer(cls, value: Any) -> Any:
        # JSON Schema's integer: 5 and 5.0, not "5" or true
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        return value


@dataclass(frozen=True, slots=True)
class RequestIssue:
    """A rule of the request broken beyond its schema: which field, why, and what kind."""

    field: str
    message: str
    kind: str  # "validation-error", "invalid-range" or "too-many-records"


def request_issues(
    request: TopicTrainingRequest, *, max_records: int, now: datetime
) -> list[RequestIssue]:
    """What is wrong with ``request`` besides its fields' own types (empty when it is fine)."""
    issues = []
    if request.last is None and request.since is None:
        for name in ("last", "since"):
            issues.append(
                RequestIssue(
                    name, "give either last, or since (with an optional until)", "validation-error"
                )
            )
        return issues
    if request.last is not None:
        for name in ("since", "until"):
            if getattr(request, name) is not None:
                issues.append(
                    RequestIssue(
                        name, f"{name} does not go with last: choose one range", "validation-error"
                    )
                )
        if not issues and request.last > max_records:
            issues.append(
                RequestIssue(
                    "last",
                    f"at most {max_records} records (INGEST_TOPIC_MAX_RECORDS)",
                    "too-many-records",
                )
            )
        return issues
    since_ms, until_ms = window_ms(request, now)
    if until_ms <= since_ms:
        which = "until" if request.until is not None else "since"
        issues.append(
            RequestIssue(
                which,
                "until must be later than since"
                if request.until is not None
                else f"since must be in the past (now is {now.isoformat()})",
                "invalid-range",
            )
        )
    return issues


def _ceil_ms(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-micros // 1000)


def window_ms(request: TopicTrainingRequest, now: datetime) -> tuple[int, int]:
    """``[since, until)`` in Kafka's epoch milliseconds (a record's ``t`` is in it when since <= t < until)."""
    assert request.since is not None
    since = _ceil_ms(parse_timestamp(request.since))
    until = _ceil_ms(parse_timestamp(request.until) if request.until is not None else now)
    return max(since, 0), max(until, 0)


# --- reading --------------------------------------------------------------------------------


class _Source(msgspec.Struct):
    topic: str
    partition: int
    offset: int


class _VerdictRef(msgspec.Struct):
    is_anomaly: bool
    source: _Source | None = None


_verdict_decoder = msgspec.json.Decoder(_VerdictRef)


def _pack(partition: int, offset: int) -> int:
    return (partition << _OFFSET_BITS) | offset


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


ProgressHook = Callable[[], None]


def _kafka_reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    name = type(error).__name__
    if not text or text == name:
        return name
    return text if len(text) < 300 else text[:297] + "..."


async def _partitions(consumer: Any, topic: str, setting: str) -> list[Any]:
    from aiokafka import TopicPartition

    # The consumer's public topics() fetches every topic's metadata but keeps only the names;
    # its client's answer also has the partitions (partitions_for_topic only knows the
    # topics a consumer already tracks).
    cluster = await fetch_all_metadata(consumer)
    found = cluster.partitions_for_topic(topic)
    if not found:
        raise TopicNotFoundError(
            f"the topic {topic!r} ({setting}) does not exist on Kafka",
        )
    return [TopicPartition(topic, p) for p in sorted(found)]


async def _drain(
    consumer: Any,
    ranges: dict[Any, tuple[int, int]],
    handle: Callable[[Any, list[Any]], None],
    after_batch: ProgressHook,
) -> None:
    """Read each partition from its start offset up to (not including) its stop offset."""
    live = {tp: bounds for tp, bounds in ranges.items() if bounds[1] > bounds[0]}
    if not live:
        return
    consumer.assign(list(live))
    for tp, (start, _stop) in live.items():
        consumer.seek(tp, start)
    while live:
        batches = await consumer.getmany(*live, timeout_ms=500)
        for tp, messages in batches.items():
            bounds = live.get(tp)
            if bounds is None or not messages:
                continue
            if messages[-1].offset >= bounds[1]:
                messages = [m for m in messages if m.offset < bounds[1]]
            if messages:
                handle(tp, messages)
        for tp in list(live):
            if await consumer.position(tp) >= live[tp][1]:
                consumer.pause(tp)
                del live[tp]
        after_batch()


async def _read_flagged(
    consumer: Any, settings: Settings, progress: JobProgress, after_batch: ProgressHook
) -> Int64s:
    """The packed positions of the raw topic's records that a verdict flagged."""
    tps = await _partitions(consumer, settings.anomaly_topic, "ANOMALY_TOPIC")
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    raw_topic = settings.telemetry_topic
    flagged: set[int] = set()
    counts = Counter[str]()

    def handle(_tp: Any, messages: list[Any]) -> None:
        for message in messages:
            counts["read"] += 1
            try:
                verdict = _verdict_decoder.decode(message.value or b"")
            except (msgspec.DecodeError, msgspec.ValidationError):
                counts["unreadable"] += 1
                continue
            source = verdict.source
            if verdict.is_anomaly and source is not None and source.topic == raw_topic:
                flagged.add(_pack(source.partition, source.offset))

    def report() -> None:
        progress.verdicts_read = counts["read"]
        progress.verdicts_unreadable = counts["unreadable"]
        progress.flagged_records = len(flagged)
        after_batch()

    await _drain(consumer, {tp: (begin[tp], end[tp]) for tp in tps}, handle, report)
    report()
    return np.fromiter(flagged, dtype=np.int64, count=len(flagged))


async def _newest_starts(
    consumer: Any,
    tps: Sequence[Any],
    begin: dict[Any, int],
    end: dict[Any, int],
    count: int,
    now_ms: int,
) -> dict[Any, int]:
    """Per partition, the first offset of the records stamped at or after the latest time T
    from which the partitions hold at least ``count`` records."""
    if sum(end[tp] - begin[tp] for tp in tps) <= count:
        return dict(begin)

    async def starts(moment: int) -> dict[Any, int]:
        found = await consumer.offsets_for_times(dict.fromkeys(tps, moment))
        result = {}
        for tp in tps:
            hit = found.get(tp)
            result[tp] = end[tp] if hit is None else min(max(hit.offset, begin[tp]), end[tp])
        return result

    def held(offsets: dict[Any, int]) -> int:
        return sum(end[tp] - offsets[tp] for tp in tps)

    low, high = 0, max(now_ms, 0) + _FUTURE_MS
    high_starts = await starts(high)
    if held(high_starts) >= count:
        return high_starts
    low_starts = await starts(low)
    # held(low) >= count > held(high); the timestamps are integers.
    while high - low > 1:
        middle = (low + high) // 2
        middle_starts = await starts(middle)
        if held(middle_starts) >= count:
            low, low_starts = middle, middle_starts
        else:
            high = middle
    return low_starts


async def read_topic(
    settings: Settings,
    request: TopicTrainingRequest,
    progress: JobProgress,
    *,
    now: datetime,
    max_records: int,
    on_progress: ProgressHook | None = None,
) -> TopicRecords:
    """Read the request's range of ``TELEMETRY_TOPIC`` (and the flagged positions).

    ``progress`` is updated as records arrive; ``on_progress`` is called after each fetch.
    Raises a :class:`~shared.errors.TopicTrainingError` when Kafka or a topic cannot be used, or when a
    ``since`` range holds more than ``max_records`` records.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import KafkaError

    hook = on_progress or (lambda: None)
    options = client_options(settings)
    options["client_id"] = f"{options.get('client_id', 'vehicle-anomaly')}-api-training"
    consumer = AIOKafkaConsumer(
        **options,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    records = TopicRecords(last=request.last)
    try:
        try:
            await consumer.start()
        except (KafkaError, OSError) as error:
            raise KafkaUnavailableError(
                f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {_kafka_reason(error)}",
            ) from error
        try:
            if request.exclude_flagged:
                progress.phase = "reading_verdicts"
                hook()
                records.flagged = await _read_flagged(consumer, settings, progress, hook)
            progress.phase = "locating"
            hook()
            await _read_raw(consumer, settings, request, progress, records, now, max_records, hook)
        except KafkaError as error:
            raise KafkaUnavailableError(
                f"reading from Kafka at {settings.kafka_bootstrap_servers} failed: "
                f"{_kafka_reason(error)}",
            ) from error
    finally:
        try:
            await consumer.stop()
        except Exception as error:  # closing must not hide the outcome
            logger.warning("closing the training consumer failed", extra={"error": str(error)})
    return records


async def _read_raw(
    consumer: Any,
    settings: Settings,
    request: TopicTrainingRequest,
    progress: JobProgress,
    records: TopicRecords,
    now: datetime,
    max_records: int,
    hook: ProgressHook,
) -> None:
    tps = await _partitions(consumer, settings.telemetry_topic, "TELEMETRY_TOPIC")
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    if request.last is not None:
        now_ms = _ceil_ms(now)
        starts = await _newest_starts(consumer, tps, begin, end, request.last, now_ms)
        stops = dict(end)
    else:
        records.since_ms, records.until_ms = window_ms(request, now)
        from_since = await consumer.offsets_for_times(dict.fromkeys(tps, records.since_ms))
        from_until = await consumer.offsets_for_times(dict.fromkeys(tps, records.until_ms))
        starts, stops = {}, {}
        for tp in tps:
            since_hit, until_hit = from_since.get(tp), from_until.get(tp)
            start = end[tp] if since_hit is None else min(max(since_hit.offset, begin[tp]), end[tp])
            stop = end[tp] if until_hit is None else min(max(until_hit.offset, begin[tp]), end[tp])
            starts[tp], stops[tp] = start, max(start, stop)
    progress.partitions = [
        PartitionRange(partition=tp.partition, start_offset=starts[tp], end_offset=stops[tp])
        for tp in tps
    ]
    expected = sum(stops[tp] - starts[tp] for tp in tps)
    progress.records_expected = expected
    if request.last is None and expected > max_records:
        raise TooManyRecordsError(
            f"the range holds {expected} records; a job reads at most {max_records} "
            "(INGEST_TOPIC_MAX_RECORDS): narrow since/until, or use last",
        )
    progress.phase = "reading"
    hook()

    def handle(tp: Any, messages: list[Any]) -> None:
        records.timestamps.extend([m.timestamp for m in messages])
        records.partitions.extend([tp.partition] * len(messages))
        records.offsets.extend([m.offset for m in messages])
        records.values.extend([m.value for m in messages])

    def report() -> None:
        progress.records_read = len(records.values)
        hook()

    await _drain(consumer, {tp: (starts[tp], stops[tp]) for tp in tps}, handle, report)
    report()


# --- selecting and decoding -------------------------------------------------------------------


@dataclass
class Prepared:
    """The training matrix, in the training order, and what was left out of it."""

    features: Matrix
    records_selected: int
    outside_range: int
    excluded_flagged: int
    skipped: dict[str, int]

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
        packed = (partitions[order] << _OFFSET_BITS) | offsets[order]
        is_flagged = np.isin(packed, records.flagged)
        excluded = int(np.count_nonzero(is_flagged))
        order = order[~is_flagged]
    values = [records.values[i] for i in order.tolist()]
    features, skipped = decode_in_order(values, max_bytes=max_bytes)
    return Prepared(
        features=features,
        records_selected=selected,
        outside_range=outside,
        excluded_flagged=excluded,
        skipped=skipped,
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
    values: Sequence[bytes | None], *, max_bytes: int
) -> tuple[Matrix, dict[str, int]]:
    """The valid records' feature matrix (in the given order) and the skipped counts by reason.

    Validation is :func:`shared.schemas.decode_batch`'s. The dimension most valid records have
    wins (a tie: the one seen first); the others count as ``dimension_mismatch``.
    """
    skipped = Counter[str]()
    blocks: dict[int, list[Matrix]] = {}
    stray_rows: dict[int, list[list[float]]] = {}
    counts = Counter[int]()
    first_seen: dict[int, int] = {}
    width: int | None = None
    for start in range(0, len(values), DECODE_CHUNK):
        chunk = values[start : start + DECODE_CHUNK]
        if width is None:
            width = _first_width(chunk, max_bytes)
        batch = decode_batch(chunk, width or 1, max_bytes=max_bytes)
        if width is not None and batch.index:
            blocks.setdefault(width, []).append(batch.features)
            counts[width] += len(batch.index)
            first_seen.setdefault(width, start + batch.index[0])
        for failure in batch.failures:
            if failure.reason is not DeadLetterReason.DIMENSION_MISMATCH:
                skipped[failure.reason.value] += 1
                continue
            raw = chunk[failure.index]
            assert raw is not None  # only a decoded record can mismatch
            vector = decode_record(raw, max_bytes=max_bytes)[2]
            stray_rows.setdefault(len(vector), []).append(vector)
            counts[len(vector)] += 1
            first_seen.setdefault(len(vector), start + failure.index)
    if not counts:
        return np.empty((0, 0), dtype=np.float64), dict(skipped)
    chosen = max(counts, key=lambda d: (counts[d], -first_seen[d]))
    mismatched = sum(counts.values()) - counts[chosen]
    if mismatched:
        skipped[DeadLetterReason.DIMENSION_MISMATCH.value] += mismatched
    if chosen == width:
        features = np.concatenate(blocks[chosen]) if blocks.get(chosen) else np.empty((0, chosen))
    else:
        features = np.array(stray_rows[chosen], dtype=np.float64).reshape(-1, chosen)
    return features, dict(skipped)


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
    )


def elapsed_since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
