"""Background jobs' reports: what a job is doing or did, as every api replica reports it.

A :class:`JobRecord` is kept on the model volume by :class:`shared.job_store.JobStore`. The
runner rewrites it at least every :data:`HEARTBEAT_SECONDS` while the job is not finished; a
report left unfinished and untouched for :data:`STALE_AFTER_SECONDS` was abandoned (its
replica stopped or crashed) and reads as ``failed`` (``job-abandoned``).
"""

from __future__ import annotations

import builtins
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import JobAbandonedError, TrainingError, error_kind
from shared.training_schemas import TrainingResponse

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)

HEARTBEAT_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})

Phase = Literal[
    "queued",
    "reading_verdicts",
    "locating",
    "reading",
    "waiting_for_training_slot",
    "decoding",
    "training",
    "done",
]


class JobProblem(BaseModel):
    """Why a job failed, as the problem object a synchronous request would have answered."""

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int = Field(description="the HTTP status a synchronous request would have had")
    detail: str
    field: str | None = Field(None, description="the request field at fault, if one is")

    @classmethod
    def from_error(
        cls,
        error: BaseException,
        *,
        kind_of: builtins.type[BaseException] | None = None,
        detail: str | None = None,
    ) -> JobProblem:
        """The problem of ``error`` by its class in ``shared.errors.ERROR_TABLE``
        (or by ``kind_of``'s), with ``detail`` (default: the error's message)."""
        kind = error_kind(kind_of or error)
        return cls(
            type=kind.type,
            title=kind.title,
            status=kind.status,
            detail=str(error) if detail is None else detail,
            field=error.field if isinstance(error, TrainingError) else None,
        )


class PartitionRange(BaseModel):
    """The offsets of one partition the job reads: ``start_offset`` up to ``end_offset`` (excluded)."""

    partition: int
    start_offset: int
    end_offset: int


class JobProgress(BaseModel):
    """What a job has done so far; the counts grow while it runs."""

    phase: Phase = "queued"
    partitions: list[PartitionRange] = Field(
        default_factory=list, description="the raw topic's offsets in the range, per partition"
    )
    records_expected: int | None = Field(
        None,
        description="records the offsets hold (an upper bound: compaction and transaction "
        "markers leave gaps)",
    )
    records_read: int = Field(0, description="raw records read so far")
    outside_range: int = Field(
        0, description="records read whose Kafka timestamp lies outside [since, until)"
    )
    records_selected: int | None = Field(
        None, description="records in the range (for `last`: the newest N), once read"
    )
    excluded_flagged: int = Field(0, description="selected records an earlier verdict flagged")
    skipped: dict[str, int] = Field(
        default_factory=dict,
        description="selected records that fail validation, by reason (the dead-letter reasons)",
    )
    records_used: int | None = Field(None, description="records the model is trained on")
    n_features: int | None = Field(None, description="the dimension trained on")
    verdicts_read: int = Field(0, description="verdicts read from the anomalies topic")
    flagged_records: int = Field(
        0, description="distinct raw records of this topic flagged by those verdicts"
    )
    verdicts_unreadable: int = Field(0, description="verdicts that are not JSON verdicts")
    read_seconds: float | None = None
    decode_seconds: float | None = None
    training_seconds: float | None = None


REPORT_EXAMPLE: dict[str, Any] = {
    "job_id": "5c0f4e1f9a2b4d6e8f0a1b2c3d4e5f60",
    "kind": "ingest-from-topic",
    "status": "succeeded",
    "topic": "telemetry.raw",
    "request": {"last": 10000, "exclude_flagged": True, "params": {"random_state": 42}},
    "activate": True,
    "created_at": "2024-01-15T10:00:00Z",
    "started_at": "2024-01-15T10:00:00.010000Z",
    "finished_at": "2024-01-15T10:00:02.480000Z",
    "updated_at": "2024-01-15T10:00:02.480000Z",
    "progress": {
        "phase": "done",
        "partitions": [
            {"partition": 0, "start_offset": 40210, "end_offset": 43551},
            {"partition": 1, "start_offset": 39876, "end_offset": 43220},
            {"partition": 2, "start_offset": 40007, "end_offset": 43329},
        ],
        "records_expected": 10007,
        "records_read": 10007,
        "outside_range": 0,
        "records_selected": 10000,
        "excluded_flagged": 212,
        "skipped": {"invalid_json": 2, "dimension_mismatch": 1},
        "records_used": 9785,
        "n_features": 8,
        "verdicts_read": 4519,
        "flagged_records": 4519,
        "verdicts_unreadable": 0,
        "read_seconds": 0.61,
        "decode_seconds": 0.05,
        "training_seconds": 1.72,
    },
    "result": {
        "model_version": "20240115100002",
        "record_count": 9785,
        "created_at": "2024-01-15T10:00:02Z",
        "n_features": 8,
        "params": {
            "detector": "context",
            "n_estimators": 100,
            "max_samples": 2048,
            "max_features": 1.0,
            "false_alarm_rate": 0.001,
            "random_state": 42,
        },
        "sha256": "9f2c5b1e0d4a7c3b8e6f1a2d5c7b9e0f3a4d6c8b1e2f5a7c9d0b3e6f8a1c4d7e",
        "signed": False,
        "active": True,
        "warnings": [],
        "detector": "context",
        "false_alarm_rate": 0.001,
        "calibration": {
            "false_alarm_rate": 0.001,
            "threshold": -0.61,
            "held_out_records": 1957,
            "from_held_out": False,
            "held_out_flagged": 0.001,
        },
    },
    "problem": None,
    "owner": "api-7d9f-1",
}


class JobRecord(BaseModel):
    """A job's report: ``GET /jobs/{id}``, and the file on the model volume."""

    model_config = ConfigDict(json_schema_extra={"examples": [REPORT_EXAMPLE]})

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    kind: Literal["ingest-from-topic"] = "ingest-from-topic"
    status: JobStatus
    topic: str = Field(description="the topic the records are read from")
    request: dict[str, Any] = Field(description="the request's body, as given")
    activate: bool
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(description="the last time the running replica wrote this")
    progress: JobProgress = Field(default_factory=JobProgress)
    result: TrainingResponse | None = Field(
        None, description="on success: the version published, as POST /ingest answers it"
    )
    problem: JobProblem | None = Field(None, description="on failure: why")
    owner: str | None = Field(None, description="the api replica running it (host-pid)")

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def observed(self, now: datetime | None = None) -> JobRecord:
        """This report as a reader should see it: unfinished and silent too long is abandoned."""
        if self.finished:
            return self
        moment = now or datetime.now(UTC)
        silent = (moment - self.updated_at).total_seconds()
        if silent <= STALE_AFTER_SECONDS:
            return self
        problem = JobProblem.from_error(
            JobAbandonedError(
                f"the api replica running this job ({self.owner or 'unknown'}) last reported "
                f"{silent:.0f} s ago, while {self.progress.phase}: it was stopped or crashed, "
                "and nothing was published by this job; start a new one"
            )
        )
        return self.model_copy(update={"status": JobStatus.FAILED, "problem": problem})


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    return _JOB_ID_RE.match(value) is not None


def utc_now() -> datetime:
    return datetime.now(UTC)


class JobObserver(Protocol):
    """What the runner tells about its jobs (the api counts and logs it)."""

    def job_started(self, record: JobRecord) -> None:
        """A job began running."""

    def job_published(self, record: JobRecord, result: TrainingResponse, seconds: float) -> None:
        """A job published a version after ``seconds`` of fitting."""

    def job_finished(self, record: JobRecord, seconds: float) -> None:
        """A job ended (its report is final), ``seconds`` after it began running."""
