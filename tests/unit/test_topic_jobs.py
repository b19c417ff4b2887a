"""The topic-job runner as a core service: a fake reader through the port, a real job store and
registry on a temporary volume, and the outcomes a report can have."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from api.budget import WorkBudget
from shared.errors import JobsBusyError, ModelIntegrityError, TopicNotFoundError
from shared.job_store import JobStore
from shared.jobs import JobRecord, JobStatus
from shared.registry import ModelRegistry
from shared.settings import Settings, load_settings
from shared.topic_jobs import TopicJobs
from shared.topic_training import TopicTrainingSpec, fit_and_publish
from shared.training_schemas import TrainingResponse
from tests.unit.topic_fakes import FakeTopicReader, record_value


class RecordingObserver:
    """A JobObserver that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def job_started(self, record: JobRecord) -> None:
        self.events.append(("started", record.status.value))

    def job_published(self, record: JobRecord, result: TrainingResponse, seconds: float) -> None:
        self.events.append(("published", result.model_version))

    def job_finished(self, record: JobRecord, seconds: float) -> None:
        self.events.append(("finished", record.status.value))


def _settings(model_dir: Path, **overrides: Any) -> Settings:
    return load_settings(model_dir=model_dir, _env_file=None, **overrides)


def _jobs(model_dir: Path, reader: FakeTopicReader, **kwargs: Any) -> TopicJobs:
    settings = _settings(model_dir, **kwargs.pop("settings", {}))
    return TopicJobs(
        settings,
        reader=reader,
        registry=ModelRegistry(model_dir),
        training_limiter=anyio.CapacityLimiter(1),
        **kwargs,
    )


async def _finished(jobs: TopicJobs, job_id: str) -> JobRecord:
    for _ in range(400):
        record = jobs.get(job_id)
        if record is not None and record.finished:
            return record
        await asyncio.sleep(0.025)
    raise AssertionError(f"job {job_id} never finished")


def _rows(count: int) -> list[bytes | None]:
    return [record_value([float(i % 11), float(i % 3)]) for i in range(count)]


async def test_a_job_reads_through_the_port_and_publishes(model_dir: Path) -> None:
    """Records from the reader are decoded, fitted and published; the observer hears it all."""
    observer = RecordingObserver()
    reader = FakeTopicReader([*_rows(120), b"junk"])
    jobs = _jobs(model_dir, reader, observer=observer)
    spec = TopicTrainingSpec(last=500)
    queued = jobs.submit(spec, activate=True, request={"last": 500})
    assert queued.status is JobStatus.QUEUED and jobs.running == 1
    record = await _finished(jobs, queued.job_id)
    assert record.status is JobStatus.SUCCEEDED, record.problem
    assert record.result is not None and record.result.record_count == 120
    assert record.progress.skipped == {"invalid_json": 1}
    assert record.request == {"last": 500}
    assert reader.calls[0][0] is spec and reader.calls[0][1] == queued.created_at
    assert ModelRegistry(model_dir).active_version() == record.result.model_version
    assert observer.events == [
        ("started", "running"),
        ("published", record.result.model_version),
        ("finished", "succeeded"),
    ]
    # the job leaves the running count once its task has wound up, a few loop turns later
    for _ in range(500):
        if jobs.running == 0:
            break
        await asyncio.sleep(0.01)
    assert jobs.running == 0


@pytest.mark.parametrize(
    ("error", "fit_error", "slug", "status", "title"),
    [
        (TopicNotFoundError("no topic"), None, "topic-not-found", 503, "Topic not found"),
        (None, ModelIntegrityError("odd"), "registry-unavailable", 503, "Registry unavailable"),
        (None, RuntimeError("bug"), "internal-error", 500, "Internal Server Error"),
    ],
)
async def test_a_failure_becomes_the_tables_problem(
    model_dir: Path,
    error: TopicNotFoundError | None,
    fit_error: Exception | None,
    slug: str,
    status: int,
    title: str,
) -> None:
    """Reader errors by their class; any registry error as registry-unavailable; a bug as 500."""

    def fit(*args: Any, **kwargs: Any) -> TrainingResponse:
        assert fit_error is not None
        raise fit_error

    reader = FakeTopicReader(_rows(50), error=error)
    jobs = _jobs(model_dir, reader, **({"fit": fit} if fit_error is not None else {}))
    record = await _finished(
        jobs, jobs.submit(TopicTrainingSpec(last=5), activate=True, request={}).job_id
    )
    assert record.status is JobStatus.FAILED and record.problem is not None
    assert record.problem.type == f"urn:vehicle-anomaly:problem:{slug}"
    assert (record.problem.status, record.problem.title) == (status, title)


async def test_shutdown_interrupts_a_reading_job(model_dir: Path) -> None:
    """A job still reading when the runner stops ends failed with job-interrupted."""
    jobs = _jobs(model_dir, FakeTopicReader([], gate=asyncio.Event()))
    queued = jobs.submit(TopicTrainingSpec(last=5), activate=True, request={})
    await asyncio.sleep(0.05)
    await jobs.shutdown()
    record = JobStore(model_dir).get(queued.job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.problem is not None and record.problem.type.endswith(":job-interrupted")
    assert record.problem.status == 503


async def test_shutdown_lets_a_fit_in_progress_finish(model_dir: Path) -> None:
    """A fit that started cannot be interrupted: the job publishes and says so."""
    loop = asyncio.get_running_loop()
    fitting = asyncio.Event()
    release = threading.Event()

    def slow_fit(*args: Any, **kwargs: Any) -> TrainingResponse:
        loop.call_soon_threadsafe(fitting.set)
        release.wait(5)
        return fit_and_publish(*args, **kwargs)

    jobs = _jobs(
        model_dir, FakeTopicReader([record_value([float(i)]) for i in range(50)]), fit=slow_fit
    )
    queued = jobs.submit(TopicTrainingSpec(last=50), activate=True, request={})
    await fitting.wait()
    stopping = asyncio.create_task(jobs.shutdown())
    await asyncio.sleep(0.05)
    release.set()
    await stopping
    record = JobStore(model_dir).get(queued.job_id)
    assert record is not None and record.status is JobStatus.SUCCEEDED, record
    assert record.result is not None and record.result.record_count == 50


async def test_a_job_beyond_the_cap_is_refused_before_anything_starts(model_dir: Path) -> None:
    """Past INGEST_TOPIC_MAX_JOBS running jobs, submit raises JobsBusyError and writes nothing."""
    gate = asyncio.Event()
    jobs = _jobs(model_dir, FakeTopicReader(_rows(5), gate=gate))
    first = jobs.submit(TopicTrainingSpec(last=5), activate=True, request={})
    with pytest.raises(JobsBusyError, match=r"INGEST_TOPIC_MAX_JOBS=1") as refused:
        jobs.submit(TopicTrainingSpec(last=5), activate=True, request={})
    assert refused.value.retry_after_seconds == 10
    assert [p.stem for p in JobStore(model_dir).root.glob("*.json")] == [first.job_id]
    gate.set()
    await _finished(jobs, first.job_id)


async def test_a_job_holds_its_values_against_the_budget_while_it_trains(model_dir: Path) -> None:
    """Its records x features are taken from the budget for the fit and given back after."""
    budget = WorkBudget(1_000, unit="values", setting="TRAINING_MAX_VALUES_IN_FLIGHT")
    seen: list[int] = []

    def fit(*args: Any, **kwargs: Any) -> TrainingResponse:
        seen.append(budget.in_use)
        return fit_and_publish(*args, **kwargs)

    jobs = _jobs(model_dir, FakeTopicReader(_rows(120)), training_values=budget, fit=fit)
    record = await _finished(
        jobs, jobs.submit(TopicTrainingSpec(last=500), activate=True, request={}).job_id
    )
    assert record.status is JobStatus.SUCCEEDED, record.problem
    assert seen == [240]  # 120 records x 2 features
    assert budget.in_use == 0


async def test_a_job_waits_without_its_slot_until_its_values_fit(model_dir: Path) -> None:
    """With the budget held elsewhere the job gives its training slot back and waits; once the
    values are free it takes the slot again and trains."""
    budget = WorkBudget(300, unit="values", setting="TRAINING_MAX_VALUES_IN_FLIGHT")
    held = budget.take(200)  # an /ingest in flight
    limiter = anyio.CapacityLimiter(1)
    jobs = TopicJobs(
        _settings(model_dir),
        reader=FakeTopicReader(_rows(120)),
        registry=ModelRegistry(model_dir),
        training_limiter=limiter,
        training_values=budget,
    )
    queued = jobs.submit(TopicTrainingSpec(last=500), activate=True, request={})
    for _ in range(200):
        found = jobs.get(queued.job_id)
        phase = None if found is None else found.progress.phase
        if phase == "waiting_for_training_slot" and found and found.progress.records_used:
            break
        await asyncio.sleep(0.025)
    await asyncio.sleep(0.1)
    waiting = jobs.get(queued.job_id)
    assert waiting is not None and not waiting.finished
    assert waiting.progress.phase == "waiting_for_training_slot"
    assert waiting.progress.records_used == 120
    assert limiter.borrowed_tokens == 0  # the slot is free for others meanwhile
    held.release()
    record = await _finished(jobs, queued.job_id)
    assert record.status is JobStatus.SUCCEEDED, record.problem
    assert budget.in_use == 0 and limiter.borrowed_tokens == 0


async def test_a_job_larger_than_the_whole_budget_fails_naming_the_setting(
    model_dir: Path,
) -> None:
    """More values than may ever be held: the job fails with too-many-records, nothing held."""
    budget = WorkBudget(100, unit="values", setting="TRAINING_MAX_VALUES_IN_FLIGHT")
    jobs = _jobs(model_dir, FakeTopicReader(_rows(120)), training_values=budget)
    record = await _finished(
        jobs, jobs.submit(TopicTrainingSpec(last=500), activate=True, request={}).job_id
    )
    assert record.status is JobStatus.FAILED
    assert record.problem is not None
    assert record.problem.type.endswith(":too-many-records") and record.problem.status == 422
    assert "TRAINING_MAX_VALUES_IN_FLIGHT" in record.problem.detail
    assert budget.in_use == 0
