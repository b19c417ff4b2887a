"""The api as deployed: ``python -m api`` (uvicorn) in a subprocess, over real HTTP on loopback.

No broker is needed: the api only shares the model registry (a directory) with the worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

API_KEY = "integration-key"
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


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    model_dir: Path

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for raw in self.log.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(tmp: Path) -> Server:
    port = _free_port()
    env = {
        **os.environ,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_KEYS": API_KEY,
        "AUTH_DISABLED": "false",
        "MODEL_DIR": str(tmp / "models"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT_PER_SECOND": "1000",
        "RATE_LIMIT_BURST": "1000",
    }
    log = tmp / "api.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "api"],
            env=env,
            cwd=tmp,  # no .env file there
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log, tmp / "models")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the api exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.base_url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    _stop(server)
    raise RuntimeError(f"the api did not answer within 60 s:\n{log.read_text()}")


def _stop(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)
    return server.process.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = _start(tmp_path_factory.mktemp("api-http"))
    try:
        yield running
    finally:
        _stop(running)


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
    running = _start(tmp_path)
    assert _stop(running) in (0, -signal.SIGTERM)
    messages = [line.get("message") for line in running.log_lines()]
    assert "api started" in messages
    assert "api stopped" in messages
