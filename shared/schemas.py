"""The wire formats of the contract: telemetry records, verdicts, dead letters, training.

Two validators share one set of rules. The pydantic models serve the api (and its OpenAPI
document); :func:`decode_batch` serves the worker's hot path, decoding a whole Kafka batch
with msgspec into one feature matrix plus a list of dead-letter failures. Tests hold the two
to the same verdict on the same inputs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from shared.errors import InvalidRecordError

MAX_FEATURES = 256
VEHICLE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
# RFC 3339 date-time with a mandatory zone (Z or +hh:mm); the calendar is checked on parse.
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN)


class DeadLetterReason(StrEnum):
    """The ``error`` header of a dead letter."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    NON_FINITE = "non_finite"
    DIMENSION_MISMATCH = "dimension_mismatch"


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with a zone; ``ValueError`` if it is not one."""
    if not _TIMESTAMP_RE.match(value):
        raise ValueError("must be an RFC 3339 date-time with a zone, e.g. 2024-01-15T10:00:00Z")
    # Python 3.11's fromisoformat takes "Z" and a space separator, and checks the calendar.
    return datetime.fromisoformat(value.upper().replace(" ", "T"))


def _check_timestamp(value: str) -> str:
    parse_timestamp(value)
    return value


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- pydantic models (the api) -------------------------------------------------------------

VehicleId = Annotated[str, StringConstraints(strict=True, pattern=VEHICLE_ID_PATTERN)]
Timestamp = Annotated[
    str,
    StringConstraints(strict=True, pattern=TIMESTAMP_PATTERN),
    AfterValidator(_check_timestamp),
    Field(json_schema_extra={"format": "date-time"}),
]
Feature = Annotated[float, Field(strict=True, allow_inf_nan=False)]
FeatureVector = Annotated[list[Feature], Field(min_length=1, max_length=MAX_FEATURES)]

RECORD_EXAMPLE: dict[str, Any] = {
    "vehicle_id": "VH-002",
    "timestamp": "2024-01-15T10:05:00Z",
    "feature_vector": [0.7, 0.2, 0.9, 0.5],
}
VERDICT_EXAMPLE: dict[str, Any] = {
    "vehicle_id": "VH-002",
    "timestamp": "2024-01-15T10:05:00Z",
    "anomaly_score": -0.15,
    "is_anomaly": True,
    "model_version": "20240115100000",
    "scored_at": "2024-01-15T10:05:00.120Z",
    "attribution": [
        {"feature": 2, "share": 0.58, "value": 0.9, "direction": "above", "typical": [0.3, 0.7]},
        {"feature": 0, "share": 0.21, "value": 0.7, "direction": "within", "typical": [0.4, 0.8]},
    ],
}


class TelemetryRecord(BaseModel):
    """One telemetry record: the body of ``POST /score`` and a value on the raw topic."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [RECORD_EXAMPLE]})

    vehicle_id: VehicleId = Field(description="1..64 letters, digits and -_.:")
    timestamp: Timestamp = Field(description="RFC 3339 with a zone")
    feature_vector: FeatureVector = Field(
        description=f"1..{MAX_FEATURES} finite numbers, as many as the model was trained on"
    )


class SourceRef(BaseModel):
    """Where a streamed record came from."""

    topic: str
    partition: int
    offset: int


class FeatureAttribution(BaseModel):
    """One feature's part in an anomalous verdict (see :mod:`shared.attribution`)."""

    feature: int = Field(description="index in feature_vector")
    name: str | None = Field(None, description="the feature's name, when the model has names")
    share: float = Field(description="its share of the record's isolation, 0..1")
    value: float | None = Field(description="the record's value for it")
    direction: Literal["above", "below", "within"] = Field(
        description="against the training data's typical range (its 5th to 95th percentile)"
    )
    typical: list[float] | None = Field(
        None, description="that range, [p05, p95], when the model keeps it"
    )


class Verdict(BaseModel):
    """The score of one record, published on the anomalies topic and answered by ``/score``."""

    model_config = ConfigDict(json_schema_extra={"examples": [VERDICT_EXAMPLE]})

    vehicle_id: str
    timestamp: str
    anomaly_score: float = Field(
        description="IsolationForest.decision_function; negative = anomalous"
    )
    is_anomaly: bool
    model_version: str
    scored_at: str
    source: SourceRef | None = Field(None, description="absent for /score")
    attribution: list[FeatureAttribution] | None = Field(
        None,
        description=(
            "on anomalous verdicts: the features that drove the anomaly, ranked "
            "(ATTRIBUTION_TOP_K of them)"
        ),
    )


class TrainingParams(BaseModel):
    """IsolationForest parameters; a missing one falls back to the service's settings."""

    model_config = ConfigDict(extra="forbid")

    n_estimators: int | None = Field(None, ge=1, le=5000)
    max_samples: (
        Literal["auto"] | Annotated[int, Field(ge=1)] | Annotated[float, Field(gt=0, le=1)] | None
    ) = None
    contamination: Literal["auto"] | Annotated[float, Field(gt=0, le=0.5)] | None = None
    max_features: Annotated[float, Field(gt=0, le=1)] | None = None
    random_state: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _json_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """JSON numbers only: ``true`` is not the count 1, nor ``"100"`` a number of trees.

        An integral float (``100.0``) is an integer, as JSON Schema's ``integer`` says.
        """
        if value is None or (value == "auto" and info.field_name in _AUTO_FIELDS):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PydanticCustomError("number_type", "Input should be a number")
        if info.field_name in _INTEGER_FIELDS and isinstance(value, float):
            if not value.is_integer():
                raise PydanticCustomError("int_type", "Input should be a valid integer")
            return int(value)
        return value


_AUTO_FIELDS = ("max_samples", "contamination")
_INTEGER_FIELDS = ("n_estimators", "random_state")

FeatureNames = (
    Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=64)]],
        Field(max_length=MAX_FEATURES),
    ]
    | None
)


class TrainingRequest(BaseModel):
    """The body of ``POST /ingest``: the seed's shape, with optional parameters."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "records": [
                        {
                            "vehicle_id": "VH-001",
                            "timestamp": "2024-01-15T10:00:00Z",
                            "feature_vector": [0.5, 0.3, 0.8, 1.2],
                        }
                    ]
                }
            ]
        }
    )

    records: list[TelemetryRecord] = Field(min_length=1)
    params: TrainingParams | None = None
    feature_names: FeatureNames = Field(
        None,
        description="optional names of the features, in feature_vector order; verdicts' "
        "attributions carry them",
    )


class ModelMeta(BaseModel):
    """``meta.json`` of one registry version."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    version: str
    created_at: datetime
    n_features: int
    record_count: int
    params: dict[str, Any]
    sha256: str
    signature: str | None = None
    sklearn_version: str | None = None


class TrainingResponse(BaseModel):
    """The answer of ``POST /ingest``: the seed's two fields plus the version's metadata."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "model_version": "20240115100000",
                    "record_count": 1,
                    "created_at": "2024-01-15T10:00:00Z",
                    "n_features": 4,
                    "params": {"n_estimators": 100, "max_samples": "auto"},
                    "sha256": "9f2c…",
                    "signed": False,
                    "active": True,
                    "warnings": [],
                }
            ]
        },
    )

    model_version: str
    record_count: int
    created_at: datetime
    n_features: int
    params: dict[str, Any]
    sha256: str
    signed: bool
    active: bool
    warnings: list[str] = Field(default_factory=list)


# --- msgspec decoding (the worker's hot path) ------------------------------------------------


# Two decoders of one shape. The hot path decodes with ``_fast_decoder`` (types and lengths
# only: msgspec's per-value ``pattern`` checks cost as much as the rest of the decoding) and
# checks the two strings itself, cheaply (see ``_vehicle_id_known``/``_timestamp_known``).
# Anything that fast path does not accept is decoded again by ``_decoder``, which carries
# every rule and words the dead letter's detail, so the reasons and details do not depend on
# which path a record took.


class _RecordStruct(msgspec.Struct):
    vehicle_id: Annotated[str, msgspec.Meta(pattern=VEHICLE_ID_PATTERN)]
    timestamp: Annotated[str, msgspec.Meta(pattern=TIMESTAMP_PATTERN)]
    feature_vector: Annotated[list[float], msgspec.Meta(min_length=1, max_length=MAX_FEATURES)]


class _FastRecordStruct(msgspec.Struct, gc=False):
    vehicle_id: str
    timestamp: str
    feature_vector: Annotated[list[float], msgspec.Meta(min_length=1, max_length=MAX_FEATURES)]


_decoder = msgspec.json.Decoder(_RecordStruct)
_fast_decoder = msgspec.json.Decoder(_FastRecordStruct)
_FIELD_RE = re.compile(r"(?:at `\$\.|required field `)([a-z_]+)")
# fullmatch: ``$`` alone would also match before a trailing newline
_VEHICLE_ID_RE = re.compile(VEHICLE_ID_PATTERN)
_VEHICLE_ID_DETAIL = (
    f"vehicle_id: Expected `str` matching regex {VEHICLE_ID_PATTERN!r} - at `$.vehicle_id`"
)
# The part of TIMESTAMP_PATTERN after the date, with the clock's and the zone's ranges, so a
# timestamp whose date is known valid and whose rest matches this is one that
# ``datetime.fromisoformat`` accepts (no need to call it).
_TIME_RE = re.compile(
    r"[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
# Vehicle ids and calendar dates seen valid (a fleet has few of either); bounded.
_KNOWN_LIMIT = 100_000
_known_vehicle_ids: set[str] = set()
_known_dates: set[str] = set()


def _vehicle_id_known(vehicle_id: str) -> bool:
    """Whether ``vehicle_id`` follows the contract (remembered once it did)."""
    if vehicle_id in _known_vehicle_ids:
        return True
    if _VEHICLE_ID_RE.fullmatch(vehicle_id) is None:
        return False
    if len(_known_vehicle_ids) >= _KNOWN_LIMIT:
        _known_vehicle_ids.clear()
    _known_vehicle_ids.add(vehicle_id)
    return True


def _timestamp_known(timestamp: str) -> bool:
    """Whether ``timestamp`` follows the contract; its date is remembered once valid."""
    if timestamp[:10] in _known_dates and _TIME_RE.fullmatch(timestamp, 10) is not None:
        return True
    if _TIMESTAMP_RE.fullmatch(timestamp) is None:
        return False
    try:
        datetime.fromisoformat(timestamp.upper().replace(" ", "T"))
    except ValueError:
        return False
    if len(_known_dates) >= _KNOWN_LIMIT:
        _known_dates.clear()
    _known_dates.add(timestamp[:10])
    return True


@dataclass(frozen=True, slots=True)
class Failure:
    """A record that goes to the dead-letter topic: its position in the batch and why."""

    index: int
    reason: DeadLetterReason
    detail: str


@dataclass(slots=True)
class DecodedBatch:
    """The valid records of a batch as one matrix, and the failures with their positions."""

    index: list[int] = field(default_factory=list)
    vehicle_ids: list[str] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)
    features: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    failures: list[Failure] = field(default_factory=list)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def _classify_malformed(raw: bytes) -> tuple[DeadLetterReason, str]:
    """Why msgspec refused to parse ``raw``: only runs on the failure path."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return (
            DeadLetterReason.INVALID_UTF8,
            f"value is not UTF-8: {error.reason} at byte {error.start}",
        )
    try:
        loose = json.loads(text)  # accepts NaN and Infinity, which JSON itself does not
    except ValueError as error:
        return DeadLetterReason.INVALID_JSON, f"value is not JSON: {error}"
    if _has_non_finite(loose):
        return DeadLetterReason.NON_FINITE, "feature_vector: NaN and infinities are not allowed"
    return DeadLetterReason.INVALID_JSON, "value is not valid JSON"


def _check_one(raw: bytes | None, max_bytes: int) -> _RecordStruct | tuple[DeadLetterReason, str]:
    if not raw:
        return DeadLetterReason.EMPTY, "value is empty"
    if len(raw) > max_bytes:
        return DeadLetterReason.TOO_LARGE, f"value is {len(raw)} bytes; the limit is {max_bytes}"
    try:
        record = _decoder.decode(raw)
    except msgspec.ValidationError as error:
        message = str(error)
        if message.startswith("Number out of range"):
            return DeadLetterReason.NON_FINITE, f"feature_vector: {message}"
        match = _FIELD_RE.search(message)
        prefix = f"{match.group(1)}: " if match else ""
        return DeadLetterReason.SCHEMA, prefix + message
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _classify_malformed(raw)
    except Exception as error:  # a decoder surprise must dead-letter the record, not the batch
        return DeadLetterReason.INVALID_JSON, f"value cannot be decoded: {error}"
    try:
        # msgspec has matched the RFC 3339 pattern already; this checks the calendar.
        datetime.fromisoformat(record.timestamp.upper().replace(" ", "T"))
    except ValueError as error:
        return DeadLetterReason.SCHEMA, f"timestamp: {error}"
    if _VEHICLE_ID_RE.fullmatch(record.vehicle_id) is None:  # e.g. a trailing newline
        return DeadLetterReason.SCHEMA, _VEHICLE_ID_DETAIL
    return record


def _decode_fast(raw: bytes | None, max_bytes: int) -> _FastRecordStruct | None:
    """The record when it passes every rule on the fast path, else ``None`` (no verdict)."""
    if not raw or len(raw) > max_bytes:
        return None
    try:
        record = _fast_decoder.decode(raw)
    except Exception:  # the full path words the reason
        return None
    if _vehicle_id_known(record.vehicle_id) and _timestamp_known(record.timestamp):
        return record
    return None


def decode_batch(
    values: Sequence[bytes | None], n_features: int, *, max_bytes: int = 65_536
) -> DecodedBatch:
    """Decode a batch of raw Kafka values for a model of ``n_features`` features.

    Every value ends either in the matrix (with its position in ``index``) or in
    ``failures``; none is dropped.
    """
    batch = DecodedBatch()
    index, vehicle_ids, timestamps = batch.index, batch.vehicle_ids, batch.timestamps
    flat: list[float] = []
    fast_decode = _fast_decoder.decode
    known_ids, known_dates, time_match = _known_vehicle_ids, _known_dates, _TIME_RE.fullmatch
    for position, raw in enumerate(values):
        # The fast path inline (it is _decode_fast), then the full one for anything it refuses.
        record: _FastRecordStruct | _RecordStruct | None = None
        if raw and len(raw) <= max_bytes:
            try:
                fast = fast_decode(raw)
            except Exception:
                fast = None
            if fast is not None:
                vehicle_id, timestamp = fast.vehicle_id, fast.timestamp
                if (vehicle_id in known_ids or _vehicle_id_known(vehicle_id)) and (
                    (timestamp[:10] in known_dates and time_match(timestamp, 10) is not None)
                    or _timestamp_known(timestamp)
                ):
                    record = fast
        if record is None:
            outcome = _check_one(raw, max_bytes)
            if isinstance(outcome, tuple):
                batch.failures.append(Failure(position, outcome[0], outcome[1]))
                continue
            record = outcome
        vector = record.feature_vector
        if len(vector) != n_features:
            batch.failures.append(
                Failure(
                    position,
                    DeadLetterReason.DIMENSION_MISMATCH,
                    f"feature_vector has {len(vector)} values; the model expects {n_features}",
                )
            )
            continue
        index.append(position)
        vehicle_ids.append(record.vehicle_id)
        timestamps.append(record.timestamp)
        flat.extend(vector)
    batch.features = np.array(flat, dtype=np.float64).reshape(len(index), n_features)
    return batch


def decode_record(raw: bytes, *, max_bytes: int = 65_536) -> tuple[str, str, list[float]]:
    """Decode one raw value, raising :class:`InvalidRecordError` with the dead-letter reason."""
    fast = _decode_fast(raw, max_bytes)
    if fast is not None:
        return fast.vehicle_id, fast.timestamp, fast.feature_vector
    outcome = _check_one(raw, max_bytes)
    if isinstance(outcome, tuple):
        raise InvalidRecordError(outcome[0].value, outcome[1])
    return outcome.vehicle_id, outcome.timestamp, outcome.feature_vector
