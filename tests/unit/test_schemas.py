"""The contract's validation rules, in both validators (pydantic for HTTP, msgspec for Kafka)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared import decoding
from shared.decoding import decode_batch, decode_record
from shared.errors import InvalidRecordError
from shared.schemas import DeadLetterReason, TelemetryRecord, format_timestamp, parse_timestamp
from shared.training_schemas import TrainingParams, TrainingRequest
from shared.verdicts import encode_verdict

GOOD = {
    "vehicle_id": "VH-001",
    "timestamp": "2024-01-15T10:00:00Z",
    "feature_vector": [0.5, 0.3, 0.8, 1.2],
}


def with_(**changes: object) -> dict[str, object]:
    return {**GOOD, **changes}


def raw(body: object) -> bytes:
    return json.dumps(body).encode()


# (case, JSON text, DLQ reason, field at fault) -- every rule of the contract, once.
BAD_CASES = [
    ("id empty", raw(with_(vehicle_id="")), "schema", "vehicle_id"),
    ("id too long", raw(with_(vehicle_id="V" * 65)), "schema", "vehicle_id"),
    ("id with space", raw(with_(vehicle_id="VH 001")), "schema", "vehicle_id"),
    ("id with slash", raw(with_(vehicle_id="VH/001")), "schema", "vehicle_id"),
    ("id with a trailing newline", raw(with_(vehicle_id="VH-001\n")), "schema", "vehicle_id"),
    ("id a number", raw(with_(vehicle_id=1)), "schema", "vehicle_id"),
    (
        "id missing",
        raw({k: v for k, v in GOOD.items() if k != "vehicle_id"}),
        "schema",
        "vehicle_id",
    ),
    ("timestamp no zone", raw(with_(timestamp="2024-01-15T10:00:00")), "schema", "timestamp"),
    ("timestamp date only", raw(with_(timestamp="2024-01-15")), "schema", "timestamp"),
    ("timestamp not a date", raw(with_(timestamp="yesterday")), "schema", "timestamp"),
    ("timestamp bad calendar", raw(with_(timestamp="2024-02-30T10:00:00Z")), "schema", "timestamp"),
    ("timestamp epoch number", raw(with_(timestamp=1705312800)), "schema", "timestamp"),
    ("features empty", raw(with_(feature_vector=[])), "schema", "feature_vector"),
    ("features too many", raw(with_(feature_vector=[0.0] * 257)), "schema", "feature_vector"),
    ("feature a string", raw(with_(feature_vector=["1.0"])), "schema", "feature_vector"),
    ("feature a bool", raw(with_(feature_vector=[True])), "schema", "feature_vector"),
    ("feature null", raw(with_(feature_vector=[None])), "schema", "feature_vector"),
    ("features not a list", raw(with_(feature_vector=1.0)), "schema", "feature_vector"),
    (
        "NaN",
        b'{"vehicle_id":"VH-1","timestamp":"2024-01-15T10:00:00Z","feature_vector":[NaN]}',
        "non_finite",
        "feature_vector",
    ),
    (
        "Infinity",
        b'{"vehicle_id":"VH-1","timestamp":"2024-01-15T10:00:00Z","feature_vector":[-Infinity]}',
        "non_finite",
        "feature_vector",
    ),
    (
        "overflow",
        b'{"vehicle_id":"VH-1","timestamp":"2024-01-15T10:00:00Z","feature_vector":[1e400]}',
        "non_finite",
        "feature_vector",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "reason", "field"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_kafka_decoder_names_reason_and_field(
    case: str, body: bytes, reason: str, field: str
) -> None:
    """Each bad record kind becomes a dead letter with its reason and the field in the detail."""
    batch = decode_batch([body], n_features=4)
    assert batch.index == []
    (failure,) = batch.failures
    assert failure.reason == reason
    assert failure.detail.startswith(field), failure.detail


@pytest.mark.parametrize(
    ("case", "body", "reason", "field"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_http_model_rejects_the_same_inputs(
    case: str, body: bytes, reason: str, field: str
) -> None:
    """The pydantic model refuses every input the Kafka decoder refuses, naming the same field."""
    # The api parses JSON with the standard library (which accepts NaN), then validates.
    try:
        parsed = json.loads(body)
    except ValueError:  # pragma: no cover - every case above is parseable by json
        pytest.fail("case must parse")
    with pytest.raises(ValidationError) as caught:
        TelemetryRecord.model_validate(parsed)
    assert caught.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", DeadLetterReason.EMPTY),
        (None, DeadLetterReason.EMPTY),
        (b"not json", DeadLetterReason.INVALID_JSON),
        (b'{"vehicle_id": "VH-1",', DeadLetterReason.INVALID_JSON),
        (b"\xff\xfe{}", DeadLetterReason.INVALID_UTF8),
        (b'{"vehicle_id": "VH-\xc3\x28"}', DeadLetterReason.INVALID_UTF8),
        (b"[1, 2, 3]", DeadLetterReason.SCHEMA),
        (b'"a string"', DeadLetterReason.SCHEMA),
        (b"null", DeadLetterReason.SCHEMA),
        (b"{" + b" " * (70_000) + b"}", DeadLetterReason.TOO_LARGE),
    ],
    ids=[
        "empty",
        "none",
        "not-json",
        "truncated",
        "bad-utf8-start",
        "bad-utf8-inside",
        "array",
        "string",
        "null",
        "too-large",
    ],
)
def test_malformed_values_get_their_reason(body: bytes | None, reason: DeadLetterReason) -> None:
    """Values that are not records at all get the precise dead-letter reason."""
    batch = decode_batch([body], n_features=4)
    assert [f.reason for f in batch.failures] == [reason]


def test_one_megabyte_payload_is_too_large() -> None:
    """A 1 MB value is refused by size before it is parsed."""
    big = raw(with_(vehicle_id="VH-1", padding="x" * 1_000_000))
    (failure,) = decode_batch([big], n_features=4, max_bytes=65_536).failures
    assert failure.reason == DeadLetterReason.TOO_LARGE
    assert "65536" in failure.detail


def test_dimension_mismatch_against_the_model() -> None:
    """A valid record with another feature count than the model's is a dimension_mismatch."""
    batch = decode_batch([raw(GOOD)], n_features=8)
    (failure,) = batch.failures
    assert failure.reason == DeadLetterReason.DIMENSION_MISMATCH
    assert "4 values" in failure.detail and "expects 8" in failure.detail


def test_batch_keeps_positions_and_builds_one_matrix() -> None:
    """Valid records land in one float64 matrix; failures keep their positions in the batch."""
    values = [raw(GOOD), b"junk", raw(with_(vehicle_id="VH-9", feature_vector=[1, 2, 3, 4])), None]
    batch = decode_batch(values, n_features=4)
    assert batch.index == [0, 2]
    assert batch.vehicle_ids == ["VH-001", "VH-9"]
    assert batch.timestamps == ["2024-01-15T10:00:00Z", "2024-01-15T10:00:00Z"]
    assert batch.features.dtype == np.float64
    np.testing.assert_array_equal(batch.features, [[0.5, 0.3, 0.8, 1.2], [1, 2, 3, 4]])
    assert [(f.index, f.reason) for f in batch.failures] == [
        (1, DeadLetterReason.INVALID_JSON),
        (3, DeadLetterReason.EMPTY),
    ]


def test_all_bad_batch_gives_an_empty_matrix_of_the_right_width() -> None:
    """A batch with no valid record still yields a (0, n_features) matrix."""
    batch = decode_batch([b"x", b""], n_features=3)
    assert batch.features.shape == (0, 3)
    assert len(batch.failures) == 2


def test_unknown_fields_are_ignored_by_both_validators() -> None:
    """Producers may add fields; neither validator refuses them."""
    body = with_(speed_unit="kmh")
    assert decode_batch([raw(body)], n_features=4).index == [0]
    assert TelemetryRecord.model_validate(body).vehicle_id == "VH-001"


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-01-15T10:00:00Z",
        "2024-01-15T10:00:00.123456Z",
        "2024-01-15T10:00:00+05:30",
        "2024-01-15t10:00:00z",
        "2024-01-15 10:00:00-08:00",
        "2024-01-15T10:00:00.1+00:00",
    ],
)
def test_rfc3339_timestamps_accepted(stamp: str) -> None:
    """RFC 3339 forms with a zone pass both validators and parse to an aware datetime."""
    assert parse_timestamp(stamp).tzinfo is not None
    assert decode_batch([raw(with_(timestamp=stamp))], n_features=4).index == [0]
    assert TelemetryRecord.model_validate(with_(timestamp=stamp)).timestamp == stamp


def test_integers_are_numbers() -> None:
    """JSON integers are valid features in both validators."""
    body = with_(feature_vector=[1, 2, 3, 4])
    assert decode_batch([raw(body)], n_features=4).features.tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert TelemetryRecord.model_validate(body).feature_vector == [1.0, 2.0, 3.0, 4.0]


def test_decode_record_raises_with_reason() -> None:
    """The single-record decoder raises InvalidRecordError carrying the dead-letter reason."""
    with pytest.raises(InvalidRecordError) as caught:
        decode_record(b"{")
    assert caught.value.reason == "invalid_json"
    assert decode_record(raw(GOOD)) == ("VH-001", "2024-01-15T10:00:00Z", [0.5, 0.3, 0.8, 1.2])


def test_verdict_encoding_matches_contract() -> None:
    """Encoded verdicts carry the contract's fields, with source only when given."""
    streamed = json.loads(
        encode_verdict("VH-1", "t", -0.25, "20240115100000", "s", ("raw", 3, 1842))
    )
    assert streamed == {
        "vehicle_id": "VH-1",
        "timestamp": "t",
        "anomaly_score": -0.25,
        "is_anomaly": True,
        "model_version": "20240115100000",
        "scored_at": "s",
        "source": {"topic": "raw", "partition": 3, "offset": 1842},
    }
    direct = json.loads(encode_verdict("VH-1", "t", 0.1, "v", "s"))
    assert "source" not in direct
    assert direct["is_anomaly"] is False


def test_zero_score_is_not_anomalous() -> None:
    """is_anomaly is strictly score < 0."""
    assert json.loads(encode_verdict("VH-1", "t", 0.0, "v", "s"))["is_anomaly"] is False


def test_format_timestamp_is_utc_millis() -> None:
    """scored_at is RFC 3339 UTC with milliseconds and a Z."""
    moment = parse_timestamp("2024-01-15T12:05:00.120456+02:00")
    assert format_timestamp(moment) == "2024-01-15T10:05:00.120Z"


def test_training_request_requires_records() -> None:
    """An empty training request names the records field."""
    with pytest.raises(ValidationError) as caught:
        TrainingRequest.model_validate({"records": []})
    assert caught.value.errors()[0]["loc"] == ("records",)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n_estimators": 0}, "n_estimators"),
        ({"contamination": 0.7}, "contamination"),
        ({"max_samples": 0}, "max_samples"),
        ({"max_features": 1.5}, "max_features"),
        ({"learning_rate": 0.1}, "learning_rate"),
    ],
)
def test_training_params_bounds(params: dict[str, object], field: str) -> None:
    """Out-of-range or unknown training parameters are refused, naming the parameter."""
    with pytest.raises(ValidationError) as caught:
        TrainingParams.model_validate(params)
    assert caught.value.errors()[0]["loc"][0] == field


def test_training_params_accept_sklearn_forms() -> None:
    """max_samples takes "auto", a count or a fraction; contamination "auto" or a fraction."""
    assert TrainingParams.model_validate({"max_samples": "auto"}).max_samples == "auto"
    assert TrainingParams.model_validate({"max_samples": 128}).max_samples == 128
    assert TrainingParams.model_validate({"max_samples": 0.5}).max_samples == 0.5
    assert TrainingParams.model_validate({"contamination": 0.02}).contamination == 0.02


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True), st.text(max_size=70), _scalars
)
_stamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", fullmatch=True),
    _scalars,
)
_vectors = st.one_of(
    st.lists(
        st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-1000, 1000)),
        min_size=0,
        max_size=260,
    ),
    st.lists(_scalars, max_size=4),
    _scalars,
)


@settings(max_examples=300, deadline=None)
@given(vehicle_id=_ids, timestamp=_stamps, feature_vector=_vectors)
def test_property_both_validators_agree(
    vehicle_id: object, timestamp: object, feature_vector: object
) -> None:
    """On arbitrary records, the Kafka decoder and the HTTP model accept and refuse alike."""
    body = {"vehicle_id": vehicle_id, "timestamp": timestamp, "feature_vector": feature_vector}
    text = json.dumps(body).encode()
    width = len(feature_vector) if isinstance(feature_vector, list) else 1
    kafka_ok = decode_batch([text], n_features=width, max_bytes=10**7).index == [0]
    try:
        TelemetryRecord.model_validate(json.loads(text))
        http_ok = True
    except ValidationError:
        http_ok = False
    assert kafka_ok == http_ok, body


@pytest.mark.parametrize(
    "params",
    [
        {"n_estimators": True},
        {"random_state": False},
        {"max_samples": True},
        {"n_estimators": "100"},
    ],
)
def test_training_params_refuse_booleans_and_strings_for_numbers(params: dict[str, object]) -> None:
    """JSON's true is not the count 1 (found by fuzzing POST /ingest/from-topic)."""
    with pytest.raises(ValidationError):
        TrainingParams.model_validate(params)


def full_path_only(values: list[bytes | None], n_features: int) -> list[object]:
    """What decode_batch must answer, worked out by the full validator alone (no fast path)."""
    answers: list[object] = []
    for value in values:
        outcome = decoding._check_one(value, 10**7)
        if isinstance(outcome, tuple):
            answers.append((outcome[0], outcome[1]))
        elif len(outcome.feature_vector) != n_features:
            answers.append(DeadLetterReason.DIMENSION_MISMATCH)
        else:
            answers.append((outcome.vehicle_id, outcome.timestamp, outcome.feature_vector))
    return answers


def decoded(values: list[bytes | None], n_features: int) -> list[object]:
    batch = decode_batch(values, n_features, max_bytes=10**7)
    answers: list[object] = [None] * len(values)
    for failure in batch.failures:
        answers[failure.index] = (
            failure.reason
            if failure.reason is DeadLetterReason.DIMENSION_MISMATCH
            else (failure.reason, failure.detail)
        )
    for row, position in enumerate(batch.index):
        answers[position] = (
            batch.vehicle_ids[row],
            batch.timestamps[row],
            batch.features[row].tolist(),
        )
    return answers


# Timestamps near every edge of the fast path's clock and zone ranges (and its date cache).
_edge_stamps = st.builds(
    lambda date, sep, h, m, sec, frac, zone: f"{date}{sep}{h:02d}:{m:02d}:{sec:02d}{frac}{zone}",
    st.sampled_from(["2024-01-15", "2024-02-29", "2023-02-29", "0000-01-01", "9999-12-31"]),
    st.sampled_from(["T", "t", " ", "_"]),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["", ".1", ".123456", ".123456789", ".1234567890", "."]),
    st.sampled_from(["Z", "z", "+00:00", "-23:59", "+24:00", "+23:60", "+5:30", "", "Z\n"]),
)


def assert_fast_path_agrees(vehicle_id: object, timestamp: object, vector: object) -> None:
    text = json.dumps(
        {"vehicle_id": vehicle_id, "timestamp": timestamp, "feature_vector": vector}
    ).encode()
    width = len(vector) if isinstance(vector, list) else 1
    expected = full_path_only([text], width)
    decoding._known_vehicle_ids.clear()
    decoding._known_dates.clear()
    assert decoded([text], width) == expected  # cold: the fast path learns here
    if isinstance(timestamp, str):  # warm: the date known from another record of that day
        decode_batch([raw(with_(timestamp=timestamp[:10] + "T00:00:00Z"))], n_features=4)
    assert decoded([text, text], width) == expected * 2


@settings(max_examples=300, deadline=None)
@given(vehicle_id=_ids, timestamp=_stamps, feature_vector=_vectors)
def test_property_fast_path_answers_like_the_full_validator(
    vehicle_id: object, timestamp: object, feature_vector: object
) -> None:
    """With cold or warm caches, decode_batch gives the full validator's verdict and detail."""
    assert_fast_path_agrees(vehicle_id, timestamp, feature_vector)


@settings(max_examples=500, deadline=None)
@given(timestamp=_edge_stamps)
def test_property_fast_path_timestamps(timestamp: object) -> None:
    """On timestamps at the edges of the clock, zone and calendar, the fast path agrees."""
    assert_fast_path_agrees(GOOD["vehicle_id"], timestamp, GOOD["feature_vector"])


@settings(max_examples=200, deadline=None)
@given(vehicle_id=_ids | st.sampled_from(["VH-1", "VH-1\n", "\nVH-1", "V" * 64, "V" * 65]))
def test_property_fast_path_vehicle_ids(vehicle_id: object) -> None:
    """On vehicle ids of every shape, the fast path agrees."""
    assert_fast_path_agrees(vehicle_id, GOOD["timestamp"], GOOD["feature_vector"])


def test_fast_path_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The remembered vehicle ids and dates never grow past their limit."""
    monkeypatch.setattr(decoding, "_KNOWN_LIMIT", 10)
    values = [
        raw(with_(vehicle_id=f"VH-{i}", timestamp=f"2024-01-{1 + i % 28:02d}T10:00:00Z"))
        for i in range(100)
    ]
    batch = decode_batch(values, n_features=4)
    assert batch.index == list(range(100))
    assert len(decoding._known_vehicle_ids) <= 10
    assert len(decoding._known_dates) <= 10
