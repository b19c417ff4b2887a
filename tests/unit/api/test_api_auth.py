"""API keys, rate limits, the refusal to start without keys, AUTH_DISABLED and CORS."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.auth import KeyRing, key_identity
from shared.errors import ConfigurationError
from tests.unit.api.api_support import (
    API_KEY,
    AUTH,
    OTHER_KEY,
    SEED_INGEST,
    assert_problem,
    make_settings,
    serve,
)

JOB_ID = "0123456789abcdef0123456789abcdef"
PROTECTED = [
    ("POST", "/ingest"),
    ("POST", "/score"),
    ("GET", "/models"),
    ("GET", "/models/20240115100000"),
    ("POST", "/models/20240115100000/activate"),
    ("DELETE", "/models/20240115100000"),
    ("GET", "/models/20240115100000/drift"),
    ("GET", "/models/20240115100000/shadow"),
    ("POST", "/models/20240115100000/shadow"),
    ("DELETE", "/models/20240115100000/shadow"),
    ("POST", "/ingest/from-topic"),
    ("GET", f"/jobs/{JOB_ID}"),
]
PUBLIC = ["/health", "/health/ready", "/healthz", "/metrics", "/docs", "/openapi.json"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_no_key_is_401_with_challenges(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Every protected route answers 401 problem+json with Bearer and APIKey challenges."""
    response = await client.request(method, path, json=SEED_INGEST)
    problem = assert_problem(response, 401, kind="unauthorized")
    assert "X-API-Key" in problem["detail"]
    challenges = response.headers.get_list("www-authenticate")
    assert any(c.startswith("Bearer") for c in challenges)
    assert any(c.startswith("APIKey") for c in challenges)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "wrong"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {API_KEY}"},
        {"X-API-Key": API_KEY[:-1]},
        {"X-API-Key": API_KEY + "x"},
        {"X-API-Key": "clé-non-ascii"},
    ],
    ids=["wrong key", "wrong bearer", "basic scheme", "prefix", "longer", "non-ascii"],
)
async def test_wrong_key_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """A key that is not configured (or not sent as a Bearer token) is refused with 401."""
    encoded = {k: v.encode() for k, v in headers.items()}
    response = await client.get("/models", headers=encoded)  # type: ignore[arg-type]  # httpx takes bytes values too
    assert_problem(response, 401, kind="unauthorized")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": API_KEY},
        {"X-API-Key": OTHER_KEY},
        {"Authorization": f"Bearer {API_KEY}"},
        {"Authorization": f"bearer {OTHER_KEY}"},
    ],
    ids=["x-api-key", "second key", "bearer", "lower-case scheme"],
)
async def test_right_key_is_accepted(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Each configured key is accepted in either header."""
    response = await client.get("/models", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"active": None, "candidate": None, "models": []}


async def test_every_operation_but_the_public_ones_needs_a_key(client: httpx.AsyncClient) -> None:
    """The OpenAPI document puts every operation but the public ones behind the two schemes."""
    schema = (await client.get("/openapi.json")).json()
    secured = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "security" in operation:
                assert operation["security"] == [{"ApiKey": []}, {"Bearer": []}]
                secured.add((method.upper(), path))
            else:
                assert path in PUBLIC, f"{method.upper()} {path} has no security"
    documented = {
        (m, p.replace("20240115100000", "{version}").replace(JOB_ID, "{job_id}"))
        for m, p in PROTECTED
    }
    assert secured == documented


@pytest.mark.parametrize("path", PUBLIC)
async def test_probes_metrics_and_docs_are_public(client: httpx.AsyncClient, path: str) -> None:
    """Probes, metrics and the docs need no key."""
    response = await client.get(path)
    assert response.status_code == 200


def test_key_ring_compares_every_key() -> None:
    """The key ring matches any configured key and names it by a hash, never by the key."""
    ring = KeyRing.from_settings(make_settings(Path("/tmp/unused")))
    assert ring.match(API_KEY) == key_identity(API_KEY)
    assert ring.match(OTHER_KEY) == key_identity(OTHER_KEY)
    assert ring.match("nope") is None
    assert API_KEY not in key_identity(API_KEY)


def test_no_keys_refuses_to_start(tmp_path: Path) -> None:
    """Without API_KEYS (and auth not disabled) create_app raises a ConfigurationError."""
    with pytest.raises(ConfigurationError, match=r"API_KEYS is empty: set API_KEYS=key1,key2"):
        create_app(make_settings(tmp_path, api_keys=""))


async def test_auth_disabled_opens_the_routes(
    client_for: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """AUTH_DISABLED=true with no keys starts, warns, and serves without a key."""
    caplog.set_level(logging.WARNING, logger="api")
    async with client_for(api_keys="", auth_disabled=True) as client:
        response = await client.post("/ingest", json=SEED_INGEST)
        assert response.status_code == 201
    assert any(
        "AUTH_DISABLED" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )


async def test_rate_limit_gives_429_with_retry_after(client_for: Callable[..., Any]) -> None:
    """Past the burst a key gets 429 problem+json with an integer Retry-After of at least 1."""
    async with client_for(rate_limit_per_second=0.5, rate_limit_burst=3) as client:
        statuses = [(await client.get("/models", headers=AUTH)).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        response = await client.get("/models", headers=AUTH)
        problem = assert_problem(response, 429, kind="rate-limited")
        assert "0.5 requests/s" in problem["detail"]
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= 2
        # another key has its own bucket; probes are never limited
        assert (await client.get("/models", headers={"X-API-Key": OTHER_KEY})).status_code == 200
        for _ in range(5):
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200


async def test_rate_limit_by_client_address_when_auth_disabled(
    client_for: Callable[..., Any],
) -> None:
    """With auth disabled the bucket is the client's address."""
    async with client_for(
        api_keys="", auth_disabled=True, rate_limit_per_second=0.1, rate_limit_burst=1
    ) as client:
        assert (await client.get("/models")).status_code == 200
        response = await client.get("/models")
        assert_problem(response, 429)
        assert int(response.headers["retry-after"]) >= 1


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    """Without CORS_ORIGINS no Access-Control header is sent."""
    response = await client.get("/healthz", headers={"Origin": "https://fleet.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_cors_origins(tmp_path: Path) -> None:
    """CORS_ORIGINS allows those origins (preflight included, without a key) and no others."""
    app = create_app(make_settings(tmp_path, cors_origins="https://fleet.example"))
    async with serve(app) as client:
        preflight = await client.options(
            "/score",
            headers={
                "Origin": "https://fleet.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://fleet.example"
        refused = await client.get("/models", headers={**AUTH, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in refused.headers
        allowed = await client.get("/models", headers={**AUTH, "Origin": "https://fleet.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://fleet.example"
        assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
