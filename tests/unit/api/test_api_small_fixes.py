"""The smaller findings of the api's review: a validated ``?against=``, a relative redirect."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.api.api_support import AUTH, SEED_INGEST, assert_problem


@pytest.mark.parametrize("against", ["../../canary", "x", "2024011510000"])
async def test_shadow_against_must_be_a_version_name(
    client: httpx.AsyncClient, against: str
) -> None:
    """?against= that is not a version name is a 422 naming it, never echoed into a path."""
    version = (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).json()["model_version"]
    response = await client.get(
        f"/models/{version}/shadow", params={"against": against}, headers=AUTH
    )
    problem = assert_problem(response, 422, field="against", kind="validation-error")
    assert "canary" not in problem["detail"]


async def test_trailing_slash_redirect_ignores_the_host_header(client: httpx.AsyncClient) -> None:
    """GET /models/ redirects to the relative /models, whatever Host says."""
    response = await client.get(
        "/models/?x=1", headers={**AUTH, "Host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"] == "/models?x=1"
