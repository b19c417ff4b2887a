"""The pure batch core: decode, score in one call, verdicts and dead letters in input order."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.processor import BatchProcessor, Kind, offset_bounds
from shared.schemas import DeadLetterReason
from tests.unit.consumer.fakes import (
    N_FEATURES,
    TOPIC,
    Rec,
    decoded,
    make_detector,
    records,
    valid_value,
)

SCORED_AT = "2024-01-15T10:00:01.000Z"


def processor(publish_all: bool = True, max_bytes: int = 65_536) -> BatchProcessor:
    return BatchProcessor(
        anomaly_topic="anomalies",
        dlq_topic="dlq",
        publish_all=publish_all,
        max_record_bytes=max_bytes,
    )


def test_every_record_gets_one_verdict_or_one_dead_letter_in_order() -> None:
    """With publish_all, each input position yields exactly one message, in input order."""
    values = [valid_value("VH-1"), b"not json", valid_value("VH-2"), None, valid_value("VH-3")]
    outcome = processor().process(records(values), make_detector(), SCORED_AT)
    assert [m.source_offset for m in outcome.messages] == [0, 1, 2, 3, 4]
    kinds = [m.kind for m in outcome.messages]
    assert kinds == [Kind.VERDICT, Kind.DEAD_LETTER, Kind.VERDICT, Kind.DEAD_LETTER, Kind.VERDICT]
    assert outcome.records == 5
    assert outcome.scored == 3
    assert outcome.dead_letters == {"invalid_json": 1, "empty": 1}


def test_scores_are_exactly_decision_function_and_keys_are_vehicle_ids() -> None:
    """A verdict's score is sklearn's decision_function for its row; its key is the vehicle id."""
    detector = make_detector()
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(30, N_FEATURES)) * 2
    values = [valid_value(f"VH-{i}", row.tolist()) for i, row in enumerate(rows)]
    outcome = processor().process(records(values), detector, SCORED_AT)
    expected = detector.estimator.decision_function(rows)
    for i, message in enumerate(outcome.messages):
        body = decoded(message)
        assert body["anomaly_score"] == expected[i]
        assert body["is_anomaly"] is bool(expected[i] < 0)
        assert body["model_version"] == detector.version
        assert body["scored_at"] == SCORED_AT
        assert body["source"] == {"topic": TOPIC, "partition": 0, "offset": i}
        assert message.key == f"VH-{i}".encode()
        assert message.topic == "anomalies"


def test_only_anomalies_are_published_by_default() -> None:
    """Without publish_all, normal records are scored but produce no verdict."""
    detector = make_detector()
    values = [valid_value("VH-N", [0.0] * N_FEATURES), valid_value("VH-A", [40.0] * N_FEATURES)]
    outcome = processor(publish_all=False).process(records(values), detector, SCORED_AT)
    assert outcome.scored == 2
    assert outcome.anomalies == 1
    assert [m.key for m in outcome.messages] == [b"VH-A"]
    assert all(m.is_anomaly for m in outcome.messages)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", DeadLetterReason.INVALID_JSON),
        (b"[1, 2, 3]", DeadLetterReason.SCHEMA),
        (b'{"vehicle_id": "VH-1"}', DeadLetterReason.SCHEMA),
        (
            b'{"vehicle_id": 7, "timestamp": "2024-01-15T10:00:00Z", "feature_vector": [1,2,3,4]}',
            DeadLetterReason.SCHEMA,
        ),
        (
            b'{"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z", '
            b'"feature_vector": [NaN, 1, 2, 3]}',
            DeadLetterReason.NON_FINITE,
        ),
        (
            b'{"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z", '
            b'"feature_vector": [1e400, 1, 2, 3]}',
            DeadLetterReason.NON_FINITE,
        ),
        (valid_value("VH-1", [1.0, 2.0]), DeadLetterReason.DIMENSION_MISMATCH),
        (b"", DeadLetterReason.EMPTY),
        (None, DeadLetterReason.EMPTY),
        (b'{"vehicle_id": "\xff\xfe"}', DeadLetterReason.INVALID_UTF8),
        (b" " * 70_000, DeadLetterReason.TOO_LARGE),
    ],
)
def test_poison_records_become_dead_letters_with_original_bytes(
    value: bytes | None, reason: DeadLetterReason
) -> None:
    """Each poison kind yields a dead letter: original key and value, reason and source headers."""
    batch = [Rec(TOPIC, 2, 41, b"VH-9", valid_value()), Rec(TOPIC, 2, 42, b"VH-9", value)]
    outcome = processor().process(batch, make_detector(), SCORED_AT)
    verdict, letter = outcome.messages
    assert verdict.kind is Kind.VERDICT
    assert letter.kind is Kind.DEAD_LETTER
    assert letter.topic == "dlq"
    assert letter.key == b"VH-9"
    assert letter.value == value
    headers = dict(letter.headers)
    assert headers["error"] == reason.value.encode()
    assert headers["error_detail"]
    assert headers["source_topic"] == TOPIC.encode()
    assert headers["source_partition"] == b"2"
    assert headers["source_offset"] == b"42"
    assert all(isinstance(v, bytes) for v in headers.values())
    assert letter.reason is reason


def test_keyless_null_value_is_sent_as_empty_bytes_with_a_marker() -> None:
    """Kafka cannot carry a null key with a null value: b"" plus value_null=true."""
    outcome = processor().process([Rec(TOPIC, 0, 5, None, None)], make_detector(), SCORED_AT)
    (letter,) = outcome.messages
    assert letter.value == b""
    assert dict(letter.headers)["value_null"] == b"true"


def test_offsets_to_commit_and_rewind_per_partition() -> None:
    """The batch's first offset and next offset are tracked for each partition."""
    batch = [*records([b"x", b"y"], partition=0, start=10), *records([b"z"], partition=1, start=3)]
    first, after = offset_bounds(batch)
    assert first == {(TOPIC, 0): 10, (TOPIC, 1): 3}
    assert after == {(TOPIC, 0): 12, (TOPIC, 1): 4}
    outcome = processor().process(batch, make_detector(), SCORED_AT)
    assert outcome.next_offsets == after
    assert outcome.first_offsets == first


def test_an_all_invalid_batch_scores_nothing() -> None:
    """A batch with no valid record makes only dead letters (and scores an empty matrix)."""
    outcome = processor().process(records([b"a", b"b"]), make_detector(), SCORED_AT)
    assert outcome.scored == 0
    assert [m.kind for m in outcome.messages] == [Kind.DEAD_LETTER, Kind.DEAD_LETTER]


def test_an_empty_batch_yields_nothing() -> None:
    """No records, no messages, no offsets."""
    outcome = processor().process([], make_detector(), SCORED_AT)
    assert outcome.messages == []
    assert outcome.next_offsets == {}
