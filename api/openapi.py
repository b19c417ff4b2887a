"""OpenAPI helpers: documented problem responses, request bodies, and the extra components.

The routes read their bodies through dependencies (see ``api.body``), so their request
bodies are declared here, with the contract's models added to ``components.schemas``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.schemas import PROBLEM_EXAMPLE, PROBLEM_MEDIA_TYPE, Problem

REF = "#/components/schemas/"

_DESCRIPTIONS = {
    400: "The body is not valid JSON (the position is in `errors`).",
    401: "No API key, or not a valid one.",
    403: "A read key (API_READ_KEYS) on a route that needs an admin key (API_KEYS).",
    404: "No such resource.",
    409: "The request conflicts with the registry's state.",
    413: "The body or the batch is too large.",
    415: "The body is not JSON.",
    422: "The request breaks the schema; `errors` names each field at fault.",
    429: "Rate limit (or the failed-login limit) reached; retry after `Retry-After` seconds.",
    503: "The model registry cannot be used.",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The accepted schemes: Bearer and APIKey.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before retrying (an integer, at least 1).",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries for these problem statuses."""
    found: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        example = {**PROBLEM_EXAMPLE, "status": status}
        if status != 422:
            example = {
                "type": "about:blank",
                "title": _DESCRIPTIONS[status].split(";")[0],
                "status": status,
                "detail": _DESCRIPTIONS[status],
                "instance": "/score",
            }
        entry: dict[str, Any] = {
            "description": _DESCRIPTIONS[status],
            "content": {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": REF + "Problem"}, "example": example}
            },
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        found[status] = entry
    return found


AUTH_PROBLEMS = (401, 429)
ADMIN_PROBLEMS = (401, 403, 429)
BODY_PROBLEMS = (400, 413, 415, 422)


def json_body(model: type[BaseModel], examples: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model``."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": REF + model.__name__},
                    "examples": examples,
                }
            },
        }
    }


def install_openapi(app: FastAPI, extra_models: list[type[BaseModel]]) -> None:
    """Make ``app.openapi()`` include ``extra_models`` (and their definitions) as components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        models: list[type[BaseModel]] = [Problem, *extra_models]
        for model in models:
            definition = model.model_json_schema(ref_template=REF + "{model}", mode="validation")
            for name, sub in definition.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components.setdefault(model.__name__, definition)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


# What every version's metadata holds, as the examples of /ingest and /models show it.
VERSION_EXAMPLE: dict[str, Any] = {
    "created_at": "2024-01-15T10:00:00Z",
    "n_features": 4,
    "detector": "context",
    "params": {
        "detector": "context",
        "n_estimators": 100,
        "max_samples": 2048,
        "max_features": 1.0,
        "false_alarm_rate": 0.0005,
        "random_state": None,
    },
    "sha256": "9f2c5b1e0d4a7c3b8e6f1a2d5c7b9e0f3a4d6c8b1e2f5a7c9d0b3e6f8a1c4d7e",
}
