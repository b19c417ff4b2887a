"""Training from the topic without a broker: the training order, selection, exclusion,
validation with the worker's rules, and equality with POST /ingest's training.

(The request body's rules: tests/unit/api/test_topic_request.py.)"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from shared.errors import TrainingError
from shared.registry import ModelRegistry
from shared.schemas import TelemetryRecord
from shared.settings import Settings, load_settings
from shared.topic_training import (
    TopicRecords,
    TopicTrainingSpec,
    decode_in_order,
    fit_and_publish,
    select_and_decode,
    window_ms,
)
from shared.training import train_version
from shared.training_schemas import TrainingParams, TrainingResponse

NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def _settings(model_dir: Path, **overrides: Any) -> Settings:
    return load_settings(model_dir=model_dir, _env_file=None, **overrides)


def _value(vector: list[Any], vehicle: str = "VH-1", stamp: str = "2024-01-15T10:00:00Z") -> bytes:
    return json.dumps(
        {"vehicle_id": vehicle, "timestamp": stamp, "feature_vector": vector}
    ).encode()


def _records(rows: Sequence[tuple[int, int, int, bytes | None]], **window: Any) -> TopicRecords:
    found = TopicRecords(**window)
    for stamp, partition, offset, value in rows:
        found.timestamps.append(stamp)
        found.partitions.append(partition)
        found.offsets.append(offset)
        found.values.append(value)
    return found


# --- the range -------------------------------------------------------------------------------


def test_the_window_is_half_open_in_milliseconds() -> None:
    """since/until become epoch milliseconds; a fraction of a millisecond rounds up."""
    spec = TopicTrainingSpec(
        since=datetime(2024, 1, 15, 10, 0, 0, 400, tzinfo=UTC),
        until=datetime(2024, 1, 15, 11, tzinfo=timezone(timedelta(hours=1))),
    )
    since, until = window_ms(spec, NOW)
    assert since == int(datetime(2024, 1, 15, 10, tzinfo=UTC).timestamp() * 1000) + 1
    assert until == int(datetime(2024, 1, 15, 10, tzinfo=UTC).timestamp() * 1000)
    default = TopicTrainingSpec(since=datetime(2024, 1, 15, 10, tzinfo=UTC))
    assert window_ms(default, NOW)[1] == NOW_MS


# --- order, selection, exclusion ---------------------------------------------------------------


def test_records_are_put_in_timestamp_partition_offset_order() -> None:
    """The matrix rows follow (Kafka timestamp, partition, offset), whatever the read order."""
    rows = [
        (1000, 2, 7, _value([2.0])),
        (1000, 0, 9, _value([1.0])),
        (999, 1, 3, _value([0.0])),
        (1001, 0, 1, _value([4.0])),
        (1000, 2, 5, _value([1.5])),
    ]
    prepared = select_and_decode(_records(rows), max_bytes=65536)
    assert prepared.features[:, 0].tolist() == [0.0, 1.0, 1.5, 2.0, 4.0]
    assert prepared.records_selected == 5
    assert prepared.records_used == 5


def test_last_keeps_the_newest_records_in_that_order() -> None:
    """last=N keeps the N newest records in time order, or all when there are fewer."""
    rows = [(1000 + i, i % 3, i, _value([float(i)])) for i in range(10)]
    prepared = select_and_decode(_records(rows, last=4), max_bytes=65536)
    assert prepared.features[:, 0].tolist() == [6.0, 7.0, 8.0, 9.0]
    assert prepared.records_selected == 4
    everything = select_and_decode(_records(rows, last=50), max_bytes=65536)
    assert everything.records_selected == 10


def test_since_until_keeps_the_window_and_counts_the_rest() -> None:
    """Records read by offset whose timestamp lies outside [since, until) are counted and left."""
    rows = [(stamp, 0, i, _value([float(stamp)])) for i, stamp in enumerate([5, 10, 3, 19, 20, 12])]
    prepared = select_and_decode(_records(rows, since_ms=10, until_ms=20), max_bytes=65536)
    assert prepared.features[:, 0].tolist() == [10.0, 12.0, 19.0]
    assert prepared.outside_range == 3
    assert prepared.records_selected == 3


def test_flagged_records_are_excluded_after_selection() -> None:
    """Flagged records are dropped after the last-N selection and counted, not replaced."""
    rows = [(1000 + i, i % 2, i, _value([float(i)])) for i in range(6)]
    flagged = np.array([(1 << 40) | 3, (0 << 40) | 0, (1 << 40) | 999], dtype=np.int64)
    records = _records(rows, last=5)
    records.flagged = flagged
    prepared = select_and_decode(records, max_bytes=65536)
    # the newest five are offsets 1..5; of those, partition 1 offset 3 was flagged
    assert prepared.features[:, 0].tolist() == [1.0, 2.0, 4.0, 5.0]
    assert prepared.excluded_flagged == 1
    assert prepared.records_selected == 5


# --- validation ---------------------------------------------------------------------------------


def test_invalid_records_are_skipped_by_reason() -> None:
    """The worker's dead-letter reasons, counted; the valid rows stay in order."""
    values: list[bytes | None] = [
        _value([1.0, 2.0]),
        b"{not json",
        None,
        b"",
        _value([1.0, "x"]),
        b'{"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z", "feature_vector": [NaN, 1]}',
        _value([1.0, 2.0, 3.0]),
        b"\xff\xfe",
        _value([1.0, 2.0], stamp="2024-02-30T00:00:00Z"),
        b"x" * 300,
        _value([3.0, 4.0]),
    ]
    decoded = decode_in_order(values, max_bytes=256)
    features, skipped = decoded.features, decoded.skipped
    assert features.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert skipped == {
        "invalid_json": 1,
        "empty": 2,
        "schema": 2,
        "non_finite": 1,
        "dimension_mismatch": 1,
        "invalid_utf8": 1,
        "too_large": 1,
    }


def test_the_majority_dimension_wins_across_chunks() -> None:
    """A few early records of another dimension do not decide the dimension."""
    values: list[bytes | None] = [_value([9.0]), b"bad", _value([8.0])]
    values += [_value([float(i), float(i)]) for i in range(5)]
    decoded = decode_in_order(values, max_bytes=65536, chunk_size=3)
    features, skipped = decoded.features, decoded.skipped
    assert features.tolist() == [[float(i), float(i)] for i in range(5)]
    assert skipped == {"dimension_mismatch": 2, "invalid_json": 1}


def test_a_tie_goes_to_the_dimension_seen_first() -> None:
    """When two widths are equally common the first seen wins; the others are dimension_mismatch."""
    values: list[bytes | None] = [
        _value([1.0, 1.0]),
        _value([2.0]),
        _value([3.0, 3.0]),
        _value([4.0]),
    ]
    decoded = decode_in_order(values, max_bytes=65536)
    features, skipped = decoded.features, decoded.skipped
    assert features.tolist() == [[1.0, 1.0], [3.0, 3.0]]
    assert skipped == {"dimension_mismatch": 2}


def test_nothing_valid_is_an_empty_matrix() -> None:
    """With no valid record (or none at all) the features are a 0 x 0 matrix, rejects counted."""
    decoded = decode_in_order([b"nope", None], max_bytes=65536)
    features, skipped = decoded.features, decoded.skipped
    assert features.shape == (0, 0)
    assert skipped == {"invalid_json": 1, "empty": 1}
    assert decode_in_order([], max_bytes=65536).features.shape == (0, 0)


# --- training -----------------------------------------------------------------------------------


def test_no_usable_record_is_a_training_error(model_dir: Path) -> None:
    """When flags and invalid values leave nothing, fitting is a TrainingError naming the count."""
    records = _records([(1, 0, 0, b"nope"), (2, 0, 1, _value([1.0]))], last=5)
    records.flagged = np.array([1], dtype=np.int64)
    prepared = select_and_decode(records, max_bytes=65536)
    with pytest.raises(
        TrainingError, match=r"no record to train on: the range holds 2 record\(s\)"
    ):
        fit_and_publish(
            ModelRegistry(model_dir), prepared, None, _settings(model_dir), activate=True
        )


def _same_records_both_ways(
    model_dir: Path, params: TrainingParams
) -> tuple[TrainingResponse, TrainingResponse, np.random.Generator]:
    """One set of records trained from the topic and through train_version (POST /ingest)."""
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(600, 5)).round(6)
    rows[::7] *= 1e3  # some large values, to exercise the float parsing
    start = datetime(2024, 1, 15, 10, tzinfo=UTC)
    values = [
        _value(
            row.tolist(),
            vehicle=f"VH-{i % 9}",
            stamp=(start + timedelta(seconds=i // 9)).isoformat().replace("+00:00", "Z"),
        )
        for i, row in enumerate(rows)
    ]
    shuffled = rng.permutation(len(values))
    stamps = [1_700_000_000_000 + int(i // 4) for i in range(len(values))]
    records = _records([(stamps[i], i % 3, i // 3, values[i]) for i in shuffled])
    settings = _settings(model_dir)
    registry = ModelRegistry(model_dir)
    prepared = select_and_decode(records, max_bytes=65536)
    from_topic = fit_and_publish(registry, prepared, params, settings, activate=True)
    ordered = sorted(range(len(values)), key=lambda i: (stamps[i], i % 3, i // 3))
    posted = [TelemetryRecord.model_validate_json(values[i]) for i in ordered]
    from_ingest = train_version(registry, posted, params, settings)
    assert (from_topic.record_count, from_topic.n_features) == (600, 5)
    assert from_topic.params == from_ingest.params
    return from_topic, from_ingest, rng


def test_the_same_records_in_the_same_order_give_the_same_model(model_dir: Path) -> None:
    """fit_and_publish on decoded values == train_version on the same records (POST /ingest)."""
    params = TrainingParams(detector="point", n_estimators=40, random_state=11)
    from_topic, from_ingest, rng = _same_records_both_ways(model_dir, params)
    probe = rng.normal(size=(200, 5)) * 3
    scores = [
        joblib.load(model_dir / r.model_version / "model.joblib").decision_function(probe)
        for r in (from_topic, from_ingest)
    ]
    assert np.array_equal(scores[0], scores[1])
    assert from_topic.detector == "point"


def test_the_same_records_give_the_same_context_model(model_dir: Path) -> None:
    """A context model from the topic scores a probe stream exactly as one from POST /ingest."""
    params = TrainingParams(n_estimators=40, random_state=11)
    from_topic, from_ingest, rng = _same_records_both_ways(model_dir, params)
    assert from_topic.detector == from_ingest.detector == "context"
    ids = [f"VH-{i % 4}" for i in range(300)] + ["VH-new"] * 20
    times = 1_705_312_800.0 + np.arange(len(ids), dtype=np.float64)
    probe = rng.normal(size=(len(ids), 5)) * 3
    scores = [
        joblib.load(model_dir / r.model_version / "model.joblib").score_records(ids, times, probe)
        for r in (from_topic, from_ingest)
    ]
    assert np.array_equal(scores[0], scores[1])
    assert from_topic.calibration == from_ingest.calibration
