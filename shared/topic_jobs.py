# One concern, a topic-training job from submit to its report, keeps this module past 300 lines.
"""The topic-training job runner: a service over a :class:`~shared.topic_training.TopicReader`.

A job runs in the caller's event loop as an asyncio task: it reads the range through the
injected reader, then decodes and fits in worker threads while holding one of the training
slots that ``POST /ingest`` uses. Its report lives on the model volume (:mod:`shared.job_store`),
so every api replica answers for it; the replica that accepted the job is the one running it.
How it went is told to a :class:`~shared.jobs.JobObserver` (the api's metrics and logs).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread

from shared.errors import (
    JobInterruptedError,
    JobsBusyError,
    JobTimeoutError,
    RegistryError,
    TopicTrainingError,
    TrainingError,
)
from shared.job_store import JobStore
from shared.jobs import (
    HEARTBEAT_SECONDS,
    JobObserver,
    JobProblem,
    JobRecord,
    JobStatus,
    new_job_id,
    utc_now,
)
from shared.registry import ModelRegistry
from shared.settings import Settings
from shared.topic_training import (
    TopicReader,
    TopicTrainingSpec,
    elapsed_since,
    fit_and_publish,
    select_and_decode,
)
from shared.training_schemas import TrainingResponse
from shared.values_budget import Releasable, ValuesBudget, values_needed, wait_for_values

logger = logging.getLogger(__name__)

# While a job reads, its report is rewritten at most this often (more often than the heartbeat).
PROGRESS_SAVE_SECONDS = 0.2
# When every job slot of the replica is taken, the caller is told to retry after this long.
BUSY_RETRY_SECONDS = 10

STOPPED = (
    "the api replica running this job was stopped before the job ended; nothing was "
    "published by it: start a new job"
)

Fit = Callable[..., TrainingResponse]


class TopicJobs:
    """This replica's running jobs, and the reports of every replica's (the model volume).

    ``fit`` is :func:`~shared.topic_training.fit_and_publish` unless a test gives another;
    ``clock`` gives the reports' timestamps. With ``training_values``, a job's decoded
    records x features are held against that budget while it trains, as ``POST /ingest``'s
    are: a job that does not fit waits without its training slot, and one larger than the
    whole budget fails with ``too-many-records``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        reader: TopicReader,
        registry: ModelRegistry,
        training_limiter: anyio.CapacityLimiter,
        store: JobStore | None = None,
        observer: JobObserver | None = None,
        fit: Fit = fit_and_publish,
        clock: Callable[[], datetime] = utc_now,
        owner: str | None = None,
        training_values: ValuesBudget | None = None,
    ) -> None:
        self.settings = settings
        self.training_values = training_values
        self.reader = reader
        self.registry = registry
        self.training_limiter = training_limiter
        self.store = store if store is not None else JobStore(settings.model_dir)
        self.observer = observer
        self.fit = fit
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}"
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        """Jobs running on this replica now."""
        return len(self._tasks)

    def submit(
        self, spec: TopicTrainingSpec, *, activate: bool, request: dict[str, Any]
    ) -> JobRecord:
        """Write the queued report and start the job's task (in the running loop).

        ``request`` is the body as given, kept in the report. Raises
        :class:`~shared.errors.JobsBusyError` when ``INGEST_TOPIC_MAX_JOBS`` jobs run, and a
        :class:`~shared.errors.RegistryError` when the report cannot be written: either way
        nothing was started.
        """
        limit = self.settings.ingest_topic_max_jobs
        if self.running >= limit:
            raise JobsBusyError(
                f"{self.running} topic training job(s) already run on this replica, the limit "
                f"(INGEST_TOPIC_MAX_JOBS={limit}); retry when one has ended",
                BUSY_RETRY_SECONDS,
            )
        now = self.clock()
        record = JobRecord(
            job_id=new_job_id(),
            status=JobStatus.QUEUED,
            topic=self.settings.telemetry_topic,
            request=request,
            activate=activate,
            created_at=now,
            updated_at=now,
            owner=self.owner,
        )
        self.store.save(record)
        with contextlib.suppress(OSError):
            self.store.prune()
        task = asyncio.create_task(self._run(record, spec), name=f"topic-job-{record.job_id}")
        self._tasks[record.job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.job_id, None))
        return record

    def get(self, job_id: str) -> JobRecord | None:
        """The report of ``job_id`` as a reader should see it (blocking: a file read)."""
        return self.store.get(job_id)

    async def shutdown(self) -> None:
        """Stop the running jobs (a fit already started ends first) and wait for them."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- one job ----------------------------------------------------------------------------

    def _save(self, record: JobRecord) -> None:
        record.updated_at = self.clock()
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
        record.finished_at = self.clock()

    async def _run(self, record: JobRecord, spec: TopicTrainingSpec) -> None:
        started = time.perf_counter()
        record.status = JobStatus.RUNNING
        record.started_at = self.clock()
        self._save(record)
        if self.observer is not None:
            self.observer.job_started(record)
        heartbeat = asyncio.create_task(self._heartbeat(record))
        try:
            await self._execute(record, spec)  # records the outcome on success
        except asyncio.CancelledError:
            if not record.finished:
                self._fail(record, JobProblem.from_error(JobInterruptedError(STOPPED)))
            raise
        except (TopicTrainingError, TrainingError) as error:
            self._fail(record, JobProblem.from_error(error))
        except TimeoutError:
            timeout = self.settings.ingest_topic_job_timeout_seconds
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
            if self.observer is not None:
                self.observer.job_finished(record, time.perf_counter() - started)
            await asyncio.wait([heartbeat])

    def _published(self, record: JobRecord, result: TrainingResponse, elapsed: float) -> None:
        record.status = JobStatus.SUCCEEDED
        record.result = result
        record.finished_at = self.clock()
        record.progress.phase = "done"
        record.progress.training_seconds = round(elapsed, 3)
        if self.observer is not None:
            self.observer.job_published(record, result, elapsed)

    async def _execute(self, record: JobRecord, spec: TopicTrainingSpec) -> TrainingResponse:
        settings = self.settings
        progress = record.progress
        deadline = asyncio.get_running_loop().time() + settings.ingest_topic_job_timeout_seconds
        last_save = 0.0

        def on_progress() -> None:
            nonlocal last_save
            now = time.monotonic()
            if now - last_save >= PROGRESS_SAVE_SECONDS:
                last_save = now
                self._save(record)

        started = time.perf_counter()
        async with asyncio.timeout_at(deadline):
            records = await self.reader.read(
                spec,
                progress,
                now=record.created_at,
                max_records=settings.ingest_topic_max_records,
                on_progress=on_progress,
            )
        progress.read_seconds = elapsed_since(started)
        progress.phase = "waiting_for_training_slot"
        self._save(record)
        limiter = self.training_limiter
        async with asyncio.timeout_at(deadline):
            await limiter.acquire()
        holding = True
        share: Releasable | None = None
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
            budget = self.training_values
            if budget is not None and prepared.records_used:
                amount = values_needed(budget, prepared.features)
                share = budget.try_take(amount)
                if share is None:
                    # Trainings hold their values before their slot (POST /ingest takes them
                    # while reading its body): give the slot back while waiting, then take
                    # the slot again, never the other way round.
                    limiter.release()
                    holding = False
                    progress.phase = "waiting_for_training_slot"
                    self._save(record)
                    async with asyncio.timeout_at(deadline):
                        share = await wait_for_values(budget, amount)
                        await limiter.acquire()
                    holding = True
            progress.phase = "training"
            self._save(record)
            started = time.perf_counter()
            fit = asyncio.ensure_future(
                anyio.to_thread.run_sync(
                    functools.partial(
                        self.fit,
                        self.registry,
                        prepared,
                        spec.params,
                        settings,
                        activate=record.activate,
                        feature_names=spec.feature_names,
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
            if share is not None:
                share.release()
            if holding:
                limiter.release()
        return result
