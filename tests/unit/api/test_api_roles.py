"""Read keys score and read; only admin keys train, activate, delete and change the shadow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.auth import KeyRing, key_identity
from tests.unit.api.api_support import AUTH, SEED_INGEST, SEED_SCORE, assert_problem

READ_KEY = "read-key-1"
READ = {"X-API-Key": READ_KEY}
VERSION = "20240115100000"
ADMIN_ONLY = [
    ("POST", "/ingest"),
    ("POST", "/ingest/from-topic"),
    ("POST", f"/models/{VERSION}/activate"),
    ("DELETE", f"/models/{VERSION}"),
    ("POST", f"/models/{VERSION}/shadow"),
    ("DELETE", f"/models/{VERSION}/shadow"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ONLY)
async def test_a_read_key_cannot_change_anything(
    client_for: Callable[..., Any], method: str, path: str
) -> None:
    """A read key on a training, activation, deletion or shadow route is a 403 problem."""
    async with client_for(api_read_keys=READ_KEY) as client:
        response = await client.request(method, path, json=SEED_INGEST, headers=READ)
        assert "API_KEYS" in assert_problem(response, 403, kind="forbidden")["detail"]
        assert (await client.get("/models", headers=AUTH)).json()["models"] == []


async def test_a_read_key_scores_lists_and_reads(client_for: Callable[..., Any]) -> None:
    """A read key may score, list the versions and read one's metadata and reports."""
    async with client_for(api_read_keys=READ_KEY) as client:
        version = (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).json()[
            "model_version"
        ]
        assert (await client.post("/score", json=SEED_SCORE, headers=READ)).status_code == 200
        assert (await client.get("/models", headers=READ)).json()["active"] == version
        assert (await client.get(f"/models/{version}", headers=READ)).status_code == 200
        assert (await client.get(f"/models/{version}/shadow", headers=READ)).status_code == 200


def test_a_key_in_both_lists_is_an_admin_key() -> None:
    """The key ring names a key's role; a key listed as admin and read is an admin."""
    from pydantic import SecretStr

    ring = KeyRing(
        [SecretStr("a"), SecretStr("both")], read_keys=[SecretStr("r"), SecretStr("both")]
    )
    assert ring.identify("a") == (key_identity("a"), "admin")
    assert ring.identify("r") == (key_identity("r"), "read")
    assert ring.identify("both") == (key_identity("both"), "admin")
    assert ring.identify("nope") is None


async def test_read_keys_alone_are_enough_to_start(client_for: Callable[..., Any]) -> None:
    """A scoring-only replica may have read keys and no admin key."""
    async with client_for(api_keys="", api_read_keys=READ_KEY) as client:
        assert (await client.get("/models", headers=READ)).status_code == 200
        assert_problem(await client.post("/ingest", json=SEED_INGEST, headers=READ), 403)


async def test_a_read_key_sees_403_before_the_body_is_read(client_for: Callable[..., Any]) -> None:
    """A read key's /ingest with a body that is not JSON is a 403, not a 400: nothing is parsed."""
    async with client_for(api_read_keys=READ_KEY) as client:
        response = await client.post(
            "/ingest", content=b"{not json", headers={**READ, "Content-Type": "application/json"}
        )
        assert_problem(response, 403)


async def test_openapi_names_the_403_on_admin_routes(client: httpx.AsyncClient) -> None:
    """The OpenAPI document lists 403 on the admin routes and not on /score."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "403" in paths["/ingest"]["post"]["responses"]
    assert "403" in paths["/models/{version}/activate"]["post"]["responses"]
    assert "403" not in paths["/score"]["post"]["responses"]
