"""The wire formats of the contract: telemetry records, verdicts, dead letters, training.

Two validators share one set of rules. The pydantic models serve the api (and its OpenAPI
document); :func:`decode_batch` serves the worker's hot path, decoding a whole Kafka batch
with msgspec into one feature matrix plus a list of dead-letter failures. Tests hold the two
to the same verdict on the same inputs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

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

from shared.errors import DimensionMismatchError

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


MAX_HISTORY = 256

SCORE_HISTORY_EXAMPLE: dict[str, Any] = {
    **RECORD_EXAMPLE,
    "history": [
        {
            "vehicle_id": "VH-002",
            "timestamp": "2024-01-15T10:04:50Z",
            "feature_vector": [0.68, 0.21, 0.52, 0.5],
        },
        {
            "vehicle_id": "VH-002",
            "timestamp": "2024-01-15T10:04:55Z",
            "feature_vector": [0.69, 0.2, 0.55, 0.5],
        },
    ],
}


class ScoreRequest(TelemetryRecord):
    """The body of ``POST /score``: a telemetry record, and optionally its vehicle's history."""

    model_config = ConfigDict(
        frozen=True, json_schema_extra={"examples": [RECORD_EXAMPLE, SCORE_HISTORY_EXAMPLE]}
    )

    history: list[TelemetryRecord] | None = Field(
        None,
        max_length=MAX_HISTORY,
        description=f"up to {MAX_HISTORY} of the vehicle's previous records, oldest first, "
        "each as wide as the record: a context model scores them first, then the record in "
        "their context (records of another vehicle_id are that vehicle's history, not the "
        "record's); a point model ignores them",
    )

    def check_history(self) -> None:
        """:class:`DimensionMismatchError` naming the first history record not as wide as the
        record."""
        width = len(self.feature_vector)
        for position, earlier in enumerate(self.history or ()):
            if len(earlier.feature_vector) != width:
                raise DimensionMismatchError(
                    len(earlier.feature_vector),
                    width,
                    field=f"history.{position}.feature_vector",
                    against="the record has",
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
    evidence: str | None = Field(
        None,
        description="context models only: the kind of evidence that weighed most for this "
        "sensor (level, consistency, motion, sustained, change, noise, flat)",
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


_AUTO_FIELDS = ("max_samples", "contamination")
_INTEGER_FIELDS = ("n_estimators", "random_state")
_NUMERIC_FIELDS = (
    "n_estimators",
    "max_samples",
    "contamination",
    "false_alarm_rate",
    "max_features",
    "random_state",
)


DetectorKind = Literal["context", "point"]


class TrainingParams(BaseModel):
    """Training parameters; a missing one falls back to the service's settings."""

    model_config = ConfigDict(extra="forbid")

    detector: DetectorKind | None = Field(
        None,
        description="`context`: each record judged in its vehicle's recent history; `point`: "
        "each record alone (DETECTOR_KIND unless given)",
    )
    n_estimators: int | None = Field(None, ge=1, le=5000)
    max_samples: (
        Literal["auto"] | Annotated[int, Field(ge=1)] | Annotated[float, Field(gt=0, le=1)] | None
    ) = Field(None, description='for context models "auto" means 2048')
    contamination: Literal["auto"] | Annotated[float, Field(gt=0, le=0.5)] | None = Field(
        None, description="point models only"
    )
    false_alarm_rate: Annotated[float, Field(gt=0, le=0.5)] | None = Field(
        None,
        description="context models only: the share of normal records they may flag "
        "(DETECTION_FALSE_ALARM_RATE unless given)",
    )
    max_features: Annotated[float, Field(gt=0, le=1)] | None = None
    random_state: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None

    @field_validator(*_NUMERIC_FIELDS, mode="before")
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
    detector: DetectorKind = Field(
        "point", description="the kind of model (versions that do not say are point models)"
    )


CALIBRATION_EXAMPLE: dict[str, Any] = {
    "false_alarm_rate": 0.0005,
    "threshold": -0.61,
    "held_out_records": 2000,
    "from_held_out": True,
    "held_out_flagged": 0.0005,
    "trimmed": 0,
}


class Calibration(BaseModel):
    """How a context model's threshold was set (``meta.json``'s ``context.calibration``)."""

    false_alarm_rate: float = Field(description="the share of normal records it may flag")
    threshold: float = Field(description="the forest's offset_: scores below it are anomalous")
    held_out_records: int = Field(
        description="training records held out of the fit (the last part of each vehicle's)"
    )
    from_held_out: bool = Field(
        description="whether the threshold came from them; when too few, it came from every "
        "training record, the fitted ones included"
    )
    held_out_flagged: float | None = Field(
        description="the share of held-out records the model flags (none held out: null)"
    )
    trimmed: int = Field(
        0,
        description="records left out of the threshold's quantile because their evidence was "
        "beyond doubt (faults in the training data)",
    )


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
                    "params": {
                        "detector": "context",
                        "n_estimators": 100,
                        "max_samples": 2048,
                        "max_features": 1.0,
                        "false_alarm_rate": 0.0005,
                        "random_state": None,
                    },
                    "sha256": "9f2c…",
                    "signed": False,
                    "active": True,
                    "warnings": [],
                    "detector": "context",
                    "false_alarm_rate": 0.0005,
                    "calibration": CALIBRATION_EXAMPLE,
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
    detector: DetectorKind = Field("point", description="the kind of model trained")
    false_alarm_rate: float | None = Field(
        None, description="context models: the share of normal records they may flag"
    )
    calibration: Calibration | None = Field(
        None, description="context models: how the threshold was set"
    )
