"""Response models of the api that the contract (``shared.schemas``) does not define."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import ModelMeta

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    """One thing wrong with the request, and where."""

    field: str = Field(description="dotted path inside `location`, e.g. `feature_vector.0`")
    location: Literal["body", "query", "path", "header", "cookie"] = "body"
    message: str
    type: str = Field(description="machine-readable kind, e.g. `missing`, `finite_number`")
    line: int | None = Field(None, description="for a malformed JSON body: 1-based line")
    column: int | None = Field(None, description="for a malformed JSON body: 1-based column")
    position: int | None = Field(None, description="for a malformed JSON body: 0-based offset")


PROBLEM_EXAMPLE: dict[str, Any] = {
    "type": "urn:vehicle-anomaly:problem:validation-error",
    "title": "Unprocessable Entity",
    "status": 422,
    "detail": "1 validation error in the request",
    "instance": "/score",
    "request_id": "5f0c6a2e1b7d4b44a1c0e2b5d8f3a9c1",
    "errors": [
        {
            "field": "feature_vector.0",
            "location": "body",
            "message": "Input should be a finite number",
            "type": "finite_number",
        }
    ],
}


class Problem(BaseModel):
    """An error answer, RFC 9457 (``application/problem+json``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [PROBLEM_EXAMPLE]})

    type: str = Field("about:blank", description="URI naming the kind of problem")
    title: str = Field(description="short summary of the kind of problem")
    status: int = Field(description="the HTTP status code")
    detail: str | None = Field(None, description="what went wrong with this request")
    instance: str | None = Field(None, description="the request path")
    request_id: str | None = Field(None, description="also in the X-Request-ID header")
    errors: list[FieldError] | None = Field(None, description="the fields at fault")


class ModelInfo(ModelMeta):
    """The metadata of one registry version, and whether it is the active one."""

    active: bool
    candidate: bool = Field(False, description="whether the worker scores it in shadow")


class ModelList(BaseModel):
    """Every version in the registry, newest first."""

    active: str | None = Field(description="the version `/score` uses by default")
    candidate: str | None = Field(None, description="the version scored in shadow, if any")
    models: list[ModelInfo]


class DriftStatistic(BaseModel):
    """How far one feature (or the score) moved from the training data."""

    feature: int | None = Field(None, description="index in feature_vector; absent for the score")
    name: str | None = Field(None, description="the feature's name, when the model has names")
    psi: float = Field(description="population stability index over ten decile bins")
    ks: float = Field(description="Kolmogorov-Smirnov statistic on the same bins")
    drifted: bool = Field(description="psi above DRIFT_PSI_THRESHOLD")


DRIFT_EXAMPLE: dict[str, Any] = {
    "version": "20240115100000",
    "active": True,
    "records": 10000,
    "ready": True,
    "threshold": 0.25,
    "drifted": True,
    "features": [
        {"feature": 0, "name": "speed", "psi": 0.012, "ks": 0.031, "drifted": False},
        {"feature": 4, "name": "oil_pressure", "psi": 0.61, "ks": 0.33, "drifted": True},
    ],
    "score": {"psi": 0.29, "ks": 0.18, "drifted": True},
    "workers": 2,
    "stale": False,
    "observed_at": "2024-01-15T10:05:00Z",
}


class DriftReport(BaseModel):
    """``GET /models/{version}/drift``: the workers' rolling window against the training data."""

    model_config = ConfigDict(json_schema_extra={"examples": [DRIFT_EXAMPLE]})

    version: str
    active: bool
    records: int = Field(description="scored records in the workers' windows, summed")
    ready: bool = Field(description="whether the windows hold DRIFT_MIN_RECORDS records")
    threshold: float
    drifted: bool = Field(description="any feature or the score drifted (only when ready)")
    features: list[DriftStatistic]
    score: DriftStatistic | None
    workers: int = Field(description="workers whose windows were merged")
    stale: bool = Field(description="no worker wrote within OBSERVATIONS_TTL_SECONDS")
    observed_at: str | None = Field(description="when the newest window was written")


SHADOW_EXAMPLE: dict[str, Any] = {
    "candidate": "20240116090000",
    "active": "20240115100000",
    "shadowing": True,
    "records": 48210,
    "active_anomalies": 1012,
    "candidate_anomalies": 964,
    "active_anomaly_rate": 0.020992,
    "candidate_anomaly_rate": 0.019996,
    "flips_to_anomaly": 61,
    "flips_to_normal": 109,
    "agreement": 0.996474,
    "rank_correlation": 0.981532,
    "rank_correlation_sample": 10000,
    "workers": 1,
    "stale": False,
    "observed_at": "2024-01-16T09:30:00Z",
}


class ShadowReport(BaseModel):
    """``GET /models/{candidate}/shadow``: the candidate's verdicts against the active one's."""

    model_config = ConfigDict(json_schema_extra={"examples": [SHADOW_EXAMPLE]})

    candidate: str
    active: str | None = Field(description="the version it was compared with")
    shadowing: bool = Field(description="whether it is the candidate the workers score now")
    records: int = Field(description="records scored by both")
    active_anomalies: int
    candidate_anomalies: int
    active_anomaly_rate: float | None
    candidate_anomaly_rate: float | None
    flips_to_anomaly: int = Field(description="normal for the active model, anomalous for it")
    flips_to_normal: int = Field(description="anomalous for the active model, normal for it")
    agreement: float | None = Field(description="share of records with the same verdict")
    rank_correlation: float | None = Field(
        description="Spearman's rank correlation of the two models' scores, over the sample"
    )
    rank_correlation_sample: int = Field(
        description="score pairs it was computed on (the latest SHADOW_SAMPLE_RECORDS per worker)"
    )
    workers: int
    stale: bool
    observed_at: str | None


class ActiveModel(BaseModel):
    """What ``/health`` reports of the active model."""

    model_config = ConfigDict(protected_namespaces=())

    version: str | None
    age_seconds: float | None = Field(None, description="seconds since the version was trained")
    n_features: int | None = None
    error: str | None = Field(None, description="why the active version cannot be read")


class RegistryHealth(BaseModel):
    """What ``/health`` reports of the model registry."""

    readable: bool
    versions: int | None = None


class HealthReport(BaseModel):
    """``GET /health``: details for a human or a dashboard."""

    status: Literal["ok", "degraded"]
    version: str = Field(description="the service's own version")
    uptime_seconds: float
    registry: RegistryHealth
    model: ActiveModel


class Status(BaseModel):
    """A short status answer (``/healthz``, ``/health/ready``)."""

    status: str
