"""``POST /score`` through its fast path answers as the route would, and reads LATEST rarely."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from starlette.datastructures import Headers

import api.score_fast
from api.app import create_app
from api.score_fast import ScoreDispatch
from shared.registry import ModelRegistry
from tests.unit.api.api_support import (
    AUTH,
    SEED_INGEST,
    SEED_SCORE,
    assert_problem,
    make_settings,
    serve,
)


async def test_long_model_version_query_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    """?model_version= longer than 64 characters is a 422 naming the query parameter."""
    response = await client.post(f"/score?model_version={'9' * 65}", json=SEED_SCORE, headers=AUTH)
    problem = assert_problem(response, 422, field="model_version", kind="validation-error")
    assert problem["errors"][0]["location"] == "query"


async def test_bearer_and_header_keys_both_work(client: httpx.AsyncClient) -> None:
    """The fast path takes X-API-Key and Authorization: Bearer, as the dependency does."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    bearer = {"Authorization": f"Bearer {AUTH['X-API-Key']}"}
    assert (await client.post("/score", json=SEED_SCORE, headers=bearer)).status_code == 200
    assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).status_code == 200
    assert_problem(await client.post("/score", json=SEED_SCORE), 401)


async def test_latest_is_read_once_per_poll_interval(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Many /score calls within MODEL_POLL_SECONDS read LATEST once, not once per request."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    registry: ModelRegistry = app.state.services.registry
    reads = 0
    original = registry.active_version

    def counting() -> str | None:
        nonlocal reads
        reads += 1
        return original()

    registry.active_version = counting  # type: ignore[method-assign]  # count the reads
    for _ in range(50):
        assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).status_code == 200
    assert reads <= 1


def _samples(metrics: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }


async def test_score_skips_fastapis_outer_layers_but_keeps_the_apis_own(
    app: FastAPI, client: httpx.AsyncClient, json_log: io.StringIO
) -> None:
    """POST /score goes from the ScoreDispatch to the request middleware: still its request
    id, its access line, its metrics, and a 500 problem for an unhandled exception."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    response = await client.post(
        "/score", json=SEED_SCORE, headers={**AUTH, "X-Request-ID": "score-1"}
    )
    assert response.status_code == 200 and response.headers["X-Request-ID"] == "score-1"
    assert isinstance(app.middleware_stack, ScoreDispatch)
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    (access,) = [x for x in lines if x["request_id"] == "score-1" and x["logger"] == "api.access"]
    assert access["message"] == "POST /score 200" and access["caller"]

    def broken(*args: object) -> None:
        raise RuntimeError("scoring broke")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api.score_fast, "verdict", broken)
        failed = await client.post("/score", json=SEED_SCORE, headers=AUTH)
    assert_problem(failed, 500)
    assert "scoring broke" not in failed.text
    samples = _samples((await client.get("/metrics")).text)
    prefix = "vehicle_anomaly_api_http_request"
    for status, count in (("200", 1), ("500", 1)):
        labels = (("method", "POST"), ("route", "/score"), ("status", status))
        assert samples[(prefix + "s_total", labels)] == count
        assert samples[(prefix + "_duration_seconds_count", labels)] == count


async def test_the_answer_carries_each_of_its_headers_once(client: httpx.AsyncClient) -> None:
    """The fast path sends its two messages itself: a JSON body of the length it declares, and
    the request id, once."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    response = await client.post("/score", json=SEED_SCORE, headers=AUTH)
    assert response.status_code == 200
    names = [name.decode().lower() for name, _ in response.headers.raw]
    assert sorted(names) == ["content-length", "content-type", "x-request-id"]
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json()["vehicle_id"] == SEED_SCORE["vehicle_id"]


async def test_a_body_in_several_chunks_is_read_whole(client: httpx.AsyncClient) -> None:
    """The fast path's own body reader joins a body sent in pieces."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    body = json.dumps(SEED_SCORE).encode()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    response = await client.post("/score", content=pieces(), headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["vehicle_id"] == SEED_SCORE["vehicle_id"]


async def test_score_is_traced_when_tracing_is_on(tmp_path: Path) -> None:
    """With an exporter, the OpenTelemetry instrumentation wraps the whole stack (no
    ScoreDispatch), and POST /score has its SERVER span."""
    exporter = InMemorySpanExporter()
    app = create_app(make_settings(tmp_path / "models"), span_exporter=exporter)
    async with serve(app) as client:
        await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
        assert (await client.post("/score", json=SEED_SCORE, headers=AUTH)).status_code == 200
        assert not isinstance(app.middleware_stack, ScoreDispatch)
    names = [s.name for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert "POST /score" in names


def test_the_fast_path_reads_the_first_of_each_header_as_starlette_does() -> None:
    """X-API-Key, Authorization and Content-Type read in one pass: each the first of its name,
    the value Starlette's ``Headers.get`` gives the route's dependencies."""
    raw = [
        (b"host", b"x"),
        (b"authorization", b"Bearer first"),
        (b"x-api-key", b"k\xe9y"),
        (b"content-type", b"text/plain"),
        (b"x-api-key", b"second"),
        (b"authorization", b"Bearer second"),
        (b"content-type", b"application/json"),
    ]
    headers = Headers(raw=raw)
    expected = (headers.get("x-api-key"), headers.get("authorization"), headers.get("content-type"))
    assert (
        api.score_fast._score_headers(raw) == expected == ("k\xe9y", "Bearer first", "text/plain")
    )
    assert api.score_fast._score_headers([(b"host", b"x")]) == (None, None, None)


async def test_a_bad_header_key_with_a_good_bearer_is_let_in(client: httpx.AsyncClient) -> None:
    """As the dependency does, the bearer token is tried when X-API-Key is not a key."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    both = {"X-API-Key": "not-a-key", "Authorization": f"Bearer {AUTH['X-API-Key']}"}
    assert (await client.post("/score", json=SEED_SCORE, headers=both)).status_code == 200
    other = {"X-API-Key": "not-a-key", "Authorization": "Bearer not-either"}
    assert_problem(await client.post("/score", json=SEED_SCORE, headers=other), 401)
