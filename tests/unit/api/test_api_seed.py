"""The seed's two example requests, answered in the seed's shape; request ids; JSON logs."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.observability import JsonFormatter
from shared.settings import Settings
from tests.unit.api.api_support import AUTH, SEED_INGEST, SEED_SCORE, offline_score, serve

VERSION_RE = re.compile(r"^[0-9]{14}(-[0-9]+)?$")


async def test_seed_ingest_example_trains_a_version(client: httpx.AsyncClient) -> None:
    """The seed's /ingest example (one record) answers 201 with a 14-digit version and count 1."""
    response = await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    assert response.status_code == 201
    body = response.json()
    assert VERSION_RE.match(body["model_version"])
    assert len(body["model_version"]) == 14
    assert body["record_count"] == 1
    assert body["n_features"] == 4
    assert body["active"] is True
    assert body["warnings"], "one record deserves a warning"
    assert response.headers["location"] == f"/models/{body['model_version']}"


async def test_seed_score_example_answers_a_verdict(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The seed's /score example answers the contract's verdict, score = the model's offline one."""
    trained = (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).json()
    response = await client.post("/score", json=SEED_SCORE, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    verdict = response.json()
    assert set(verdict) == {
        "vehicle_id",
        "timestamp",
        "anomaly_score",
        "is_anomaly",
        "model_version",
        "scored_at",
    }
    assert verdict["vehicle_id"] == "VH-002"
    assert verdict["timestamp"] == "2024-01-15T10:05:00Z"
    assert verdict["model_version"] == trained["model_version"]
    model_file = settings.model_dir / trained["model_version"] / "model.joblib"
    expected = offline_score(model_file, SEED_SCORE)
    assert verdict["anomaly_score"] == expected
    assert verdict["is_anomaly"] is (expected < 0)
    assert verdict["scored_at"].endswith("Z")


async def test_score_picks_up_a_newer_version(client: httpx.AsyncClient) -> None:
    """A version trained after the first /score is used by the next /score (LATEST is re-read)."""
    first = (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).json()["model_version"]
    assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).json()[
        "model_version"
    ] == first
    second = (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).json()["model_version"]
    assert second != first
    verdict = (await client.post("/score", json=SEED_SCORE, headers=AUTH)).json()
    assert verdict["model_version"] == second


async def test_ingest_without_activation_keeps_the_active_version(
    client: httpx.AsyncClient,
) -> None:
    """activate=false publishes a version without making it the one /score uses."""
    first = (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).json()["model_version"]
    response = await client.post("/ingest?activate=false", json=SEED_INGEST, headers=AUTH)
    assert response.status_code == 201
    assert response.json()["active"] is False
    verdict = (await client.post("/score", json=SEED_SCORE, headers=AUTH)).json()
    assert verdict["model_version"] == first


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    """A well-formed X-Request-ID comes back unchanged, also inside an error's problem."""
    response = await client.post(
        "/score", json=SEED_SCORE, headers={**AUTH, "X-Request-ID": "req-42.abc"}
    )
    assert response.headers["x-request-id"] == "req-42.abc"
    assert response.json()["request_id"] == "req-42.abc"


@pytest.mark.parametrize("given", ["x" * 129, "has space", 'quote"d', "semi;colon", ""], ids=repr)
async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient, given: str) -> None:
    """An X-Request-ID that is too long or has unsafe characters is replaced by a uuid4 hex."""
    response = await client.get("/healthz", headers={"X-Request-ID": given})
    echoed = response.headers["x-request-id"]
    assert echoed != given
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


async def test_request_id_is_generated(client: httpx.AsyncClient) -> None:
    """Without X-Request-ID each answer carries a new uuid4 hex."""
    first = (await client.get("/healthz")).headers["x-request-id"]
    second = (await client.get("/healthz")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second


class _JsonLines(logging.Handler):
    """Formats each record as it is emitted (the request id is a context variable)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("api"))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def json_logs() -> Iterator[_JsonLines]:
    handler = _JsonLines()
    logger = logging.getLogger("api")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


async def test_access_log_is_json_with_the_request_id(
    client: httpx.AsyncClient, json_logs: _JsonLines
) -> None:
    """Each request logs one JSON access line with its request id, status and duration."""
    await client.post("/ingest", json=SEED_INGEST, headers={**AUTH, "X-Request-ID": "trace-7"})
    access = [line for line in json_logs.lines if line["logger"] == "api.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "trace-7"
    assert line["method"] == "POST"
    assert line["path"] == "/ingest"
    assert line["status"] == 201
    assert line["duration_ms"] > 0
    assert line["caller"].startswith("key-")
    assert "test-key" not in json.dumps(json_logs.lines), "the key itself is never logged"
    published = [line for line in json_logs.lines if line["logger"] == "api.ingest"]
    assert published[0]["request_id"] == "trace-7"
    assert published[0]["model_version"]


async def test_unhandled_error_is_a_generic_500_logged_with_request_id(
    app: FastAPI, json_logs: _JsonLines
) -> None:
    """A bug in a route answers a 500 problem without the traceback; the log has it, with the id."""

    async def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/broken", broken, methods=["GET"])
    async with serve(app) as client:
        response = await client.get("/broken", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 500
    assert problem["request_id"] == "boom-1"
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    errors = [line for line in json_logs.lines if line["logger"] == "api.error"]
    assert errors[0]["request_id"] == "boom-1"
    assert "secret internals" in errors[0]["exc_info"]
    access = [line for line in json_logs.lines if line["logger"] == "api.access"]
    assert access[0]["status"] == 500
