"""Swagger UI's assets come from this process and keep no key; /metrics has one spelling."""

from __future__ import annotations

import httpx

from tests.unit.api.api_support import assert_problem


async def test_docs_load_their_assets_locally(client: httpx.AsyncClient) -> None:
    """/docs names only local assets, which are served, and does not persist authorization."""
    page = (await client.get("/docs")).text
    assert "cdn" not in page.lower() and "https://" not in page
    assert '"persistAuthorization": false' in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{asset}" in page
        served = await client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200
        assert len(served.content) > 1000


async def test_metrics_answers_its_exact_path_only(client: httpx.AsyncClient) -> None:
    """/metrics is 200; /%6detrics (the same path once decoded) is a 404."""
    assert (await client.get("/metrics")).status_code == 200
    for variant in ("/%6detrics", "/%6D%65trics", "/metric%73"):
        response = await client.get(httpx.URL(variant))
        assert_problem(response, 404)
