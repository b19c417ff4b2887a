"""``POST /ingest/from-topic`` (train from the raw topic, as a background job) and ``GET /jobs/{id}``.

A job runs in the api's event loop as an asyncio task: it reads Kafka with aiokafka, then
decodes and fits in worker threads while holding one of the training slots that
``POST /ingest`` uses. Its report lives on the model volume (``shared.jobs``), so every
replica answers ``GET /jobs/{id}``; the replica that accepted the job is the one running it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from api.body import _check_content_type, decode_json, validate
from api.deps import AuthorizedCaller, ServicesDep
from api.errors import TOO_MANY_RECORDS, VALIDATION, ProblemError
from api.openapi import AUTH_PROBLEMS, BODY_PROBLEMS, json_body, problem_responses
from api.routes.ingest import published
from api.schemas import FieldError
from api.services import Services
from shared.errors import (
    JobInterruptedError,
    JobTimeoutError,
    RegistryError,
    TopicTrainingError,
    TrainingError,
    problem_type,
)
from shared.jobs import (
    HEARTBEAT_SECONDS,
    JOB_ID_PATTERN,
    REPORT_EXAMPLE,
    JobProblem,
    JobRecord,
    JobStatus,
    JobStore,
    new_job_id,
    utc_now,
)
from shared.schemas import TrainingResponse
from shared.topic_training import (
    LAST_EXAMPLE,
    RANGE_EXAMPLE,
    TopicTrainingRequest,
    elapsed_since,
    fit_and_publish,
    read_topic,
    request_issues,
    select_and_decode,
)

logger = logging.getLogger("api.jobs")

router = APIRouter()

JOB_NOT_FOUND = problem_type("job-not-found")
JOBS_BUSY = problem_type("jobs-busy")
INVALID_RANGE = problem_type("invalid-range")
BUSY_RETRY_SECONDS = 10
# While a job reads, its report is rewritten at most this often (more often than the heartbeat).
PROGRESS_SAVE_SECONDS = 0.2

_ISSUE_TYPES = {
    "validation-error": VALIDATION,
    "invalid-range": INVALID_RANGE,
    "too-many-records": TOO_MANY_RECORDS,
}


class TopicJobs:
    """This replica's running jobs, and the reports of every replica's (the model volume)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = JobStore(services.settings.model_dir)
        self.owner = f"{socket.gethostname()}-{os.getpid()}"
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        return len(self._tasks)

    def submit(self, request: TopicTrainingRequest, *, activate: bool) -> JobRecord:
        """Write the queued report and start the job's task (in the running loop)."""
        now = utc_now()
        record = JobRecord(
            job_id=new_job_id(),
            status=JobStatus.QUEUED,
            topic=self.services.settings.telemetry_topic,
            request=request.model_dump(mode="json", exclude_unset=True),
            activate=activate,
            created_at=now,
            updated_at=now,
            owner=self.owner,
        )
        self.store.save(record)  # a RegistryError (503) before anything started
        with contextlib.suppress(OSError):
            self.store.prune()
        task = asyncio.create_task(self._run(record, request), name=f"topic-job-{record.job_id}")
        self._tasks[record.job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.job_id, None))
        return record

    async def shutdown(self) -> None:
        """Stop the running jobs (a fit already started ends first) and wait for them."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- one job ----------------------------------------------------------------------------

    def _save(self, record: JobRecord) -> None:
        record.updated_at = utc_now()
        try:
            self.store.save(record)
        except RegistryError as error:  # the job goes on; its report catches up later
            logger.warning(
                "job report not written", extra={"job_id": record.job_id, "error": str(error)}
            )

    async def _heartbeat(self, record: JobRecord) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self._save(record)

    def _fail(self, record: JobRecord, problem: JobProblem) -> None:
        record.status = JobStatus.FAILED
        record.problem = problem
        record.finished_at = utc_now()

    async def _run(self, record: JobRecord, request: TopicTrainingRequest) -> None:
        metrics = self.services.metrics
        started = time.perf_counter()
        record.status = JobStatus.RUNNING
        record.started_at = utc_now()
        self._save(record)
        metrics.topic_jobs_running.inc()
        heartbeat = asyncio.create_task(self._heartbeat(record))
        logger.info(
            "topic training job started",
            extra={"job_id": record.job_id, "topic": record.topic, "request": record.request},
        )
        try:
            await self._execute(record, request)  # records the outcome on success
        except asyncio.CancelledError:
            if not record.finished:
                self._fail(record, JobProblem.from_error(JobInterruptedError(_STOPPED)))
            raise
        except (TopicTrainingError, TrainingError) as error:
            self._fail(record, JobProblem.from_error(error))
        except TimeoutError:
            timeout = self.services.settings.ingest_topic_job_timeout_seconds
            detail = (
                f"reading the topic and waiting for a training slot took longer than {timeout:g} s "
                f"(INGEST_TOPIC_JOB_TIMEOUT_SECONDS), while {record.progress.phase}; nothing was "
                "published"
            )
            self._fail(record, JobProblem.from_error(JobTimeoutError(detail)))
        except RegistryError as error:
            # whichever registry error: the job could not publish (the registry is unusable)
            self._fail(record, JobProblem.from_error(error, kind_of=RegistryError))
        except Exception as error:
            logger.exception("topic training job failed", extra={"job_id": record.job_id})
            detail = "the job failed unexpectedly; quote its id when reporting it"
            self._fail(record, JobProblem.from_error(error, detail=detail))
        finally:
            heartbeat.cancel()
            self._save(record)
            elapsed = time.perf_counter() - started
            metrics.topic_jobs_running.dec()
            metrics.topic_jobs.labels(record.status.value).inc()
            metrics.topic_job_duration.observe(elapsed)
            metrics.topic_job_records.inc(record.progress.records_read)
            self._log_end(record, elapsed)
            await asyncio.wait([heartbeat])

    def _log_end(self, record: JobRecord, elapsed: float) -> None:
        progress = record.progress
        fields: dict[str, Any] = {
            "job_id": record.job_id,
            "status": record.status.value,
            "duration_ms": round(elapsed * 1000, 1),
            "records_read": progress.records_read,
            "records_used": progress.records_used,
            "excluded_flagged": progress.excluded_flagged,
            "skipped": progress.skipped,
        }
        if record.result is not None:
            fields["model_version"] = record.result.model_version
        if record.problem is not None:
            fields["problem"] = record.problem.type.rsplit(":", 1)[-1]
            fields["detail"] = record.problem.detail
        logger.info("topic training job finished", extra=fields)

    def _published(self, record: JobRecord, result: TrainingResponse, elapsed: float) -> None:
        record.status = JobStatus.SUCCEEDED
        record.result = result
        record.finished_at = utc_now()
        record.progress.phase = "done"
        record.progress.training_seconds = round(elapsed, 3)
        published(self.services.metrics, result, elapsed, job_id=record.job_id)

    async def _execute(self, record: JobRecord, request: TopicTrainingRequest) -> TrainingResponse:
        services = self.services
        settings = services.settings
        progress = record.progress
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.ingest_topic_job_timeout_seconds
        last_save = 0.0

        def on_progress() -> None:
            nonlocal last_save
            now = time.monotonic()
            if now - last_save >= PROGRESS_SAVE_SECONDS:
                last_save = now
                self._save(record)

        started = time.perf_counter()
        async with asyncio.timeout_at(deadline):
            records = await read_topic(
                settings,
                request,
                progress,
                now=record.created_at,
                max_records=settings.ingest_topic_max_records,
                on_progress=on_progress,
            )
        progress.read_seconds = elapsed_since(started)
        progress.phase = "waiting_for_training_slot"
        self._save(record)
        limiter = services.training_limiter
        async with asyncio.timeout_at(deadline):
            await limiter.acquire()
        try:
            progress.phase = "decoding"
            self._save(record)
            started = time.perf_counter()
            decode = functools.partial(
                select_and_decode, records, max_bytes=settings.max_record_bytes
            )
            del records  # once decoded, the raw values can go: the matrix is what is needed
            prepared = await anyio.to_thread.run_sync(decode)
            del decode
            progress.decode_seconds = elapsed_since(started)
            progress.records_selected = prepared.records_selected
            progress.outside_range = prepared.outside_range
            progress.excluded_flagged = prepared.excluded_flagged
            progress.skipped = prepared.skipped
            progress.records_used = prepared.records_used
            progress.n_features = int(prepared.features.shape[1]) if prepared.records_used else None
            progress.phase = "training"
            self._save(record)
            started = time.perf_counter()
            fit = asyncio.ensure_future(
                anyio.to_thread.run_sync(
                    functools.partial(
                        fit_and_publish,
                        services.registry,
                        prepared,
                        request.params,
                        settings,
                        activate=record.activate,
                        feature_names=request.feature_names,
                    )
                )
            )
            try:
                result = await asyncio.shield(fit)
            except asyncio.CancelledError:
                # The api is stopping. A fit cannot be interrupted (nor should a version it
                # publishes go unreported): let it end, report it, then stop.
                result = await fit
                self._published(record, result, time.perf_counter() - started)
                raise
            self._published(record, result, time.perf_counter() - started)
        finally:
            limiter.release()
        return result


_STOPPED = (
    "the api replica running this job was stopped before the job ended; nothing was "
    "published by it: start a new job"
)


def get_jobs(request: Request) -> TopicJobs:
    jobs: TopicJobs = request.app.state.jobs
    return jobs


JobsDep = Annotated[TopicJobs, Depends(get_jobs)]


async def topic_training_body(request: Request) -> TopicTrainingRequest:
    """Dependency: the ``/ingest/from-topic`` body (problem+json for every failure)."""
    _check_content_type(request)
    raw = await request.body()
    return validate(TopicTrainingRequest, decode_json(raw))


TopicBody = Annotated[TopicTrainingRequest, Depends(topic_training_body)]
JobIdPath = Annotated[
    str,
    Path(description="the id `POST /ingest/from-topic` answered", pattern=JOB_ID_PATTERN),
]

QUEUED_EXAMPLE: dict[str, Any] = {
    **REPORT_EXAMPLE,
    "status": "queued",
    "started_at": None,
    "finished_at": None,
    "updated_at": REPORT_EXAMPLE["created_at"],
    "progress": {"phase": "queued", "records_read": 0, "skipped": {}},
    "result": None,
}
RUNNING_EXAMPLE: dict[str, Any] = {
    **REPORT_EXAMPLE,
    "status": "running",
    "finished_at": None,
    "updated_at": "2024-01-15T10:00:00.500000Z",
    "progress": {
        **REPORT_EXAMPLE["progress"],
        "phase": "reading",
        "records_read": 5120,
        "records_selected": None,
        "excluded_flagged": 0,
        "skipped": {},
        "records_used": None,
        "n_features": None,
        "read_seconds": None,
        "decode_seconds": None,
        "training_seconds": None,
    },
    "result": None,
}
FAILED_EXAMPLE: dict[str, Any] = {
    **REPORT_EXAMPLE,
    "status": "failed",
    "request": {"since": "2024-01-14T00:00:00Z", "until": "2024-01-14T00:01:00Z"},
    "progress": {
        "phase": "training",
        "partitions": [{"partition": 0, "start_offset": 120, "end_offset": 120}],
        "records_expected": 0,
        "records_read": 0,
        "records_selected": 0,
        "records_used": 0,
        "skipped": {},
    },
    "result": None,
    "problem": {
        "type": problem_type("training-rejected"),
        "title": "Training rejected",
        "status": 422,
        "detail": "no record to train on: the range holds 0 record(s)",
    },
}


def _issues_problem(issues: list[Any]) -> ProblemError:
    kind = issues[0].kind
    errors = [FieldError(field=i.field, message=i.message, type=i.kind) for i in issues]
    count = len(errors)
    fields = ", ".join(sorted({e.field for e in errors}))
    detail = f"{count} validation error{'s' if count != 1 else ''} in the request ({fields})"
    if kind != "validation-error":
        detail = f"{issues[0].field}: {issues[0].message}"
    return ProblemError(422, detail, type_=_ISSUE_TYPES[kind], errors=errors)


def _accepted_responses() -> dict[int | str, dict[str, Any]]:
    responses = problem_responses(*AUTH_PROBLEMS, *BODY_PROBLEMS, 503)
    responses[429] = {
        **responses[429],
        "description": (
            "Rate limit reached, or INGEST_TOPIC_MAX_JOBS jobs already run on this replica "
            "(`jobs-busy`); retry after `Retry-After` seconds."
        ),
    }
    responses[422] = {
        **responses[422],
        "description": (
            "The request breaks the schema (`validation-error`), `until` is not after `since` "
            "(`invalid-range`) or `last` is over INGEST_TOPIC_MAX_RECORDS (`too-many-records`); "
            "`errors` names each field at fault."
        ),
    }
    return {
        202: {
            "description": "The job was accepted; follow `Location` (`GET /jobs/{id}`).",
            "headers": {
                "Location": {"description": "/jobs/{job_id}", "schema": {"type": "string"}}
            },
            "content": {"application/json": {"example": QUEUED_EXAMPLE}},
        },
        **responses,
    }


@router.post(
    "/ingest/from-topic",
    tags=["training"],
    summary="Train a model version from the raw topic's history (a background job)",
    description=(
        "Reads a range of `TELEMETRY_TOPIC` (`last` N records, or `since`/`until` by Kafka "
        "timestamp), optionally leaves out the records an earlier verdict on `ANOMALY_TOPIC` "
        "flagged (`exclude_flagged`), skips (and counts) the records that fail validation, and "
        "trains on the rest **in the order (Kafka timestamp, partition, offset)**: the same "
        "model `POST /ingest` gives for those records in that order with the same parameters. "
        "Answers **202** at once with the job's report and `Location: /jobs/{id}`; poll that. "
        "Limits: `INGEST_TOPIC_MAX_RECORDS` records per job, `INGEST_TOPIC_JOB_TIMEOUT_SECONDS` "
        "for reading and waiting for a training slot, `INGEST_TOPIC_MAX_JOBS` jobs at once per "
        "replica (429 beyond)."
    ),
    status_code=202,
    response_model=JobRecord,
    responses=_accepted_responses(),
    openapi_extra=json_body(
        TopicTrainingRequest,
        {
            "last": {
                "summary": "The newest 10,000 records, flagged ones left out",
                "value": LAST_EXAMPLE,
            },
            "range": {"summary": "One day of records, by Kafka timestamp", "value": RANGE_EXAMPLE},
        },
    ),
)
async def ingest_from_topic(
    caller: AuthorizedCaller,
    body: TopicBody,
    services: ServicesDep,
    jobs: JobsDep,
    activate: Annotated[bool, Query(description="make the new version the active one")] = True,
) -> Response:
    settings = services.settings
    issues = request_issues(body, max_records=settings.ingest_topic_max_records, now=utc_now())
    if issues:
        raise _issues_problem(issues)
    if jobs.running >= settings.ingest_topic_max_jobs:
        raise ProblemError(
            429,
            f"{jobs.running} topic training job(s) already run on this replica, the limit "
            f"(INGEST_TOPIC_MAX_JOBS={settings.ingest_topic_max_jobs}); retry when one has ended",
            type_=JOBS_BUSY,
            headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
        )
    record = jobs.submit(body, activate=activate)
    logger.info(
        "topic training job accepted",
        extra={"job_id": record.job_id, "caller": caller.identity, "request": record.request},
    )
    return JSONResponse(
        record.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/jobs/{record.job_id}"},
    )


@router.get(
    "/jobs/{job_id}",
    tags=["jobs"],
    summary="A background job's report",
    description=(
        "The job's `status` (`queued`, `running`, `succeeded`, `failed`), its progress (records "
        "read and expected, skipped by reason, excluded as flagged), its timestamps, and the "
        "training response on success or a problem object on failure. Any api replica answers: "
        "reports live on the model volume. A job whose replica stopped reporting for a minute "
        "reads as `failed` (`job-abandoned`)."
    ),
    response_model=JobRecord,
    responses={
        200: {
            "description": "The job's report.",
            "content": {
                "application/json": {
                    "examples": {
                        "running": {"summary": "Reading the topic", "value": RUNNING_EXAMPLE},
                        "succeeded": {
                            "summary": "A version was published",
                            "value": REPORT_EXAMPLE,
                        },
                        "failed": {"summary": "Nothing to train on", "value": FAILED_EXAMPLE},
                    }
                }
            },
        },
        **problem_responses(*AUTH_PROBLEMS, 404, 422, 503),
    },
)
async def get_job(caller: AuthorizedCaller, jobs: JobsDep, job_id: JobIdPath) -> JobRecord:
    record = await anyio.to_thread.run_sync(jobs.store.get, job_id)
    if record is None:
        raise ProblemError(404, f"no job has the id {job_id!r}", type_=JOB_NOT_FOUND)
    return record
