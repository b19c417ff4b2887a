"""A version the validated loader refuses is answered 409 with the reason, never a 500.

Each test forges a version as an attacker (or a broken publisher) with the signing key would:
the files are edited and the sha256 and signature made to match, so only the loader's own
checks (the estimator's type and width, the version's name) stand in the way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import joblib
from fastapi import FastAPI

from shared.registry import LATEST_FILE, META_FILE, MODEL_FILE
from shared.registry_files import sha256_file, sign
from tests.unit.api.api_support import AUTH, SEED_SCORE, SIGNING_KEY, assert_problem, records

TRAIN = {"records": records([[0.1 * i, 1.0 - 0.1 * i, 0.5, 0.2] for i in range(10)])}


async def _two_versions(client: httpx.AsyncClient) -> tuple[str, str]:
    first = (await client.post("/ingest", json=TRAIN, headers=AUTH)).json()["model_version"]
    second = (await client.post("/ingest", json=TRAIN, headers=AUTH)).json()["model_version"]
    return first, second


def _reseal(directory: Path, **changes: Any) -> None:
    """Rewrite meta.json with ``changes``, its sha256 and its signature made to match."""
    path = directory / META_FILE
    meta = json.loads(path.read_text())
    meta.update(changes)
    meta["sha256"] = sha256_file(directory / MODEL_FILE)
    meta["signature"] = sign(meta, SIGNING_KEY.encode())
    path.write_text(json.dumps(meta))


async def _refused_everywhere(client: httpx.AsyncClient, model_dir: Path, bad: str) -> None:
    active = (model_dir / LATEST_FILE).read_text().strip()
    scored = await client.post(f"/score?model_version={bad}", json=SEED_SCORE, headers=AUTH)
    assert_problem(scored, 409, kind="model-integrity")
    activated = await client.post(f"/models/{bad}/activate", headers=AUTH)
    problem = assert_problem(activated, 409, kind="model-integrity")
    assert bad in problem["detail"]
    assert (model_dir / LATEST_FILE).read_text().strip() == active
    shadow = await client.post(f"/models/{bad}/shadow", headers=AUTH)
    assert_problem(shadow, 409, kind="model-integrity")
    # the active version still scores
    assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).status_code == 200


async def test_a_pickled_dict_with_matching_digests_is_refused(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A dict pickled as model.joblib, sha256 and signature matching: 409 at score and activate."""
    model_dir = tmp_path / "models"
    bad, _ = await _two_versions(client)
    joblib.dump({"not": "a model"}, model_dir / bad / MODEL_FILE)
    _reseal(model_dir / bad)
    await _refused_everywhere(client, model_dir, bad)


async def test_an_edited_feature_count_is_refused(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """meta.json's n_features edited (and re-signed): 409 naming the mismatch, not a 500."""
    model_dir = tmp_path / "models"
    bad, _ = await _two_versions(client)
    _reseal(model_dir / bad, n_features=7)
    await _refused_everywhere(client, model_dir, bad)
    response = await client.post(f"/models/{bad}/activate", headers=AUTH)
    assert "7 features" in response.json()["detail"]


async def test_a_version_copied_under_another_name_is_refused(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Version A's signed files copied into directory B are neither served nor activated as B."""
    model_dir = tmp_path / "models"
    first, _ = await _two_versions(client)
    copy = "20991231235959"
    shutil.copytree(model_dir / first, model_dir / copy)
    await _refused_everywhere(client, model_dir, copy)


async def test_readiness_fails_while_the_active_version_is_refused(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """LATEST pointed at a refused version: /health/ready is 503 and /score a 409, not a 500."""
    model_dir = tmp_path / "models"
    bad, _ = await _two_versions(client)
    assert (await client.get("/health/ready")).status_code == 200
    joblib.dump({"not": "a model"}, model_dir / bad / MODEL_FILE)
    _reseal(model_dir / bad)
    (model_dir / LATEST_FILE).write_text(bad + "\n")  # another process moved the pointer
    app.state.services.models.poll_seconds = 0.0  # as once MODEL_POLL_SECONDS have passed
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "active model refused"
    assert_problem(await client.post("/score", json=SEED_SCORE, headers=AUTH), 409)


class _Payload:
    """Unpickling this writes a file: proof that loading ran the artifact's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "ran"))


async def test_a_hand_made_pickle_with_a_matching_sha256_is_never_unpickled(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A code-running pickle with its sha256 updated (no key to re-sign): refused, not run."""
    model_dir = tmp_path / "models"
    bad, _ = await _two_versions(client)
    marker = tmp_path / "pwned"
    joblib.dump(_Payload(marker), model_dir / bad / MODEL_FILE)
    meta = json.loads((model_dir / bad / META_FILE).read_text())
    meta["sha256"] = sha256_file(model_dir / bad / MODEL_FILE)
    (model_dir / bad / META_FILE).write_text(json.dumps(meta))
    for response in (
        await client.post(f"/score?model_version={bad}", json=SEED_SCORE, headers=AUTH),
        await client.post(f"/models/{bad}/activate", headers=AUTH),
    ):
        assert "invalid signature" in assert_problem(response, 409)["detail"]
    assert not marker.exists()
