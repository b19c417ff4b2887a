"""Every kind of bad input gets the right 4xx problem+json naming the field at fault, never 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.unit.api.api_support import AUTH, SEED_INGEST, SEED_SCORE, assert_problem, records

JSON = {**AUTH, "Content-Type": "application/json"}


def record(**changes: Any) -> dict[str, Any]:
    return {**SEED_SCORE, **changes}


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in SEED_SCORE.items() if k != name}


# (raw body, expected status, field at fault, problem kind)
SCORE_CASES: list[tuple[str, bytes, int, str | None, str]] = [
    ("truncated JSON", b'{"vehicle_id": ', 400, "", "malformed-json"),
    ("not JSON", b"vehicle VH-002 is fine", 400, "", "malformed-json"),
    ("trailing comma", b'{"vehicle_id": "VH-1",}', 400, "", "malformed-json"),
    ("not UTF-8", b'{"vehicle_id": "\xff"}', 400, "", "malformed-json"),
    ("nested too deeply", b"[" * 100_000, 400, "", "malformed-json"),
    ("empty body", b"", 422, "", "validation-error"),
    ("JSON array", b"[1, 2]", 422, "", "validation-error"),
    ("JSON null", b"null", 422, "", "validation-error"),
    (
        "missing feature_vector",
        json.dumps(without("feature_vector")).encode(),
        422,
        "feature_vector",
        "validation-error",
    ),
    (
        "missing vehicle_id",
        json.dumps(without("vehicle_id")).encode(),
        422,
        "vehicle_id",
        "validation-error",
    ),
    (
        "missing timestamp",
        json.dumps(without("timestamp")).encode(),
        422,
        "timestamp",
        "validation-error",
    ),
    (
        "string feature",
        json.dumps(record(feature_vector=[0.7, "0.2", 0.9, 0.5])).encode(),
        422,
        "feature_vector.1",
        "validation-error",
    ),
    (
        "bool feature",
        json.dumps(record(feature_vector=[True, 0.2, 0.9, 0.5])).encode(),
        422,
        "feature_vector.0",
        "validation-error",
    ),
    (
        "null feature",
        json.dumps(record(feature_vector=[0.7, None, 0.9, 0.5])).encode(),
        422,
        "feature_vector.1",
        "validation-error",
    ),
    (
        "feature_vector not a list",
        json.dumps(record(feature_vector="0.7,0.2")).encode(),
        422,
        "feature_vector",
        "validation-error",
    ),
    (
        "empty feature_vector",
        json.dumps(record(feature_vector=[])).encode(),
        422,
        "feature_vector",
        "validation-error",
    ),
    (
        "257 features",
        json.dumps(record(feature_vector=[0.1] * 257)).encode(),
        422,
        "feature_vector",
        "validation-error",
    ),
    (
        "NaN",
        b'{"vehicle_id": "VH-002", "timestamp": "2024-01-15T10:05:00Z", '
        b'"feature_vector": [NaN, 0.2, 0.9, 0.5]}',
        422,
        "feature_vector.0",
        "validation-error",
    ),
    (
        "Infinity",
        b'{"vehicle_id": "VH-002", "timestamp": "2024-01-15T10:05:00Z", '
        b'"feature_vector": [0.7, -Infinity, 0.9, 0.5]}',
        422,
        "feature_vector.1",
        "validation-error",
    ),
    (
        "overflowing number",
        b'{"vehicle_id": "VH-002", "timestamp": "2024-01-15T10:05:00Z", '
        b'"feature_vector": [0.7, 0.2, 1e400, 0.5]}',
        422,
        "feature_vector.2",
        "validation-error",
    ),
    (
        "numeric vehicle id",
        json.dumps(record(vehicle_id=42)).encode(),
        422,
        "vehicle_id",
        "validation-error",
    ),
    (
        "vehicle id with a space",
        json.dumps(record(vehicle_id="VH 002")).encode(),
        422,
        "vehicle_id",
        "validation-error",
    ),
    (
        "empty vehicle id",
        json.dumps(record(vehicle_id="")).encode(),
        422,
        "vehicle_id",
        "validation-error",
    ),
    (
        "65-character vehicle id",
        json.dumps(record(vehicle_id="V" * 65)).encode(),
        422,
        "vehicle_id",
        "validation-error",
    ),
    (
        "timestamp without a zone",
        json.dumps(record(timestamp="2024-01-15T10:05:00")).encode(),
        422,
        "timestamp",
        "validation-error",
    ),
    (
        "timestamp not a date",
        json.dumps(record(timestamp="yesterday")).encode(),
        422,
        "timestamp",
        "validation-error",
    ),
    (
        "timestamp on 30 February",
        json.dumps(record(timestamp="2024-02-30T10:05:00Z")).encode(),
        422,
        "timestamp",
        "validation-error",
    ),
    (
        "numeric timestamp",
        json.dumps(record(timestamp=1705313100)).encode(),
        422,
        "timestamp",
        "validation-error",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "field", "kind"),
    [case[1:] for case in SCORE_CASES],
    ids=[case[0] for case in SCORE_CASES],
)
async def test_bad_score_body(
    client: httpx.AsyncClient, body: bytes, status: int, field: str, kind: str
) -> None:
    """A bad /score body is refused with its exact status, naming the field at fault."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    response = await client.post("/score", content=body, headers=JSON)
    assert_problem(response, status, field=field, kind=kind)


@pytest.mark.parametrize("path", ["/score", "/ingest", "/ingest/from-topic"])
async def test_integer_past_the_digit_limit_is_a_400(client: httpx.AsyncClient, path: str) -> None:
    """A JSON integer of 5,000 digits (past Python's int-from-string limit) is a 400 problem."""
    body = b'{"vehicle_id": "VH-1", "feature_vector": [' + b"9" * 5000 + b"]}"
    response = await client.post(path, content=body, headers=JSON)
    problem = assert_problem(response, 400, field="", kind="malformed-json")
    assert "too long" in problem["detail"]


async def test_malformed_json_reports_its_position(client: httpx.AsyncClient) -> None:
    """A JSON syntax error is a 400 giving the line, column and offset of the fault."""
    response = await client.post("/score", content=b'{\n  "vehicle_id": "VH-1",,\n}', headers=JSON)
    problem = assert_problem(response, 400, field="", kind="malformed-json")
    error = problem["errors"][0]
    assert (error["line"], error["column"], error["position"]) == (2, 24, 25)
    assert "line 2 column 24" in problem["detail"]


async def test_timestamp_message_says_what_is_expected(client: httpx.AsyncClient) -> None:
    """A timestamp without a zone is explained in words, not with the regular expression."""
    response = await client.post("/score", json=record(timestamp="2024-01-15 10:05"), headers=AUTH)
    problem = assert_problem(response, 422, field="timestamp")
    assert "RFC 3339" in problem["errors"][0]["message"]


async def test_several_errors_are_all_named(client: httpx.AsyncClient) -> None:
    """Every field at fault is listed, not just the first."""
    bad = {"vehicle_id": 7, "timestamp": "soon", "feature_vector": [True]}
    problem = assert_problem(await client.post("/score", json=bad, headers=AUTH), 422)
    assert {e["field"] for e in problem["errors"]} == {
        "vehicle_id",
        "timestamp",
        "feature_vector.0",
    }


async def test_not_json_content_type_is_415(client: httpx.AsyncClient) -> None:
    """A form or text body is refused as unsupported media, before any parsing."""
    response = await client.post(
        "/score",
        content=json.dumps(SEED_SCORE),
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert_problem(response, 415, kind="unsupported-media-type")


async def test_json_without_content_type_is_accepted(client: httpx.AsyncClient) -> None:
    """A JSON body sent without Content-Type (curl -d style clients) is read as JSON."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    response = await client.post("/score", content=json.dumps(SEED_SCORE), headers=AUTH)
    assert response.status_code == 200


async def test_wrong_dimension_at_score(client: httpx.AsyncClient) -> None:
    """A record with 3 features against a 4-feature model is a 422 on feature_vector."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    response = await client.post(
        "/score", json=record(feature_vector=[0.1, 0.2, 0.3]), headers=AUTH
    )
    problem = assert_problem(response, 422, field="feature_vector", kind="dimension-mismatch")
    assert "expects 4" in problem["detail"]


async def test_score_before_any_training(client: httpx.AsyncClient) -> None:
    """Scoring before any model exists is a 404 saying no model has been trained yet."""
    problem = assert_problem(
        await client.post("/score", json=SEED_SCORE, headers=AUTH), 404, kind="no-active-model"
    )
    assert "no model has been trained yet" in problem["detail"]


@pytest.mark.parametrize("version", ["20000101000000", "20000101000000-3", "../../etc/passwd", "x"])
async def test_unknown_model_version_at_score(client: httpx.AsyncClient, version: str) -> None:
    """?model_version= naming no version (or no valid name) is a 404."""
    await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
    response = await client.post(
        "/score", params={"model_version": version}, json=SEED_SCORE, headers=AUTH
    )
    assert_problem(response, 404, kind="model-not-found")


# --- /ingest ---------------------------------------------------------------------------------


async def test_empty_records_list(client: httpx.AsyncClient) -> None:
    """An /ingest with no records is a 422 on records."""
    response = await client.post("/ingest", json={"records": []}, headers=AUTH)
    assert_problem(response, 422, field="records", kind="validation-error")


async def test_missing_records(client: httpx.AsyncClient) -> None:
    """An /ingest body without records is a 422 on records."""
    response = await client.post("/ingest", json={"params": {}}, headers=AUTH)
    assert_problem(response, 422, field="records")


async def test_mixed_dimensions(client: httpx.AsyncClient) -> None:
    """Records of different lengths are a 422 naming the first record that differs."""
    batch = records([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6, 0.7]])
    response = await client.post("/ingest", json={"records": batch}, headers=AUTH)
    problem = assert_problem(
        response, 422, field="records.2.feature_vector", kind="training-rejected"
    )
    assert "records[2]" in problem["detail"]


async def test_bad_record_inside_a_batch(client: httpx.AsyncClient) -> None:
    """A NaN in the third record of a batch is a 422 on records.2.feature_vector.1."""
    raw = json.dumps({"records": records([[0.1, 0.2], [0.3, 0.4]])})[:-2]
    raw += (
        ', {"vehicle_id": "V", "timestamp": "2024-01-15T10:00:00Z", "feature_vector": [1, NaN]}]}'
    )
    response = await client.post("/ingest", content=raw.encode(), headers=JSON)
    assert_problem(response, 422, field="records.2.feature_vector.1")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n_estimators": 0}, "params.n_estimators"),
        ({"n_estimators": "many"}, "params.n_estimators"),
        ({"contamination": 0.9}, "params.contamination"),
        ({"learning_rate": 0.1}, "params.learning_rate"),
        ({"max_samples": 50}, "params.max_samples"),
    ],
    ids=str,
)
async def test_bad_training_params(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    """Out-of-range, unknown or inapplicable training parameters are a 422 naming the parameter."""
    batch = records([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    response = await client.post("/ingest", json={"records": batch, "params": params}, headers=AUTH)
    assert_problem(response, 422, field=field)


async def test_bad_activate_query(client: httpx.AsyncClient) -> None:
    """?activate=perhaps is a 422 on the activate query parameter."""
    response = await client.post("/ingest?activate=perhaps", json=SEED_INGEST, headers=AUTH)
    problem = assert_problem(response, 422, field="activate")
    assert problem["errors"][0]["location"] == "query"


async def test_too_few_records(client_for: Callable[..., Any]) -> None:
    """Fewer records than MIN_TRAINING_RECORDS is a 422 on records that says how many are needed."""
    async with client_for(min_training_records=5) as client:
        batch = records([[0.1, 0.2]] * 4)
        response = await client.post("/ingest", json={"records": batch}, headers=AUTH)
        problem = assert_problem(response, 422, field="records", kind="training-rejected")
        assert "at least 5" in problem["detail"]
        ok = await client.post("/ingest", json={"records": records([[0.1, 0.2]] * 5)}, headers=AUTH)
        assert ok.status_code == 201


async def test_too_many_records(client_for: Callable[..., Any]) -> None:
    """More records than INGEST_MAX_RECORDS is a 413 that names the limit."""
    async with client_for(ingest_max_records=3) as client:
        batch = records([[0.1, 0.2]] * 4)
        response = await client.post("/ingest", json={"records": batch}, headers=AUTH)
        problem = assert_problem(response, 413, kind="too-many-records")
        assert "4 records" in problem["detail"]
        assert "limit is 3" in problem["detail"]
        ok = await client.post("/ingest", json={"records": batch[:3]}, headers=AUTH)
        assert ok.status_code == 201


def _big_batch() -> bytes:
    return json.dumps({"records": records([[0.1, 0.2, 0.3]] * 100)}).encode()


async def test_too_large_body_by_content_length(client_for: Callable[..., Any]) -> None:
    """A body whose Content-Length is over INGEST_MAX_BODY_BYTES is a 413 before it is read."""
    async with client_for(ingest_max_body_bytes=2048) as client:
        body = _big_batch()
        assert len(body) > 2048
        response = await client.post("/ingest", content=body, headers=JSON)
        problem = assert_problem(response, 413, kind="payload-too-large")
        assert "limit is 2048 bytes" in problem["detail"]


async def test_too_large_chunked_body(client_for: Callable[..., Any]) -> None:
    """A chunked body (no Content-Length) is counted as it arrives and refused past the limit."""
    body = _big_batch()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 500):
            yield body[start : start + 500]

    async with client_for(ingest_max_body_bytes=2048) as client:
        response = await client.post("/ingest", content=chunks(), headers=JSON)
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_problem(response, 413, kind="payload-too-large")


async def test_small_chunked_body_is_accepted(client: httpx.AsyncClient) -> None:
    """A chunked body under the limit trains as usual."""
    body = json.dumps(SEED_INGEST).encode()

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:10]
        yield body[10:]

    response = await client.post("/ingest", content=chunks(), headers=JSON)
    assert response.status_code == 201


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    """An unknown path is a 404 problem; a known path with another method a 405 with Allow."""
    assert_problem(await client.get("/nowhere", headers=AUTH), 404)
    response = await client.put("/score", headers=AUTH)
    assert_problem(response, 405)
    assert response.headers["allow"] == "POST"
