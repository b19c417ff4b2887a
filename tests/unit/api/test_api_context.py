"""Context models through the api: /ingest's answer, /score with a history, old point versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import joblib
import numpy as np
from sklearn.ensemble import IsolationForest

from shared.context import ContextForest, epoch_seconds
from shared.registry import ModelRegistry
from shared.settings import Settings
from shared.training import reference_summary
from tests.unit.api.api_support import AUTH, SEED_SCORE, assert_problem


def fleet(vehicles: int = 3, per_vehicle: int = 120, seed: int = 0) -> list[dict[str, Any]]:
    """Records of a few vehicles whose second sensor follows the first, interleaved in time."""
    rng = np.random.default_rng(seed)
    out = []
    for step in range(per_vehicle):
        for v in range(vehicles):
            a = 50 + 10 * np.sin(step / 30 + v) + rng.normal(0, 1)
            out.append(
                {
                    "vehicle_id": f"VH-{v}",
                    "timestamp": f"2024-01-15T10:{step // 60:02d}:{step % 60:02d}Z",
                    "feature_vector": [a, 2 * a + rng.normal(0, 0.5), 20.0],
                }
            )
    return out


async def _train(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    body = {"records": fleet(), "params": {"n_estimators": 30, "random_state": 3, **params}}
    response = await client.post("/ingest", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _offline(settings: Settings, version: str, records: list[dict[str, Any]]) -> float:
    model = joblib.load(settings.model_dir / version / "model.joblib")
    assert isinstance(model, ContextForest)
    scores = model.score_records(
        [r["vehicle_id"] for r in records],
        epoch_seconds([r["timestamp"] for r in records]),
        np.array([r["feature_vector"] for r in records], dtype=np.float64),
    )
    return float(scores[-1])


def _history(vehicle: str, count: int) -> list[dict[str, Any]]:
    return [r for r in fleet(seed=9) if r["vehicle_id"] == vehicle][:count]


def _next(history: list[dict[str, Any]], vector: list[float]) -> dict[str, Any]:
    """The vehicle's record one second after its history (a gap would start it afresh)."""
    after = epoch_seconds([history[-1]["timestamp"]])[0] + 1
    stamp = datetime.fromtimestamp(after, UTC).isoformat().replace("+00:00", "Z")
    return {"vehicle_id": history[0]["vehicle_id"], "timestamp": stamp, "feature_vector": vector}


async def test_ingest_answers_the_kind_and_the_calibration(client: httpx.AsyncClient) -> None:
    """A context training's answer has detector, false_alarm_rate and the held-out calibration."""
    answer = await _train(client, false_alarm_rate=0.05)
    assert answer["detector"] == "context"
    assert answer["false_alarm_rate"] == 0.05
    assert answer["params"]["false_alarm_rate"] == 0.05
    assert set(answer["calibration"]) == {
        "false_alarm_rate",
        "effective_false_alarm_rate",
        "threshold",
        "held_out_records",
        "from_held_out",
        "held_out_flagged",
        "trimmed",
    }
    assert answer["calibration"]["held_out_records"] == 3 * 24
    point = await _train(client, detector="point")
    assert (point["detector"], point["false_alarm_rate"], point["calibration"]) == (
        "point",
        None,
        None,
    )


async def test_score_without_history_is_a_vehicle_first_reading(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A record alone scores as score_records on that one record (a vehicle with no history)."""
    version = (await _train(client))["model_version"]
    record = _next(_history("VH-1", 1), [55.0, 110.0, 20.0])
    verdict = (await client.post("/score", json=record, headers=AUTH)).json()
    assert verdict["model_version"] == version
    assert verdict["anomaly_score"] == _offline(settings, version, [record])


async def test_score_with_history_equals_score_records(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """With history, the answer is the last of score_records on history + record, bit for bit."""
    version = (await _train(client))["model_version"]
    history = _history("VH-2", 40)
    for vector in ([55.0, 110.0, 20.0], [55.0, 30.0, 20.0]):
        record = {**_next(history, vector), "history": history}
        verdict = (await client.post("/score", json=record, headers=AUTH)).json()
        assert verdict["anomaly_score"] == _offline(settings, version, [*history, record])
        assert verdict["is_anomaly"] is (verdict["anomaly_score"] < 0)
    alone = await client.post("/score", json=_next(history, [55.0, 30.0, 20.0]), headers=AUTH)
    assert alone.json()["anomaly_score"] != verdict["anomaly_score"]


async def test_an_anomalous_context_verdict_names_sensors_and_evidence(
    client: httpx.AsyncClient,
) -> None:
    """A sensor that stops following the other is flagged; attribution names it, with evidence."""
    await _train(client)
    history = _history("VH-0", 60)
    last = history[-1]["feature_vector"]
    record = {**_next(history, [last[0], 2 * last[0] + 400.0, 20.0]), "history": history}
    verdict = (await client.post("/score", json=record, headers=AUTH)).json()
    assert verdict["is_anomaly"] is True
    assert verdict["attribution"]
    for entry in verdict["attribution"]:
        assert 0 <= entry["feature"] < 3
        assert entry["evidence"] in {
            "level",
            "consistency",
            "motion",
            "sustained",
            "change",
            "noise",
            "flat",
        }
    assert 1 in {entry["feature"] for entry in verdict["attribution"]}


async def test_a_history_record_of_another_width_is_422(client: httpx.AsyncClient) -> None:
    """history.N.feature_vector is named when a history record is not as wide as the record."""
    await _train(client)
    history = _history("VH-0", 3)
    history[1] = {**history[1], "feature_vector": [1.0, 2.0]}
    record = {**_next(history, [55.0, 110.0, 20.0]), "history": history}
    response = await client.post("/score", json=record, headers=AUTH)
    problem = assert_problem(
        response, 422, field="history.1.feature_vector", kind="dimension-mismatch"
    )
    assert "the record has 3" in problem["detail"]


async def test_more_than_256_history_records_is_422(client: httpx.AsyncClient) -> None:
    """A history longer than 256 records is refused, naming history."""
    await _train(client)
    one = _history("VH-0", 1)[0]
    record = {**_next([one], [55.0, 110.0, 20.0]), "history": [one] * 257}
    assert_problem(await client.post("/score", json=record, headers=AUTH), 422, field="history")


async def test_a_point_model_ignores_history(client: httpx.AsyncClient) -> None:
    """For a point model the same record scores the same with or without a history."""
    await _train(client, detector="point")
    history = _history("VH-0", 30)
    record = _next(history, [55.0, 110.0, 20.0])
    alone = (await client.post("/score", json=record, headers=AUTH)).json()
    after = (await client.post("/score", json={**record, "history": history}, headers=AUTH)).json()
    assert after["anomaly_score"] == alone["anomaly_score"]


async def test_a_point_version_trained_before_still_scores(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A version written before context models (no detector key) scores and lists as before."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4))
    forest = IsolationForest(n_estimators=25, random_state=7).fit(X)
    meta = ModelRegistry(settings.model_dir, signing_key=settings.signing_key).publish(
        forest,
        n_features=4,
        record_count=300,
        params={
            "n_estimators": 25,
            "max_samples": "auto",
            "contamination": "auto",
            "max_features": 1.0,
            "random_state": 7,
        },
        extra={"reference": reference_summary(X)},
    )
    on_disk = json.loads((settings.model_dir / meta.version / "meta.json").read_text())
    assert "detector" not in on_disk
    for body in (SEED_SCORE, {**SEED_SCORE, "feature_vector": [9.0, -9.0, 9.0, -9.0]}):
        response = await client.post("/score", json=body, headers=AUTH)
        verdict = response.json()
        expected = float(forest.decision_function(np.array([body["feature_vector"]]))[0])
        assert verdict["anomaly_score"] == expected
        assert verdict["model_version"] == meta.version
        keys = {"vehicle_id", "timestamp", "anomaly_score", "is_anomaly", "model_version"}
        assert set(verdict) - {"scored_at", "attribution"} == keys
        for entry in verdict.get("attribution") or []:
            assert set(entry) == {"feature", "share", "value", "direction", "typical"}
    listed = (await client.get("/models", headers=AUTH)).json()
    assert [m["detector"] for m in listed["models"]] == ["point"]
    one = (await client.get(f"/models/{meta.version}", headers=AUTH)).json()
    assert one["detector"] == "point"


async def test_models_show_each_version_kind(client: httpx.AsyncClient) -> None:
    """GET /models and /models/{v} say context or point for each version."""
    context = (await _train(client))["model_version"]
    point = (await _train(client, detector="point"))["model_version"]
    listed = (await client.get("/models", headers=AUTH)).json()
    kinds = {m["version"]: m["detector"] for m in listed["models"]}
    assert kinds == {context: "context", point: "point"}
    one = (await client.get(f"/models/{context}", headers=AUTH)).json()
    assert one["detector"] == "context"
