"""Helpers of the explained-verdict, drift and shadow tests: a simulated fleet, models trained
over real HTTP with feature names, and records published to the raw topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from simulator import FEATURES, SimRecord
from tests.integration.api_helpers import AUTH, Server
from tests.integration.kafka_helpers import produce

END = datetime(2024, 1, 15, tzinfo=UTC)
VEHICLES = 20
OIL = FEATURES.index("oil_pressure")


async def call(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=120) as client:
        return await client.request(method, path, **kwargs)


async def train(
    server: Server,
    records: list[SimRecord],
    seed: int,
    *,
    activate: bool = True,
    params: dict[str, Any] | None = None,
) -> str:
    """``POST /ingest`` the records with the sensors' names; the new version.

    A point model unless ``params`` says otherwise: these tests check point verdicts (scores
    equal to the forest's decision_function, attributions ranking raw readings).
    """
    body = {
        "records": [r.to_record() for r in records],
        "params": {"detector": "point", **(params or {}), "random_state": seed},
        "feature_names": list(FEATURES),
    }
    response = await call(
        server, "POST", "/ingest", params={"activate": str(activate).lower()}, json=body
    )
    assert response.status_code == 201, response.text
    version: str = response.json()["model_version"]
    return version


async def publish(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> list[Any]:
    """Produce telemetry records keyed by vehicle id; their metadata, in order."""
    values = [json.dumps(r).encode() for r in records]
    keys = [r["vehicle_id"].encode() for r in records]
    return await produce(bootstrap, topic, values, keys=keys)
