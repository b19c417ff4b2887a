"""``POST /score`` through its fast path answers as the route would, and reads LATEST rarely."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from shared.registry import ModelRegistry
from tests.unit.api.api_support import AUTH, SEED_INGEST, SEED_SCORE, assert_problem


async def test_long_model_version_query_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    """?model_version= longer than 64 characters is a 422 naming the query parameter."""
    response = await client.post(f"/score?model_version={'9' * 65}", json=SEED_SCORE, headers=AUTH)
    problem = assert_problem(response, 422, field="model_version", kind="validation-error")
    assert problem["errors"][0]["location"] == "query"


async def test_bearer_and_header_keys_both_work(client: httpx.AsyncClient) -> None:
    """The fast path takes X-API-Key and Authorization: Bearer, as the dependency does."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    bearer = {"Authorization": f"Bearer {AUTH['X-API-Key']}"}
    assert (await client.post("/score", json=SEED_SCORE, headers=bearer)).status_code == 200
    assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).status_code == 200
    assert_problem(await client.post("/score", json=SEED_SCORE), 401)


async def test_latest_is_read_once_per_poll_interval(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Many /score calls within MODEL_POLL_SECONDS read LATEST once, not once per request."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    registry: ModelRegistry = app.state.services.registry
    reads = 0
    original = registry.active_version

    def counting() -> str | None:
        nonlocal reads
        reads += 1
        return original()

    registry.active_version = counting  # type: ignore[method-assign]  # count the reads
    for _ in range(50):
        assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).status_code == 200
    assert reads <= 1
