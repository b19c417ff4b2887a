"""Probes, health details and Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from tests.unit.api.api_support import AUTH, SEED_INGEST, SEED_SCORE, make_settings, serve


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_healthz(client: httpx.AsyncClient) -> None:
    """Liveness answers 200 {"status": "ok"}."""
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_without_a_model(client: httpx.AsyncClient) -> None:
    """Readiness needs a readable registry, not a model."""
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_ready_is_503_when_the_registry_is_gone(tmp_path: Path) -> None:
    """Readiness is 503 and /health degraded when the registry directory disappears."""
    settings = make_settings(tmp_path / "models")
    async with serve(create_app(settings)) as client:
        settings.model_dir.rmdir()
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "registry unreadable"
        health = (await client.get("/health")).json()
        assert health["status"] == "degraded"
        assert health["registry"] == {"readable": False, "versions": None}


async def test_health_details(client: httpx.AsyncClient) -> None:
    """/health reports the registry and, once trained, the active version and its age."""
    before = (await client.get("/health")).json()
    assert before["status"] == "ok"
    assert before["registry"] == {"readable": True, "versions": 0}
    assert before["model"] == {
        "version": None,
        "age_seconds": None,
        "n_features": None,
        "error": None,
    }
    assert before["version"]
    trained = (await client.post("/ingest", json=SEED_INGEST, headers=AUTH)).json()
    after = (await client.get("/health")).json()
    assert after["model"]["version"] == trained["model_version"]
    assert 0 <= after["model"]["age_seconds"] < 60
    assert after["model"]["n_features"] == 4
    assert after["registry"]["versions"] == 1
    assert after["uptime_seconds"] >= 0


async def test_metrics_count_requests_by_route_and_status(client: httpx.AsyncClient) -> None:
    """/metrics counts requests by route template and status, and times trainings."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    await client.post("/score", json=SEED_SCORE, headers=AUTH)
    await client.post("/score", json=SEED_SCORE)
    await client.get("/models/20000101000000", headers=AUTH)
    await client.get("/no/such/path")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    prefix = "vehicle_anomaly_api_"

    def requests(method: str, route: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return samples.get((prefix + "http_requests_total", labels), 0.0)

    assert requests("POST", "/ingest", "201") == 1
    assert requests("POST", "/score", "200") == 1
    assert requests("POST", "/score", "401") == 1
    assert requests("GET", "/models/{version}", "404") == 1
    assert requests("GET", "<unmatched>", "404") == 1
    duration_count = (
        prefix + "http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/score"), ("status", "200")),
    )
    assert samples[duration_count] == 1
    assert samples[(prefix + "training_duration_seconds_count", ())] == 1
    assert samples[(prefix + "trainings_total", (("outcome", "published"),))] == 1
    assert samples[(prefix + "trained_records_total", ())] == 1
    assert samples[(prefix + "scores_total", (("verdict", "normal"),))] == 1
    assert samples[(prefix + "model_loads_total", ())] == 1


async def test_rejected_training_is_counted(client: httpx.AsyncClient) -> None:
    """A training refused for its data counts as rejected, not published."""
    mixed = {
        "records": [
            {**SEED_INGEST["records"][0]},
            {**SEED_INGEST["records"][0], "feature_vector": [1.0]},
        ]
    }
    assert (await client.post("/ingest", json=mixed, headers=AUTH)).status_code == 422
    samples = _samples((await client.get("/metrics")).text)
    assert samples[("vehicle_anomaly_api_trainings_total", (("outcome", "rejected"),))] == 1


async def test_docs_and_openapi(client: httpx.AsyncClient) -> None:
    """/docs serves Swagger UI; the schema declares both security schemes and the examples."""
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of the keys in API_KEYS (admin) or API_READ_KEYS (read).",
    }
    assert schemes["Bearer"]["scheme"] == "bearer"
    ingest = schema["paths"]["/ingest"]["post"]
    assert {"ApiKey": []} in ingest["security"]
    assert {"Bearer": []} in ingest["security"]
    body = ingest["requestBody"]["content"]["application/json"]
    assert body["examples"]["seed"]["value"] == SEED_INGEST
    assert set(ingest["responses"]) >= {"201", "400", "401", "413", "415", "422", "429"}
    problem = ingest["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert "Retry-After" in ingest["responses"]["429"]["headers"]
    score = schema["paths"]["/score"]["post"]
    assert score["requestBody"]["content"]["application/json"]["examples"]["seed"]["value"] == (
        SEED_SCORE
    )
    assert "TelemetryRecord" in schema["components"]["schemas"]
    assert "TrainingRequest" in schema["components"]["schemas"]
    for path in ("/healthz", "/health", "/health/ready", "/metrics"):
        assert "security" not in schema["paths"][path]["get"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                assert any("example" in c or "examples" in c for c in content.values()) or (
                    status == "204"
                ), f"{method.upper()} {path} {status} has no example"
