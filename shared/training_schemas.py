"""The training and registry shapes: training parameters and requests, a version's metadata, the POST /ingest answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from shared.schemas import MAX_FEATURES, TelemetryRecord

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
    "effective_false_alarm_rate": 0.0005,
    "threshold": -0.61,
    "held_out_records": 2000,
    "from_held_out": True,
    "held_out_flagged": 0.0005,
    "trimmed": 0,
}


class Calibration(BaseModel):
    """How a context model's threshold was set (``meta.json``'s ``context.calibration``)."""

    false_alarm_rate: float = Field(description="the share of normal records it may flag")
    effective_false_alarm_rate: float | None = Field(
        None,
        description="the rate the threshold was set at: false_alarm_rate, or with fewer "
        "than 5 / false_alarm_rate records to rank, 5 over their number (the threshold is "
        "then the 5th most unusual record's score); null for versions trained before it",
    )
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
