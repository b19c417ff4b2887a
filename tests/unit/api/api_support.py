"""Helpers shared by the api's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from fastapi import FastAPI

from shared.context import ContextForest, epoch_seconds
from shared.settings import Settings, load_settings

API_KEY = "test-key-1"
SIGNING_KEY = "test-signing-key"
OTHER_KEY = "test-key-2"
AUTH = {"X-API-Key": API_KEY}

SEED_INGEST = {
    "records": [
        {
            "vehicle_id": "VH-001",
            "timestamp": "2024-01-15T10:00:00Z",
            "feature_vector": [0.5, 0.3, 0.8, 1.2],
        }
    ]
}
SEED_SCORE = {
    "vehicle_id": "VH-002",
    "timestamp": "2024-01-15T10:05:00Z",
    "feature_vector": [0.7, 0.2, 0.9, 0.5],
}


def offline_score(model_file: Path, body: dict[str, Any]) -> float:
    """The score ``model.joblib`` gives the /score body offline, whichever kind it holds.

    A context model scores the body's history, then the record, in one stream.
    """
    estimator = joblib.load(model_file)
    records = [*body.get("history", ()), body]
    readings = np.array([r["feature_vector"] for r in records], dtype=np.float64)
    if isinstance(estimator, ContextForest):
        ids = [r["vehicle_id"] for r in records]
        times = epoch_seconds([r["timestamp"] for r in records])
        return float(estimator.score_records(ids, times, readings)[-1])
    return float(estimator.decision_function(readings[-1:])[0])


def make_settings(model_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: a temporary registry, two keys, a signing key, a generous rate
    limit, no .env."""
    values: dict[str, Any] = {
        "model_dir": model_dir,
        "api_keys": f"{API_KEY},{OTHER_KEY}",
        "model_signing_key": SIGNING_KEY,
        "rate_limit_per_second": 10_000.0,
        "rate_limit_burst": 10_000,
        "auth_failure_burst": 10_000,
        "iforest_random_state": 7,
        "iforest_n_estimators": 25,
        "log_format": "json",
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and give a client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", timeout=60
        ) as client:
            yield client


def records(rows: list[list[float]], vehicle: str = "VH-001") -> list[dict[str, Any]]:
    """Telemetry records for these feature rows, one second apart."""
    return [
        {
            "vehicle_id": vehicle,
            "timestamp": f"2024-01-15T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "feature_vector": row,
        }
        for i, row in enumerate(rows)
    ]


def assert_problem(
    response: httpx.Response,
    status: int,
    *,
    field: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """``response`` is a problem+json of ``status`` (naming ``field`` and of ``kind``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["instance"] == response.request.url.path
    assert problem["request_id"] == response.headers["x-request-id"]
    if kind is not None:
        assert problem["type"] == f"urn:vehicle-anomaly:problem:{kind}", problem
    if field is not None:
        fields = [error["field"] for error in problem.get("errors", [])]
        assert field in fields, problem
    return problem
