"""Large ``/ingest`` bodies, decoded in a child process, answer exactly as small ones do.

Each body is sent twice: once below ``PROCESS_THRESHOLD_BYTES`` (decoded in the api's own
process) and once with the threshold at zero (every body goes to a child), and the two
answers are compared field by field, request id aside.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import api.body
from api.app import create_app
from tests.unit.api.api_support import AUTH, SEED_INGEST, make_settings, records, serve

JSON = {**AUTH, "Content-Type": "application/json"}
ROWS = [[0.1 * (i % 7), 0.2 + 0.01 * (i % 5), 0.3, 0.05 * (i % 11)] for i in range(120)]
BATCH = {"records": records(ROWS), "params": {"detector": "point", "random_state": 3}}
CONTEXT_BATCH = {
    "records": records(ROWS[:60], "VH-1") + records(ROWS[60:], "VH-2"),
    "params": {"random_state": 3},
}

# small limits, so that small bodies meet them
LIMITS = {"ingest_max_records": 5, "training_max_values_in_flight": 100, "min_training_records": 3}
BAD_BODIES: dict[str, bytes] = {
    "malformed": b'{"records": [',
    "not_utf8": b'{"records": "\xff"}',
    "huge_integer": b'{"records": [{"feature_vector": [' + b"9" * 5000 + b"]}]}",
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "not_an_object": b"[1, 2, 3]",
    "no_records": b'{"params": {}}',
    "empty_records": b'{"records": []}',
    "schema": (
        b'{"records": [{"vehicle_id": "", "timestamp": "yesterday", '
        b'"feature_vector": [NaN, "x"]}], "params": {"n_estimators": -1}}'
    ),
    "too_many_records": b'{"records": [' + b",".join([b"{}"] * 6) + b"]}",
    "too_much_work": httpx.Request(
        "POST", "/", json={"records": records([[0.1] * 40] * 3)}
    ).content,
    "mixed_widths": httpx.Request(
        "POST", "/", json={"records": records([[0.1, 0.2], [0.1, 0.2, 0.3]])}
    ).content,
    "too_few": httpx.Request("POST", "/", json={"records": records([[0.1, 0.2]] * 2)}).content,
}


@pytest.fixture
def apps(tmp_path: Path) -> Callable[..., FastAPI]:
    made: list[FastAPI] = []

    def factory(**overrides: Any) -> FastAPI:
        settings = make_settings(tmp_path / f"models-{len(made)}", **overrides)
        made.append(create_app(settings))
        return made[-1]

    return factory


def _answer(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    body.pop("request_id", None)
    headers = {k: response.headers.get(k) for k in ("content-type", "retry-after")}
    return {"status": response.status_code, "headers": headers, "body": body}


async def _post(app: FastAPI, body: bytes) -> dict[str, Any]:
    async with serve(app) as client:
        return _answer(await client.post("/ingest", content=body, headers=JSON))


async def test_bad_bodies_answer_the_same_from_a_child_process(
    apps: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Malformed JSON, bad UTF-8, a 5,000-digit integer, deep nesting, schema errors, too many
    records, too many values, mixed widths, too few records: the same status, headers and
    problem from a child process as from the api's own."""
    inline = {name: await _post(apps(**LIMITS), body) for name, body in BAD_BODIES.items()}
    monkeypatch.setattr(api.body, "PROCESS_THRESHOLD_BYTES", 0)
    app = apps(**LIMITS)
    async with serve(app) as client:
        for name, body in BAD_BODIES.items():
            answer = _answer(await client.post("/ingest", content=body, headers=JSON))
            assert answer == inline[name], name
        assert app.state.services.body_processes.started == 1  # one child, reused
        services = app.state.services
        assert services.training_values.in_use == services.body_bytes.in_use == 0
    assert {a["status"] for a in inline.values()} == {400, 413, 422}
    assert inline["schema"]["body"]["errors"][0]["field"] == "records.0.vehicle_id"


async def test_a_batch_refused_by_the_budget_is_a_503_from_a_child_process_too(
    apps: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The share is taken in the api between decoding and validating: a busy budget is a 503
    with Retry-After, the child stays usable, and the next batch trains."""
    monkeypatch.setattr(api.body, "PROCESS_THRESHOLD_BYTES", 0)
    app = apps(**LIMITS)
    async with serve(app) as client:
        budget = app.state.services.training_values
        held = budget.take(budget.capacity - 2)
        batch = {"records": records([[0.1, 0.2, 0.3]] * 4)}  # 12 values
        response = await client.post("/ingest", json=batch, headers=AUTH)
        assert response.status_code == 503
        assert response.headers["retry-after"]
        held.release()
        assert (await client.post("/ingest", json=batch, headers=AUTH)).status_code == 201
        assert budget.in_use == 0
        assert app.state.services.body_processes.started == 1


@pytest.mark.parametrize("batch", [BATCH, CONTEXT_BATCH], ids=["point", "context"])
async def test_a_batch_trains_the_same_model_from_a_child_process(
    apps: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch, batch: dict[str, Any]
) -> None:
    """The same batch through either path: the same answer (version and times aside) and
    the same scores for the same records."""
    probe = {**batch["records"][-1], "feature_vector": [0.9, 0.1, 0.3, 0.6]}
    body = httpx.Request("POST", "/", json={**batch, "feature_names": list("abcd")}).content
    answers = []
    scores = []
    for threshold in (len(body) + 1, 0):
        monkeypatch.setattr(api.body, "PROCESS_THRESHOLD_BYTES", threshold)
        app = apps()
        async with serve(app) as client:
            trained = await client.post("/ingest", content=body, headers=JSON)
            assert trained.status_code == 201, trained.text
            answer = trained.json()
            answer_version = answer["model_version"]
            for name in ("model_version", "created_at", "sha256"):
                answer.pop(name)
            answers.append(answer)
            scored = await client.post("/score", json=probe, headers=AUTH)
            scores.append(scored.json()["anomaly_score"])
            meta = app.state.services.registry.meta(answer_version)
            scores.append((meta.model_extra or {}).get("feature_names"))
            assert app.state.services.body_processes.started == (threshold == 0)
    assert answers[0] == answers[1]
    assert scores[:2] == scores[2:]
    assert scores[1] == list("abcd")


async def test_the_lifespan_stops_the_child_processes(
    apps: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After shutdown no child is left running."""
    monkeypatch.setattr(api.body, "PROCESS_THRESHOLD_BYTES", 0)
    app = apps(**LIMITS)
    async with serve(app) as client:
        response = await client.post("/ingest", json=SEED_INGEST, headers=AUTH)
        assert response.status_code == 422  # fewer than min_training_records
        children = list(app.state.services.body_processes._idle)
        assert [c.alive() for c in children] == [True]
    assert [c.alive() for c in children] == [False]
    assert app.state.services.body_processes.started == 0


async def test_a_child_that_died_is_replaced(
    apps: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child killed while idle is not handed a body: a new one takes it."""
    monkeypatch.setattr(api.body, "PROCESS_THRESHOLD_BYTES", 0)
    app = apps(**LIMITS)
    async with serve(app) as client:
        pool = app.state.services.body_processes
        malformed = BAD_BODIES["malformed"]
        assert (await client.post("/ingest", content=malformed, headers=JSON)).status_code == 400
        (first,) = pool._idle
        first.process.kill()
        first.process.wait(10)
        response = await client.post("/ingest", content=malformed, headers=JSON)
        assert response.status_code == 400
        (second,) = pool._idle
        assert second is not first and second.alive()
        assert pool.started == 1
