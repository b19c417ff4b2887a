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
)

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
    # the worker's last resort for a record whose output the broker kept refusing
    PUBLISH_REFUSED = "publish_refused"


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
