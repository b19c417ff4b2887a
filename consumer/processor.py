# One concern, turning a batch of records into its messages, keeps this module past 300 lines.
"""The worker's pure core: a batch of raw Kafka records in, the messages to publish out.

No I/O here. :class:`BatchProcessor` decodes a batch with :func:`shared.decoding.decode_batch`,
scores every valid record in one ``decision_function`` call (a context model: per partition,
in offset order, each record in its vehicle's history held by that partition's
:class:`shared.context.ContextState`) and builds, in input order,
one verdict per scored record (anomalies only unless ``publish_all``) and one dead letter per
invalid record. The outcome keeps what was scored (features and scores), so the handler can
show it to the stateful :class:`consumer.monitor.ModelMonitor`; :mod:`consumer.handlers`
sends the messages and commits.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from consumer.alerts import alert_messages
from consumer.grouping import Groups, batch_epoch_seconds, partition_groups
from shared.decoding import DecodedBatch, decode_batch
from shared.episodes import LEAD_MAX, EpisodeBook, Event
from shared.schemas import DeadLetterReason
from shared.verdicts import ScoredRows, encode_verdict, score_context_rows, score_rows

if TYPE_CHECKING:
    from shared.context import ContextState
    from shared.detector import Detector  # imports scikit-learn: only when a model loads

log = logging.getLogger("consumer.processor")

ContextStates = MutableMapping[tuple[str, int], "ContextState"]
EpisodeBooks = Mapping[tuple[str, int], EpisodeBook]


# The dead-letter headers of the contract (values are bytes).
HEADER_ERROR = "error"
HEADER_ERROR_DETAIL = "error_detail"
HEADER_SOURCE_TOPIC = "source_topic"
HEADER_SOURCE_PARTITION = "source_partition"
HEADER_SOURCE_OFFSET = "source_offset"
# Added only when the record had neither key nor value: Kafka cannot carry that pair again,
# so the dead letter's value is b"" and this header says the original value was null.
HEADER_VALUE_NULL = "value_null"
MAX_DETAIL_CHARS = 1_000


class RecordLike(Protocol):
    """What the processor reads from a record: aiokafka's ``ConsumerRecord`` fits."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class Kind(StrEnum):
    VERDICT = "verdict"
    DEAD_LETTER = "dead_letter"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: a verdict or a dead letter, with the record it answers."""

    kind: Kind
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    source_topic: str
    source_partition: int
    source_offset: int
    reason: DeadLetterReason | None = None
    is_anomaly: bool | None = None


@dataclass(slots=True)
class BatchOutcome:
    """Everything one batch produces, and the offsets to commit once it is published."""

    model_version: str
    messages: list[Outgoing] = field(default_factory=list)
    records: int = 0
    scored: int = 0
    anomalies: int = 0
    explained: int = 0  # anomalous verdicts given an attribution
    dead_letters: Counter[str] = field(default_factory=Counter)
    # the decision_function score of each scored record (for the score histogram)
    scores: Any = ()
    # the feature matrix of the scored records, one row per score (for the model monitor)
    features: Any = None
    # (topic, partition) -> the offset after the batch's last record there
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    # (topic, partition) -> the batch's first offset there (where to rewind on failure)
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    # the alert episodes' events, in the order of their messages
    alerts: list[Event] = field(default_factory=list)
    # the shadow candidate's score of each scored record (None without a candidate)
    shadow_scores: Any = None

    @property
    def verdicts(self) -> list[Outgoing]:
        return [m for m in self.messages if m.kind is Kind.VERDICT]

    @property
    def dead_letter_messages(self) -> list[Outgoing]:
        return [m for m in self.messages if m.kind is Kind.DEAD_LETTER]


def offset_bounds(
    records: Sequence[RecordLike],
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """Per partition: the first offset of ``records`` and the offset after the last one."""
    first: dict[tuple[str, int], int] = {}
    after: dict[tuple[str, int], int] = {}
    for record in records:
        where = (record.topic, record.partition)
        if where not in first or record.offset < first[where]:
            first[where] = record.offset
        if record.offset + 1 > after.get(where, -1):
            after[where] = record.offset + 1
    return first, after


def dead_letter(
    record: RecordLike, dlq_topic: str, reason: DeadLetterReason, detail: str
) -> Outgoing:
    """The dead letter of ``record``: its original key and value, and why, in the headers."""
    headers: list[tuple[str, bytes]] = [
        (HEADER_ERROR, reason.value.encode()),
        (HEADER_ERROR_DETAIL, detail[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
        (HEADER_SOURCE_TOPIC, record.topic.encode()),
        (HEADER_SOURCE_PARTITION, str(record.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(record.offset).encode()),
    ]
    value = record.value
    if value is None and record.key is None:
        value = b""
        headers.append((HEADER_VALUE_NULL, b"true"))
    return Outgoing(
        kind=Kind.DEAD_LETTER,
        topic=dlq_topic,
        key=record.key,
        value=value,
        headers=tuple(headers),
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        reason=reason,
    )


class BatchProcessor:
    """Turns a batch of raw records into verdicts and dead letters; holds no state."""

    def __init__(
        self,
        *,
        anomaly_topic: str,
        dlq_topic: str,
        publish_all: bool = False,
        max_record_bytes: int = 65_536,
        attribution_top_k: int = 0,
        alert_topic: str = "telemetry.alerts",
    ) -> None:
        self.alert_topic = alert_topic
        self.anomaly_topic = anomaly_topic
        self.dlq_topic = dlq_topic
        self.publish_all = publish_all
        self.max_record_bytes = max_record_bytes
        self.attribution_top_k = attribution_top_k

    def process(
        self,
        records: Sequence[RecordLike],
        detector: Detector,
        scored_at: str,
        contexts: ContextStates | None = None,
        episodes: EpisodeBooks | None = None,
        shadow: Detector | None = None,
        shadow_contexts: ContextStates | None = None,
    ) -> BatchOutcome:
        """Decode, score in one call, and build the outgoing messages in input order.

        ``contexts`` (context models): each partition's state, which the batch's valid
        records join; a partition without one starts with no history. ``episodes`` (context
        models): each partition's alert episodes, whose events follow the verdicts.
        ``shadow``: a candidate that scores the same records too, through its own
        ``shadow_contexts`` when it is a context model (``outcome.shadow_scores``); it
        publishes nothing.
        """
        outcome = BatchOutcome(model_version=detector.version, records=len(records))
        outcome.first_offsets, outcome.next_offsets = offset_bounds(records)
        if not records:
            return outcome
        decoded = decode_batch(
            [r.value for r in records], detector.n_features, max_bytes=self.max_record_bytes
        )
        groups: Groups = {}
        times = np.empty(0)
        top_k = self.attribution_top_k
        if detector.kind == "context" or (shadow is not None and shadow.kind == "context"):
            groups = partition_groups(records, decoded)
            times = batch_epoch_seconds(decoded.timestamps)
        if detector.kind == "context":
            # the episodes' leading sensors need attributions, whatever the verdicts carry
            wide = max(top_k, LEAD_MAX) if episodes is not None else top_k
            scored = self._score_context(decoded, detector, contexts, groups, wide, times)
        else:
            scored = score_rows(detector, decoded.features, self.attribution_top_k)
        if shadow is not None:
            try:
                outcome.shadow_scores = (
                    self._score_context(decoded, shadow, shadow_contexts, groups, 0, times).scores
                    if shadow.kind == "context"
                    else score_rows(shadow, decoded.features, 0).scores
                )
            except Exception:  # a candidate never holds up the active model's verdicts
                log.exception(
                    "shadow candidate failed to score a batch; the batch goes on uncompared",
                    extra={"version": shadow.version},
                )
        scores, flags, explained = scored.scores, scored.flags.tolist(), scored.attributions
        outcome.scored = len(decoded.index)
        outcome.scores = scores
        outcome.features = decoded.features
        outcome.explained = len(explained) if top_k > 0 else 0

        slots: list[Outgoing | None] = [None] * len(records)
        version = detector.version
        for row, position in enumerate(decoded.index):
            score = float(scores[row])
            anomalous = flags[row]
            if anomalous:
                outcome.anomalies += 1
            if not (anomalous or self.publish_all):
                continue
            record = records[position]
            vehicle_id = decoded.vehicle_ids[row]
            slots[position] = Outgoing(
                kind=Kind.VERDICT,
                topic=self.anomaly_topic,
                key=vehicle_id.encode(),
                value=encode_verdict(
                    vehicle_id,
                    decoded.timestamps[row],
                    score,
                    version,
                    scored_at,
                    (record.topic, record.partition, record.offset),
                    _top(explained.get(row), top_k) if anomalous and explained else None,
                ),
                headers=(),
                source_topic=record.topic,
                source_partition=record.partition,
                source_offset=record.offset,
                is_anomaly=anomalous,
            )
        for failure in decoded.failures:
            slots[failure.index] = dead_letter(
                records[failure.index], self.dlq_topic, failure.reason, failure.detail
            )
            outcome.dead_letters[failure.reason.value] += 1
        outcome.messages = [m for m in slots if m is not None]
        if episodes is not None and groups:
            alerts, outcome.alerts = alert_messages(
                self.alert_topic,
                episodes,
                groups,
                decoded.vehicle_ids,
                decoded.timestamps,
                times,
                scores,
                scored.flags,
                explained,
                version,
                1.0 + float(detector.isolation_forest.offset_),
            )
            outcome.messages.extend(alerts)
        return outcome

    def _score_context(
        self,
        decoded: DecodedBatch,
        detector: Detector,
        contexts: ContextStates | None,
        groups: Groups,
        top_k: int,
        times: npt.NDArray[np.float64],
    ) -> ScoredRows:
        """Each partition's valid records in offset order, through that partition's state."""
        n = len(decoded.index)
        scores = np.empty(n, dtype=np.float64)
        flags = np.zeros(n, dtype=np.bool_)
        attributions: dict[int, list[dict[str, Any]]] = {}
        if n == 0:
            return ScoredRows(scores, flags, attributions)
        states: ContextStates = {} if contexts is None else contexts
        ids = decoded.vehicle_ids
        for where, (rows, offsets) in groups.items():
            state = states.get(where)
            if state is None:
                state = states[where] = detector.new_state()
            if len(groups) == 1 and len(rows) == n and bool((np.diff(rows) > 0).all()):
                # the usual batch: one partition, in offset order (no reordering needed)
                return score_context_rows(
                    detector, state, ids, times, decoded.features, top_k, offsets
                )
            part = score_context_rows(
                detector,
                state,
                [ids[row] for row in rows],
                times[rows],
                decoded.features[rows],
                top_k,
                offsets=offsets,
            )
            scores[rows] = part.scores
            flags[rows] = part.flags
            for local, attribution in part.attributions.items():
                attributions[int(rows[local])] = attribution
        return ScoredRows(scores, flags, attributions)


def _top(attribution: list[dict[str, Any]] | None, top_k: int) -> list[dict[str, Any]] | None:
    """A verdict's attribution: the first ``top_k`` entries of the ranked list (none at 0)."""
    if attribution is None or top_k <= 0:
        return None
    return attribution[:top_k]
