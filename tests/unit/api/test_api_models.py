"""The registry routes: list, inspect, activate (rollback), delete; integrity refusals."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from shared.settings import Settings
from tests.unit.api.api_support import AUTH, SEED_SCORE, assert_problem, offline_score, records


def _batch(seed: int, n: int = 300) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"records": records(rng.normal(size=(n, 4)).tolist()), "params": {"random_state": seed}}


async def _train(client: httpx.AsyncClient, seed: int, **params: Any) -> str:
    response = await client.post("/ingest", json=_batch(seed), headers=AUTH, params=params)
    assert response.status_code == 201, response.text
    version: str = response.json()["model_version"]
    return version


async def test_list_models_newest_first_with_active_flag(client: httpx.AsyncClient) -> None:
    """GET /models lists every version newest first, flags the active one and names it."""
    v1 = await _train(client, 1)
    v2 = await _train(client, 2)
    body = (await client.get("/models", headers=AUTH)).json()
    assert body["active"] == v2
    assert [m["version"] for m in body["models"]] == [v2, v1]
    assert [m["active"] for m in body["models"]] == [True, False]
    first = body["models"][0]
    assert first["n_features"] == 4
    assert first["record_count"] == 300
    assert first["params"]["random_state"] == 2
    assert len(first["sha256"]) == 64


async def test_get_one_model(client: httpx.AsyncClient) -> None:
    """GET /models/{version} gives that version's metadata; an unknown one is 404."""
    v1 = await _train(client, 1)
    response = await client.get(f"/models/{v1}", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["version"] == v1
    assert response.json()["active"] is True
    assert_problem(
        await client.get("/models/20000101000000", headers=AUTH), 404, kind="model-not-found"
    )
    assert_problem(await client.get("/models/..", headers=AUTH), 404)


async def test_rollback_scores_with_the_older_version(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Train v1 and v2, activate v1: /score answers v1 with v1's exact offline score."""
    v1 = await _train(client, 1)
    v2 = await _train(client, 2)
    assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).json()[
        "model_version"
    ] == v2
    response = await client.post(f"/models/{v1}/activate", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["version"] == v1
    assert response.json()["active"] is True
    verdict = (await client.post("/score", json=SEED_SCORE, headers=AUTH)).json()
    assert verdict["model_version"] == v1
    expected = offline_score(settings.model_dir / v1 / "model.joblib", SEED_SCORE)
    assert verdict["anomaly_score"] == expected
    assert verdict["is_anomaly"] is (expected < 0)
    listed = (await client.get("/models", headers=AUTH)).json()
    assert listed["active"] == v1


async def test_score_with_a_chosen_version(client: httpx.AsyncClient, settings: Settings) -> None:
    """?model_version= scores with that version while another stays active."""
    v1 = await _train(client, 1)
    v2 = await _train(client, 2)
    for version in (v1, v2, v1):
        verdict = (
            await client.post(
                "/score", json=SEED_SCORE, headers=AUTH, params={"model_version": version}
            )
        ).json()
        expected = offline_score(settings.model_dir / version / "model.joblib", SEED_SCORE)
        assert verdict["model_version"] == version
        assert verdict["anomaly_score"] == expected


async def test_activate_unknown_version_is_404(client: httpx.AsyncClient) -> None:
    """Activating a version that does not exist is a 404 and changes nothing."""
    v1 = await _train(client, 1)
    assert_problem(
        await client.post("/models/20000101000000/activate", headers=AUTH),
        404,
        kind="model-not-found",
    )
    assert (await client.get("/models", headers=AUTH)).json()["active"] == v1


async def test_activate_refuses_a_tampered_version(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A version whose artifact fails its checksum is refused with 409; LATEST stays put."""
    v1 = await _train(client, 1)
    v2 = await _train(client, 2)
    artifact = settings.model_dir / v1 / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    problem = assert_problem(
        await client.post(f"/models/{v1}/activate", headers=AUTH), 409, kind="model-integrity"
    )
    assert "sha256" in problem["detail"]
    assert (await client.get("/models", headers=AUTH)).json()["active"] == v2
    # and it is not scored with either
    response = await client.post(
        "/score", json=SEED_SCORE, headers=AUTH, params={"model_version": v1}
    )
    assert_problem(response, 409, kind="model-integrity")


async def test_signed_registry_refuses_unsigned_versions(
    client_for: Any, settings: Settings
) -> None:
    """With MODEL_SIGNING_KEY set, a version published without a signature cannot be activated."""
    async with client_for(model_signing_key=None, allow_unsigned_models=True) as unsigned:
        v1 = await _train(unsigned, 1)
    async with client_for(model_signing_key="s3cret") as signed:
        v2 = await _train(signed, 2)
        assert (await signed.get(f"/models/{v2}", headers=AUTH)).json()["signature"]
        problem = assert_problem(
            await signed.post(f"/models/{v1}/activate", headers=AUTH), 409, kind="model-integrity"
        )
        assert "not signed" in problem["detail"]


async def test_delete(client: httpx.AsyncClient, settings: Settings) -> None:
    """DELETE answers 204 for an inactive version, 409 for the active one, 404 for unknown."""
    v1 = await _train(client, 1)
    v2 = await _train(client, 2)
    await client.post("/score", json=SEED_SCORE, headers=AUTH, params={"model_version": v1})
    response = await client.delete(f"/models/{v1}", headers=AUTH)
    assert response.status_code == 204
    assert response.content == b""
    assert not (settings.model_dir / v1).exists()
    assert_problem(await client.delete(f"/models/{v1}", headers=AUTH), 404, kind="model-not-found")
    assert_problem(
        await client.post("/score", json=SEED_SCORE, headers=AUTH, params={"model_version": v1}),
        404,
    )
    problem = assert_problem(
        await client.delete(f"/models/{v2}", headers=AUTH), 409, kind="model-in-use"
    )
    assert "active" in problem["detail"]
    assert (settings.model_dir / v2).exists()


async def test_list_skips_a_version_with_broken_metadata(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A version whose meta.json is not JSON is left out of the list instead of failing it."""
    v1 = await _train(client, 1)
    v2 = await _train(client, 2)
    (settings.model_dir / v1 / "meta.json").write_text("{broken")
    body = (await client.get("/models", headers=AUTH)).json()
    assert [m["version"] for m in body["models"]] == [v2]
    assert_problem(await client.get(f"/models/{v1}", headers=AUTH), 409, kind="model-integrity")


@pytest.mark.filterwarnings("ignore:overflow encountered in:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered in:RuntimeWarning")
async def test_huge_finite_features_train_list_and_score(client: httpx.AsyncClient) -> None:
    """Features near the float64 limit (valid by the contract) train, list and score, no 500."""
    huge = [[1.7e308, -1.7e308], [1.6e308, 1e-300], [0.5, 0.25]]
    response = await client.post("/ingest", json={"records": records(huge)}, headers=AUTH)
    assert response.status_code == 201, response.text
    listed = await client.get("/models", headers=AUTH)
    assert listed.status_code == 200
    version = response.json()["model_version"]
    assert (await client.get(f"/models/{version}", headers=AUTH)).status_code == 200
    verdict = await client.post(
        "/score", json={**SEED_SCORE, "feature_vector": [1e300, -1e300]}, headers=AUTH
    )
    assert verdict.status_code == 200
