"""The event loop keeps serving while a large batch trains; concurrent trainings both publish."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np

from shared.registry import ModelRegistry
from shared.settings import Settings
from tests.unit.api.api_support import AUTH, records


def _large_batch() -> bytes:
    """50,000 records of 8 features and 300 trees: well over a second to decode, fit and save."""
    rows = np.random.default_rng(3).normal(size=(50_000, 8)).round(6).tolist()
    body = {"records": records(rows), "params": {"n_estimators": 300, "random_state": 3}}
    return json.dumps(body).encode()


async def test_healthz_answers_while_a_large_batch_trains(client: httpx.AsyncClient) -> None:
    """Several /healthz calls complete while a 50k-record /ingest is still pending."""
    body = _large_batch()
    headers = {**AUTH, "Content-Type": "application/json"}
    training = asyncio.create_task(client.post("/ingest", content=body, headers=headers))
    answered_while_pending = 0
    for _ in range(5):
        await asyncio.sleep(0.02)
        response = await client.get("/healthz")
        assert response.status_code == 200
        if not training.done():
            answered_while_pending += 1
    still_pending = not training.done()
    result = await training
    assert result.status_code == 201, result.text
    assert result.json()["record_count"] == 50_000
    assert answered_while_pending == 5, "every /healthz answered before the training finished"
    assert still_pending


async def test_two_concurrent_trainings_publish_two_versions(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Two /ingest at once give two distinct versions; LATEST names one of them, complete."""
    rng = np.random.default_rng(5)
    bodies = [
        {"records": records(rng.normal(size=(2_000, 4)).tolist()), "params": {"random_state": i}}
        for i in range(2)
    ]
    first, second = await asyncio.gather(
        *(client.post("/ingest", json=body, headers=AUTH) for body in bodies)
    )
    assert first.status_code == second.status_code == 201
    versions = {first.json()["model_version"], second.json()["model_version"]}
    assert len(versions) == 2
    registry = ModelRegistry(settings.model_dir)
    latest = registry.active_version()
    assert latest in versions
    assert latest is not None
    assert registry.verify(latest).record_count == 2_000
    assert registry.load(latest).estimator is not None
    assert set(registry.versions()) == versions
