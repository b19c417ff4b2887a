"""A burst of trainings without activation cannot erase the versions to roll back to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.unit.api.api_support import AUTH, SEED_INGEST


async def test_21_candidates_keep_the_rollback_history(client_for: Callable[..., Any]) -> None:
    """21 one-record /ingest?activate=false (retention 20) leave every earlier active version."""
    async with client_for(model_retention=20, iforest_n_estimators=5) as client:
        activated = [
            (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).json()["model_version"]
            for _ in range(3)
        ]
        for _ in range(21):
            response = await client.post("/ingest?activate=false", json=SEED_INGEST, headers=AUTH)
            assert response.status_code == 201
        listed = (await client.get("/models", headers=AUTH)).json()
        kept = {m["version"] for m in listed["models"]}
        assert listed["active"] == activated[-1]
        assert set(activated) <= kept
        rollback = await client.post(f"/models/{activated[0]}/activate", headers=AUTH)
        assert rollback.status_code == 200
