"""POST /ingest/from-topic and GET /jobs/{id} without a broker: request validation, the job's
life (the topic reader replaced by records in memory), shared reports, busy, timeout, shutdown.

The same routes against a real broker: tests/integration/test_topic_training.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from shared.job_store import JobStore
from shared.jobs import JobRecord, JobStatus, new_job_id
from shared.settings import Settings
from tests.unit.api.api_support import AUTH, assert_problem, make_settings, serve
from tests.unit.topic_fakes import FakeTopicReader
from tests.unit.topic_fakes import record_value as _value

UNREACHABLE = "127.0.0.1:1"


@pytest.fixture
def serve_with(tmp_path: Path) -> Callable[..., Any]:
    """``async with serve_with(reader, **settings)``: a client whose jobs read ``reader``."""

    def factory(reader: FakeTopicReader, **overrides: Any) -> Any:
        settings = make_settings(tmp_path / "models", **overrides)
        return serve(create_app(settings, topic_reader=reader))

    return factory


async def _wait_for(
    client: httpx.AsyncClient, job_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    # a deadline in time, not in polls: a training on a busy machine takes seconds
    deadline = time.monotonic() + 60.0
    while True:
        response = await client.get(f"/jobs/{job_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        if done(report):
            return report
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.025)
    raise AssertionError(f"job {job_id} never got there: {report}")


def _finished(report: dict[str, Any]) -> bool:
    return report["status"] in ("succeeded", "failed")


# --- the request ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({}, "last", "validation-error"),
        ({"exclude_flagged": True}, "since", "validation-error"),
        ({"last": 5, "since": "2024-01-14T00:00:00Z"}, "since", "validation-error"),
        ({"last": 5, "until": "2024-01-14T00:00:00Z"}, "until", "validation-error"),
        ({"last": 0}, "last", "validation-error"),
        ({"last": "5"}, "last", "validation-error"),
        ({"last": None}, "last", "validation-error"),
        ({"since": "2024-01-14"}, "since", "validation-error"),
        ({"last": 5, "params": {"contamination": 0.9}}, "params.contamination", "validation-error"),
        ({"last": 5, "topic": "elsewhere"}, "topic", "validation-error"),
        ({"last": 1001}, "last", "too-many-records"),
        (
            {"since": "2024-01-15T00:00:00Z", "until": "2024-01-14T00:00:00Z"},
            "until",
            "invalid-range",
        ),
        ({"since": "2999-01-01T00:00:00Z"}, "since", "invalid-range"),
    ],
)
async def test_a_bad_request_is_a_422_naming_the_field(
    client_for: Callable[..., Any], body: dict[str, Any], field: str, kind: str
) -> None:
    """Each invalid topic-job request is a 422 problem naming the field, and no job is made."""
    async with client_for(ingest_topic_max_records=1000) as client:
        response = await client.post("/ingest/from-topic", json=body, headers=AUTH)
        assert_problem(response, 422, field=field, kind=kind)
        assert not JobStore(client_for_dir(client)).root.exists()  # no job was made


def client_for_dir(client: httpx.AsyncClient) -> Path:
    transport: Any = client._transport
    settings: Settings = transport.app.state.settings
    return settings.model_dir


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    """A truncated JSON body is a 400 malformed-json problem, and a text/plain body a 415."""
    response = await client.post(
        "/ingest/from-topic",
        content=b'{"last": ',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, kind="malformed-json")
    response = await client.post(
        "/ingest/from-topic", content=b"last=5", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert_problem(response, 415, kind="unsupported-media-type")


async def test_an_unknown_job_is_a_404(client: httpx.AsyncClient) -> None:
    """An unknown job id is a 404 job-not-found, and a malformed one a 422 naming job_id."""
    response = await client.get(f"/jobs/{new_job_id()}", headers=AUTH)
    assert_problem(response, 404, kind="job-not-found")
    response = await client.get("/jobs/not-a-job-id", headers=AUTH)
    assert_problem(response, 422, field="job_id", kind="validation-error")


async def test_a_report_written_by_another_replica_is_answered(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Reports live on the model volume: any replica answers for any job, and /models ignores it."""
    now = datetime.now(UTC)
    record = JobRecord(
        job_id=new_job_id(),
        status=JobStatus.RUNNING,
        topic="telemetry.raw",
        request={"last": 3},
        activate=True,
        created_at=now,
        updated_at=now,
        owner="other-host-7",
    )
    JobStore(settings.model_dir).save(record)
    response = await client.get(f"/jobs/{record.job_id}", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == record.model_dump(mode="json")
    assert (await client.get("/models", headers=AUTH)).json()["models"] == []
    stale = record.model_copy(
        update={"job_id": new_job_id(), "updated_at": now - timedelta(hours=1)}
    )
    JobStore(settings.model_dir).save(stale)
    report = (await client.get(f"/jobs/{stale.job_id}", headers=AUTH)).json()
    assert report["status"] == "failed"
    assert report["problem"]["type"].endswith(":job-abandoned")


# --- a job's life ---------------------------------------------------------------------------


async def test_a_job_trains_and_reports(serve_with: Callable[..., Any]) -> None:
    """202 + Location; the report goes queued/running -> succeeded with the /ingest answer."""
    rows = [[float(i % 17), float(i % 5)] for i in range(300)]
    values: list[bytes | None] = [*(_value(r) for r in rows), b"junk", _value([1.0])]
    gate = asyncio.Event()
    reader = FakeTopicReader(values, gate=gate)
    async with serve_with(reader, kafka_bootstrap_servers=UNREACHABLE) as client:
        accepted = await client.post(
            "/ingest/from-topic?activate=false",
            json={"last": 1000, "params": {"n_estimators": 10, "random_state": 3}},
            headers=AUTH,
        )
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert job["status"] == "queued"
        assert accepted.headers["location"] == f"/jobs/{job['job_id']}"
        assert job["request"] == {"last": 1000, "params": {"n_estimators": 10, "random_state": 3}}
        running = await _wait_for(
            client, job["job_id"], lambda r: r["progress"]["phase"] == "reading"
        )
        assert running["status"] == "running"
        assert running["progress"]["records_expected"] == 302
        gate.set()
        report = await _wait_for(client, job["job_id"], _finished)
        assert report["status"] == "succeeded", report
        progress = report["progress"]
        assert progress["records_read"] == 302
        assert progress["records_used"] == 300
        assert progress["skipped"] == {"invalid_json": 1, "dimension_mismatch": 1}
        assert progress["n_features"] == 2
        assert progress["phase"] == "done"
        result = report["result"]
        assert result["record_count"] == 300
        assert result["active"] is False
        assert report["finished_at"] >= report["started_at"] >= report["created_at"]
        model = (await client.get(f"/models/{result['model_version']}", headers=AUTH)).json()
        assert model["record_count"] == 300
        metrics = (await client.get("/metrics")).text
        assert 'vehicle_anomaly_api_topic_jobs_total{outcome="succeeded"} 1.0' in metrics
        assert "vehicle_anomaly_api_topic_jobs_running 0.0" in metrics
    spec, now, max_records = reader.calls[0]
    assert (spec.last, spec.exclude_flagged, spec.params and spec.params.n_estimators) == (
        1000,
        False,
        10,
    )
    assert now == JobRecord.model_validate(job).created_at  # until's default: when accepted
    assert max_records == 1_000_000


async def test_too_few_records_ends_failed_with_a_problem(serve_with: Callable[..., Any]) -> None:
    """A training error ends the job failed with training-rejected, as POST /ingest answers."""
    async with serve_with(FakeTopicReader([_value([1.0])] * 3), min_training_records=10) as client:
        job = (await client.post("/ingest/from-topic", json={"last": 5}, headers=AUTH)).json()
        report = await _wait_for(client, job["job_id"], _finished)
    assert report["status"] == "failed"
    assert report["result"] is None
    assert report["problem"]["type"] == "urn:vehicle-anomaly:problem:training-rejected"
    assert report["problem"]["status"] == 422
    assert "3 records is too few" in report["problem"]["detail"]


async def test_a_job_beyond_the_values_budget_fails_naming_it(
    serve_with: Callable[..., Any],
) -> None:
    """The api's training-values budget holds topic jobs too: more than it ever allows fails."""
    rows = [_value([float(i % 7), float(i % 3)]) for i in range(60)]
    async with serve_with(FakeTopicReader(rows), training_max_values_in_flight=100) as client:
        job = (await client.post("/ingest/from-topic", json={"last": 60}, headers=AUTH)).json()
        report = await _wait_for(client, job["job_id"], _finished)
    assert report["status"] == "failed"
    assert report["problem"]["type"] == "urn:vehicle-anomaly:problem:too-many-records"
    assert "60 records x 2 features are 120 values" in report["problem"]["detail"]
    assert "TRAINING_MAX_VALUES_IN_FLIGHT" in report["problem"]["detail"]


async def test_an_unreachable_broker_fails_the_job(client_for: Callable[..., Any]) -> None:
    """The real reader against nothing: the job fails with kafka-unavailable (its detail names
    no broker address), the api lives on."""
    async with client_for(kafka_bootstrap_servers=UNREACHABLE) as client:
        job = (await client.post("/ingest/from-topic", json={"last": 5}, headers=AUTH)).json()
        report = await _wait_for(client, job["job_id"], _finished)
        assert report["status"] == "failed"
        assert report["problem"]["type"].endswith(":kafka-unavailable")
        assert UNREACHABLE not in report["problem"]["detail"]
        assert "cannot reach Kafka" in report["problem"]["detail"]
        assert (await client.get("/healthz")).status_code == 200


async def test_jobs_beyond_the_cap_are_refused_with_429(serve_with: Callable[..., Any]) -> None:
    """Past INGEST_TOPIC_MAX_JOBS running jobs: 429 jobs-busy with Retry-After."""
    gate = asyncio.Event()
    reader = FakeTopicReader([_value([1.0])] * 5, gate=gate)
    async with serve_with(reader, ingest_topic_max_jobs=1) as client:
        first = await client.post("/ingest/from-topic", json={"last": 5}, headers=AUTH)
        assert first.status_code == 202
        busy = await client.post("/ingest/from-topic", json={"last": 5}, headers=AUTH)
        assert_problem(busy, 429, kind="jobs-busy")
        assert busy.headers["retry-after"] == "10"
        gate.set()
        await _wait_for(client, first.json()["job_id"], _finished)
        again = await client.post("/ingest/from-topic", json={"last": 5}, headers=AUTH)
        assert again.status_code == 202


async def test_a_job_past_its_timeout_fails(serve_with: Callable[..., Any]) -> None:
    """A read that outlasts INGEST_TOPIC_JOB_TIMEOUT_SECONDS fails the job with a 504 problem."""
    reader = FakeTopicReader([_value([1.0])], delay=30)
    async with serve_with(reader, ingest_topic_job_timeout_seconds=0.2) as client:
        job = (await client.post("/ingest/from-topic", json={"last": 5}, headers=AUTH)).json()
        report = await _wait_for(client, job["job_id"], _finished)
    assert report["status"] == "failed"
    assert report["problem"]["type"].endswith(":job-timeout")
    assert report["problem"]["status"] == 504
    assert "INGEST_TOPIC_JOB_TIMEOUT_SECONDS" in report["problem"]["detail"]


async def test_stopping_the_api_interrupts_a_reading_job(tmp_path: Path) -> None:
    """The lifespan's end stops a job still reading: its report says job-interrupted."""
    settings = make_settings(tmp_path / "models")
    reader = FakeTopicReader([], gate=asyncio.Event())
    async with serve(create_app(settings, topic_reader=reader)) as client:
        job = (await client.post("/ingest/from-topic", json={"last": 5}, headers=AUTH)).json()
        await _wait_for(client, job["job_id"], lambda r: r["status"] == "running")
    report = JobStore(settings.model_dir).get(job["job_id"])
    assert report is not None and report.status is JobStatus.FAILED
    assert report.problem is not None and report.problem.type.endswith(":job-interrupted")


async def test_the_openapi_document_describes_the_routes(client: httpx.AsyncClient) -> None:
    """OpenAPI lists the job routes' examples, responses and Location header, tagged jobs."""
    schema = (await client.get("/openapi.json")).json()
    post = schema["paths"]["/ingest/from-topic"]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert examples["last"]["value"]["last"] == 10000
    assert set(post["responses"]) >= {"202", "400", "401", "413", "415", "422", "429", "503"}
    assert "Location" in post["responses"]["202"]["headers"]
    assert "oneOf" in schema["components"]["schemas"]["TopicTrainingRequest"]
    get = schema["paths"]["/jobs/{job_id}"]["get"]
    assert set(get["responses"]["200"]["content"]["application/json"]["examples"]) == {
        "running",
        "succeeded",
        "failed",
    }
    assert get["tags"] == ["jobs"]
