"""Response models of the api that the contract (``shared.schemas``) does not define."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import problem_type
from shared.training_schemas import ModelMeta

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
    "type": problem_type("validation-error"),
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
