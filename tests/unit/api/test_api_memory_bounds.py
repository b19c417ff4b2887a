"""Each route's body limit, the budgets of training work in flight, and the forest-size bound."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from tests.unit.api.api_support import AUTH, SEED_INGEST, SEED_SCORE, assert_problem, records

JSON = {**AUTH, "Content-Type": "application/json"}


async def test_score_takes_a_record_not_a_batch(client: httpx.AsyncClient) -> None:
    """A 2 MB /score body is a 413 naming SCORE_MAX_BODY_BYTES, though /ingest would take it."""
    body = b'{"vehicle_id": "VH-1", "pad": "' + b"x" * 2_000_000 + b'"}'
    response = await client.post("/score", content=body, headers=JSON)
    assert "SCORE_MAX_BODY_BYTES" in assert_problem(response, 413)["detail"]


async def test_routes_without_a_batch_take_small_bodies(client: httpx.AsyncClient) -> None:
    """/ingest/from-topic (and the routes that take no body) refuse 100 KB with a 413."""
    body = b'{"topic": "' + b"x" * 100_000 + b'"}'
    for path in ("/ingest/from-topic", "/models/20240115100000/activate"):
        response = await client.post(path, content=body, headers=JSON)
        assert "OTHER_MAX_BODY_BYTES" in assert_problem(response, 413)["detail"]


async def test_a_batch_larger_than_the_training_budget_is_413(
    client_for: Callable[..., Any],
) -> None:
    """A batch of more records x features than TRAINING_MAX_VALUES_IN_FLIGHT is a 413."""
    async with client_for(training_max_values_in_flight=30) as client:
        batch = {"records": records([[0.1 * i, 0.2, 0.3, 0.4] for i in range(10)])}
        response = await client.post("/ingest", json=batch, headers=AUTH)
        problem = assert_problem(response, 413, kind="too-much-work")
        assert "TRAINING_MAX_VALUES_IN_FLIGHT" in problem["detail"]


async def test_a_batch_that_does_not_fit_beside_others_is_503(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """With the training budget held by trainings in flight, /ingest is a 503 with Retry-After."""
    budget = app.state.services.training_values
    held = budget.take(budget.capacity - 2)  # as trainings in flight would
    response = await client.post("/ingest", json=SEED_INGEST, headers=AUTH)  # 4 values
    assert_problem(response, 503, kind="busy")
    assert int(response.headers["Retry-After"]) >= 1
    held.release()
    assert (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).status_code == 201
    assert budget.in_use == 0  # the training gave its share back


async def test_bodies_past_the_bytes_in_flight_are_503(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """With INGEST_MAX_BYTES_IN_FLIGHT taken by bodies being read, /ingest is a 503."""
    budget = app.state.services.body_bytes
    held = budget.take(budget.capacity - 10)
    response = await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    assert_problem(response, 503, kind="busy")
    held.release()
    assert (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).status_code == 201
    assert budget.in_use == 0


async def test_a_refused_batch_gives_its_shares_back(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A batch refused by validation or training holds nothing afterwards."""
    services = app.state.services
    mixed = {"records": records([[0.1, 0.2], [0.1, 0.2, 0.3]])}
    assert_problem(await client.post("/ingest", json=mixed, headers=AUTH), 422)
    assert services.training_values.in_use == services.body_bytes.in_use == 0


async def test_a_forest_too_large_is_refused_before_training(client: httpx.AsyncClient) -> None:
    """n_estimators=500, max_samples=20000 on 20,000 records: a 422 naming the node bound."""
    batch = {
        "records": records([[float(i % 97), float(i % 13)] for i in range(20_000)]),
        "params": {"detector": "point", "n_estimators": 500, "max_samples": 20_000},
    }
    response = await client.post("/ingest", json=batch, headers=AUTH)
    problem = assert_problem(response, 422, kind="training-rejected")
    assert "TRAINING_MAX_TREE_NODES" in problem["detail"]
    assert (await client.get("/models", headers=AUTH)).json()["models"] == []
    assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).status_code == 404
