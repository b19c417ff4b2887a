"""``/models/{version}/drift``, ``/models/{version}/shadow``, feature names and /score's attribution.

The worker's side is played by writing its observation files (``shared.worker_figures``) with
the same classes the worker uses; the api reads and merges them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.ensemble import IsolationForest

from shared.drift import DriftReference, DriftWindow
from shared.registry import ModelRegistry
from shared.settings import Settings
from shared.shadow import ShadowStats, report
from shared.worker_figures import DRIFT, SHADOW, ObservationStore
from tests.unit.api.api_support import AUTH, assert_problem, records

NAMES = ["speed", "rpm", "temp"]


async def train(
    client: httpx.AsyncClient, rows: np.ndarray, *, activate: bool = True, names: Any = NAMES
) -> str:
    body: dict[str, Any] = {"records": records(rows.tolist())}
    if names is not None:
        body["feature_names"] = names
    response = await client.post(
        "/ingest", params={"activate": str(activate).lower()}, json=body, headers=AUTH
    )
    assert response.status_code == 201, response.text
    version: str = response.json()["model_version"]
    return version


def data(seed: int = 0, rows: int = 600) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 3))


async def test_drift_report_merges_the_workers_windows(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """/models/{v}/drift adds two workers' windows and flags the shifted feature by its PSI."""
    version = await train(client, data())
    meta = ModelRegistry(settings.model_dir).meta(version)
    reference = DriftReference.from_meta(meta.model_extra)
    assert reference is not None
    store = ObservationStore(settings.model_dir)
    rng = np.random.default_rng(1)
    for worker, shift in (("w1", 0.0), ("w2", 1.5)):
        window = DriftWindow(reference, 10_000)
        rows = rng.normal(size=(800, 3))
        rows[:, 2] += shift
        window.observe(rows, rng.normal(size=800) * 0.05)
        store.write(
            DRIFT,
            (version,),
            worker,
            {"version": version, "records": window.records, "counts": window.counts.tolist()},
        )
    response = await client.get(f"/models/{version}/drift", headers=AUTH)
    assert response.status_code == 200, response.text
    drift = response.json()
    assert drift["records"] == 1600 and drift["workers"] == 2 and drift["ready"]
    assert drift["stale"] is False and drift["observed_at"].endswith("Z")
    assert [f["name"] for f in drift["features"]] == NAMES
    temp = drift["features"][2]
    assert temp["drifted"] and temp["psi"] > 0.25 and 0 < temp["ks"] <= 1
    assert not drift["features"][0]["drifted"]
    assert drift["score"]["feature"] is None
    assert drift["drifted"] is True and drift["threshold"] == 0.25


async def test_drift_before_enough_records_and_for_unknown_or_old_models(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Drift is not ready without records, 404 for no such version, 409 without a reference."""
    version = await train(client, data())
    waiting = (await client.get(f"/models/{version}/drift", headers=AUTH)).json()
    assert waiting["records"] == 0 and not waiting["ready"] and not waiting["drifted"]
    assert waiting["features"] == [] and waiting["score"] is None and waiting["workers"] == 0
    assert_problem(
        await client.get("/models/20990101000000/drift", headers=AUTH), 404, kind="model-not-found"
    )
    # a version published without a drift reference (trained before the drift watch)
    model = IsolationForest(n_estimators=5, random_state=0).fit(data())
    old = ModelRegistry(settings.model_dir, signing_key=settings.signing_key).publish(
        model, n_features=3, record_count=600, params={}, activate=False
    )
    assert_problem(
        await client.get(f"/models/{old.version}/drift", headers=AUTH),
        409,
        kind="no-drift-reference",
    )


async def test_shadow_candidate_lifecycle_and_report(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """An inactive new model is the candidate, its report merges workers, and the routes move it."""
    active = await train(client, data(0))
    candidate = await train(client, data(1), activate=False)
    listing = (await client.get("/models", headers=AUTH)).json()
    assert (listing["active"], listing["candidate"]) == (active, candidate)
    assert [m["candidate"] for m in listing["models"]] == [True, False]

    empty = (await client.get(f"/models/{candidate}/shadow", headers=AUTH)).json()
    assert empty["records"] == 0 and empty["agreement"] is None and empty["shadowing"]
    assert empty["active"] == active

    store = ObservationStore(settings.model_dir)
    rng = np.random.default_rng(2)
    payloads = []
    for worker in ("w1", "w2"):
        stats = ShadowStats(candidate, active)
        a = rng.normal(size=500) * 0.1
        stats.observe(a, a + rng.normal(size=500) * 0.05)
        payloads.append(stats.to_payload())
        store.write(SHADOW, (candidate, active), worker, stats.to_payload())
    answer = (await client.get(f"/models/{candidate}/shadow", headers=AUTH)).json()
    expected = report(payloads)
    assert {k: answer[k] for k in expected} == expected
    assert answer["workers"] == 2 and answer["records"] == 1000
    against = await client.get(
        f"/models/{candidate}/shadow", params={"against": "20990101000000"}, headers=AUTH
    )
    assert against.json()["records"] == 0

    assert_problem(
        await client.post(f"/models/{active}/shadow", headers=AUTH), 409, kind="model-in-use"
    )
    assert_problem(
        await client.delete(f"/models/{active}/shadow", headers=AUTH), 409, kind="not-candidate"
    )
    assert (await client.delete(f"/models/{candidate}/shadow", headers=AUTH)).status_code == 204
    assert (await client.get("/models", headers=AUTH)).json()["candidate"] is None
    started = await client.post(f"/models/{candidate}/shadow", headers=AUTH)
    assert started.status_code == 200 and started.json()["candidate"] is True
    promoted = await client.post(f"/models/{candidate}/activate", headers=AUTH)
    assert promoted.json()["active"] is True
    assert (await client.get("/models", headers=AUTH)).json()["candidate"] is None
    assert_problem(
        await client.get("/models/20990101000000/shadow", headers=AUTH),
        404,
        kind="model-not-found",
    )


async def test_feature_names_are_kept_and_must_match_the_dimension(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Feature names are kept in the model's metadata; names not matching the width are a 422."""
    version = await train(client, data())
    meta = ModelRegistry(settings.model_dir).meta(version)
    assert (meta.model_extra or {})["feature_names"] == NAMES
    response = await client.post(
        "/ingest",
        json={"records": records(data().tolist()), "feature_names": ["a", "b"]},
        headers=AUTH,
    )
    assert_problem(response, 422, field="feature_names", kind="training-rejected")


async def test_score_explains_an_anomalous_record(client: httpx.AsyncClient) -> None:
    """/score attributes an anomaly to the deviating feature by name and direction, not a normal."""
    await train(client, data())
    record = {"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z"}
    normal = await client.post("/score", json={**record, "feature_vector": [0, 0, 0]}, headers=AUTH)
    assert "attribution" not in normal.json()
    odd = await client.post("/score", json={**record, "feature_vector": [0, -9, 0]}, headers=AUTH)
    body = odd.json()
    assert body["is_anomaly"] is True
    top = body["attribution"][0]
    assert (top["feature"], top["name"], top["direction"]) == (1, "rpm", "below")
    assert len(body["attribution"]) <= 3


async def test_attribution_top_k_setting(client_for: Any, tmp_path: Path) -> None:
    """ATTRIBUTION_TOP_K=0 turns attribution off: an anomalous verdict comes without one."""
    async with client_for(attribution_top_k=0) as client:
        await train(client, data())
        record = {"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z"}
        odd = await client.post(
            "/score", json={**record, "feature_vector": [0, -9, 0]}, headers=AUTH
        )
        assert odd.json()["is_anomaly"] is True and "attribution" not in odd.json()
