# One concern, reading a range of the raw topic for training, keeps this module past 300 lines.
"""The Kafka adapter of :class:`shared.topic_training.TopicReader`: reading a range of the raw
topic (and the flagged positions) with aiokafka and the project's Kafka options (TLS, SASL,
MSK IAM).

**Finding the range.** ``last=N``: with ``offsets_for_times``, the latest timestamp T from
which the partitions hold at least N records; every partition is read from there to its end,
and the selection keeps the newest N. That is exactly the N newest when each partition's
timestamps do not decrease (LogAppendTime, or producers stamping records as they send them);
otherwise it is the N newest of the records from those offsets on. ``since=A, until=B``:
each partition is read from the first offset whose timestamp is >= A to the first whose
timestamp is >= B. Either way no partition is read past its end when the job started.

**Flagged records**: the whole anomalies topic, up to its end when the job started, is read
first, and the positions its anomalous verdicts name on the raw topic are kept.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec
import numpy as np

from shared.errors import KafkaUnavailableError, TooManyRecordsError, TopicNotFoundError
from shared.jobs import JobProgress, PartitionRange
from shared.kafka.aiokafka_compat import fetch_all_metadata
from shared.kafka.diagnosis import connection_problem, describe, error_text
from shared.kafka.options import client_options
from shared.settings import Settings
from shared.topic_training import (
    Int64s,
    ProgressHook,
    TopicRecords,
    TopicTrainingSpec,
    ceil_ms,
    pack_position,
    window_ms,
)

logger = logging.getLogger(__name__)

# How far past "now" the search for the newest records looks for producer timestamps.
_FUTURE_MS = 366 * 24 * 3600 * 1000


class KafkaTopicReader:
    """Reads ``TELEMETRY_TOPIC`` (and ``ANOMALY_TOPIC`` for flagged records) with one
    short-lived consumer per job: no group, no commits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def read(
        self,
        spec: TopicTrainingSpec,
        progress: JobProgress,
        *,
        now: datetime,
        max_records: int,
        on_progress: ProgressHook | None = None,
    ) -> TopicRecords:
        """Read the spec's range of ``TELEMETRY_TOPIC`` (and the flagged positions): see
        :meth:`shared.topic_training.TopicReader.read`."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.errors import KafkaError

        settings = self.settings
        hook = on_progress or (lambda: None)
        options = client_options(settings)
        options["client_id"] = f"{options.get('client_id', 'vehicle-anomaly')}-api-training"
        consumer = AIOKafkaConsumer(
            **options,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        records = TopicRecords(last=spec.last)
        servers = settings.kafka_bootstrap_servers
        try:
            try:
                await consumer.start()
            except (KafkaError, OSError) as error:
                # The job's report is shown to api callers: it names no address (the log does).
                _log_kafka_failure("cannot reach Kafka", servers, error)
                reason = await _refusal(error, settings)
                raise KafkaUnavailableError(f"cannot reach Kafka: {reason}") from error
            try:
                if spec.exclude_flagged:
                    progress.phase = "reading_verdicts"
                    hook()
                    records.flagged = await _read_flagged(consumer, settings, progress, hook)
                progress.phase = "locating"
                hook()
                await _read_raw(consumer, settings, spec, progress, records, now, max_records, hook)
            except KafkaError as error:
                _log_kafka_failure("reading from Kafka failed", servers, error)
                raise KafkaUnavailableError(
                    f"reading from Kafka failed: {_unaddressed(describe(error), servers)}"
                ) from error
        finally:
            try:
                await consumer.stop()
            except Exception as error:  # closing must not hide the outcome
                logger.warning("closing the training consumer failed", extra={"error": str(error)})
        return records


class _Source(msgspec.Struct):
    topic: str
    partition: int
    offset: int


class _VerdictRef(msgspec.Struct):
    is_anomaly: bool
    source: _Source | None = None


_verdict_decoder = msgspec.json.Decoder(_VerdictRef)


async def _refusal(error: BaseException, settings: Settings) -> str:
    """Why the consumer could not start, without the brokers' addresses: a failed bootstrap's
    cause is looked for; with none found, the error's class (the log has the rest)."""
    servers = settings.kafka_bootstrap_servers
    if type(error).__name__ == "KafkaConnectionError":
        found = await connection_problem(settings)
        if found is None:
            return f"{type(error).__name__}; the api's log has the details"
        return _unaddressed(found, servers)
    return _unaddressed(describe(error), servers)


def _unaddressed(text: str, servers: str) -> str:
    """``text`` with each bootstrap address (and its host) left out."""
    for address in servers.split(","):
        address = address.strip()
        host = address.rpartition(":")[0]
        for part in (address, host):
            if part:
                text = text.replace(part, "<broker>")
    return text


def _log_kafka_failure(message: str, servers: str, error: BaseException) -> None:
    logger.warning(message, extra={"bootstrap_servers": servers, "error": error_text(error)})


async def _partitions(consumer: Any, topic: str, setting: str) -> list[Any]:
    from aiokafka import TopicPartition

    # The consumer's public topics() fetches every topic's metadata but keeps only the names;
    # its client's answer also has the partitions (partitions_for_topic only knows the
    # topics a consumer already tracks).
    cluster = await fetch_all_metadata(consumer)
    found = cluster.partitions_for_topic(topic)
    if not found:
        # With an authorizer, Kafka leaves out of the list the topics a principal may not
        # describe: absent and not permitted look the same.
        raise TopicNotFoundError(
            f"the topic {topic!r} ({setting}) does not exist on Kafka, or Kafka authorization "
            "hides it from this principal (a missing ACL or IAM permission: Read on the topic)"
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
                flagged.add(pack_position(source.partition, source.offset))

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


async def _read_raw(
    consumer: Any,
    settings: Settings,
    spec: TopicTrainingSpec,
    progress: JobProgress,
    records: TopicRecords,
    now: datetime,
    max_records: int,
    hook: ProgressHook,
) -> None:
    tps = await _partitions(consumer, settings.telemetry_topic, "TELEMETRY_TOPIC")
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    if spec.last is not None:
        now_ms = ceil_ms(now)
        starts = await _newest_starts(consumer, tps, begin, end, spec.last, now_ms)
        stops = dict(end)
    else:
        records.since_ms, records.until_ms = window_ms(spec, now)
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
    if spec.last is None and expected > max_records:
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
