"""``POST /ingest/from-topic`` (train from the raw topic, as a background job) and ``GET /jobs/{id}``.

The routes parse the body, check its rules, and hand it to the runner
(:class:`shared.topic_jobs.TopicJobs`, built in the lifespan); ``GET /jobs/{id}`` reads the
report any replica wrote on the model volume.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from api.deps import AdminCaller, AuthorizedCaller, JobsDep, ServicesDep, TopicBody
from api.errors import TOO_MANY_RECORDS, VALIDATION, ProblemError
from api.examples import (
    FAILED_EXAMPLE,
    LAST_EXAMPLE,
    QUEUED_EXAMPLE,
    RANGE_EXAMPLE,
    RUNNING_EXAMPLE,
)
from api.openapi import ADMIN_PROBLEMS, AUTH_PROBLEMS, BODY_PROBLEMS, json_body, problem_responses
from api.schemas import FieldError
from api.topic_request import RequestIssue, TopicTrainingRequest, request_issues
from shared.errors import problem_type
from shared.jobs import JOB_ID_PATTERN, REPORT_EXAMPLE, JobRecord, utc_now

logger = logging.getLogger("api.jobs")

router = APIRouter()

JOB_NOT_FOUND = problem_type("job-not-found")
INVALID_RANGE = problem_type("invalid-range")

_ISSUE_TYPES = {
    "validation-error": VALIDATION,
    "invalid-range": INVALID_RANGE,
    "too-many-records": TOO_MANY_RECORDS,
}

JobIdPath = Annotated[
    str,
    Path(description="the id `POST /ingest/from-topic` answered", pattern=JOB_ID_PATTERN),
]


def _issues_problem(issues: list[RequestIssue]) -> ProblemError:
    kind = issues[0].kind
    errors = [FieldError(field=i.field, message=i.message, type=i.kind) for i in issues]
    count = len(errors)
    fields = ", ".join(sorted({e.field for e in errors}))
    detail = f"{count} validation error{'s' if count != 1 else ''} in the request ({fields})"
    if kind != "validation-error":
        detail = f"{issues[0].field}: {issues[0].message}"
    return ProblemError(422, detail, type_=_ISSUE_TYPES[kind], errors=errors)


def _accepted_responses() -> dict[int | str, dict[str, Any]]:
    responses = problem_responses(*ADMIN_PROBLEMS, *BODY_PROBLEMS, 503)
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
    caller: AdminCaller,
    body: TopicBody,
    services: ServicesDep,
    jobs: JobsDep,
    activate: Annotated[bool, Query(description="make the new version the active one")] = True,
) -> Response:
    settings = services.settings
    issues = request_issues(body, max_records=settings.ingest_topic_max_records, now=utc_now())
    if issues:
        raise _issues_problem(issues)
    record = jobs.submit(  # JobsBusyError (429) past INGEST_TOPIC_MAX_JOBS
        body.to_spec(),
        activate=activate,
        request=body.model_dump(mode="json", exclude_unset=True),
    )
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
    record = await anyio.to_thread.run_sync(jobs.get, job_id)
    if record is None:
        raise ProblemError(404, f"no job has the id {job_id!r}", type_=JOB_NOT_FOUND)
    return record
