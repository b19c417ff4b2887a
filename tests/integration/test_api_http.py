"""The api as deployed: ``python -m api`` (uvicorn) in a subprocess, over real HTTP on loopback.

No broker is needed: the api only shares the model registry (a directory) with the worker.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.api_helpers import AUTH, Server, start_api, stop_api

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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_api(tmp_path_factory.mktemp("api-http"))
    try:
        yield running
    finally:
        stop_api(running)


def test_seed_examples_over_http(server: Server) -> None:
    """The seed's two requests, sent as written with a key, answer in the seed's shape."""
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        trained = client.post("/ingest", json=SEED_INGEST, headers=AUTH)
        assert trained.status_code == 201, trained.text
        assert re.fullmatch(r"[0-9]{14}", trained.json()["model_version"])
        assert trained.json()["record_count"] == 1
        scored = client.post("/score", json=SEED_SCORE, headers=AUTH)
        assert scored.status_code == 200, scored.text
        verdict = scored.json()
        assert verdict["vehicle_id"] == "VH-002"
        assert isinstance(verdict["anomaly_score"], float)
        assert isinstance(verdict["is_anomaly"], bool)
        assert re.fullmatch(r"[0-9]{14}(-[0-9]+)?", verdict["model_version"])
        refused = client.post("/score", json=SEED_SCORE)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"


def test_request_id_and_json_access_log(server: Server) -> None:
    """X-Request-ID is echoed and the server's JSON access line carries it."""
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        response = client.get("/health", headers={"X-Request-ID": "it-req-1"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "it-req-1"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        access = [
            line
            for line in server.log_lines()
            if line.get("logger") == "api.access" and line.get("request_id") == "it-req-1"
        ]
        if access:
            break
        time.sleep(0.05)
    assert access, server.log.read_text()[-2000:]
    assert access[0]["path"] == "/health"
    assert access[0]["status"] == 200
    assert access[0]["service"] == "api"


async def test_healthz_answers_during_a_long_training(server: Server) -> None:
    """Over real HTTP, /healthz answers several times while a 50k-record training is pending."""
    rows = np.random.default_rng(11).normal(size=(50_000, 8)).round(6).tolist()
    batch = {
        "records": [
            {"vehicle_id": f"VH-{i % 50}", "timestamp": "2024-01-15T10:00:00Z", "feature_vector": r}
            for i, r in enumerate(rows)
        ],
        "params": {"n_estimators": 300, "random_state": 11},
    }
    body = json.dumps(batch).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=120) as trainer,
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as prober,
    ):
        training = asyncio.create_task(trainer.post("/ingest", content=body, headers=headers))
        await asyncio.sleep(0.3)  # the body is on its way and being decoded or trained on
        answered_while_pending = 0
        for _ in range(5):
            response = await prober.get("/healthz")
            assert response.status_code == 200
            answered_while_pending += not training.done()
            await asyncio.sleep(0.02)
        result = await training
    assert result.status_code == 201, result.text
    assert result.json()["record_count"] == 50_000
    assert answered_while_pending == 5


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    """SIGTERM ends `python -m api` after its lifespan shutdown ran (uvicorn re-raises the signal)."""
    running = start_api(tmp_path)
    assert stop_api(running) in (0, -signal.SIGTERM)
    messages = [line.get("message") for line in running.log_lines()]
    assert "api started" in messages
    assert "api stopped" in messages
