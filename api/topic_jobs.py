"""The api's side of the topic-job runner (:class:`shared.topic_jobs.TopicJobs`).

The lifespan builds the runner with the real Kafka reader (or the one ``create_app`` was
given), the api's registry, training slots and training-values budget, and
:class:`JobMetrics`, which counts and logs what the runner tells it.
"""

from __future__ import annotations

import logging
from typing import Any

from api.metrics import ApiMetrics, published
from api.services import Services
from shared.jobs import JobRecord
from shared.kafka.topic_reader import KafkaTopicReader
from shared.topic_jobs import TopicJobs
from shared.topic_training import TopicReader
from shared.training_schemas import TrainingResponse

logger = logging.getLogger("api.jobs")


class JobMetrics:
    """A :class:`shared.jobs.JobObserver` feeding the api's metrics and logs."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self.metrics = metrics

    def job_started(self, record: JobRecord) -> None:
        """Count it as running and log it."""
        self.metrics.topic_jobs_running.inc()
        logger.info(
            "topic training job started",
            extra={"job_id": record.job_id, "topic": record.topic, "request": record.request},
        )

    def job_published(self, record: JobRecord, result: TrainingResponse, seconds: float) -> None:
        """Count and log the version, as POST /ingest's are."""
        published(self.metrics, result, seconds, job_id=record.job_id)

    def job_finished(self, record: JobRecord, seconds: float) -> None:
        """Count its outcome, duration and records, and log its end."""
        metrics = self.metrics
        metrics.topic_jobs_running.dec()
        metrics.topic_jobs.labels(record.status.value).inc()
        metrics.topic_job_duration.observe(seconds)
        metrics.topic_job_records.inc(record.progress.records_read)
        progress = record.progress
        fields: dict[str, Any] = {
            "job_id": record.job_id,
            "status": record.status.value,
            "duration_ms": round(seconds * 1000, 1),
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


def build_topic_jobs(services: Services, reader: TopicReader | None = None) -> TopicJobs:
    """The runner for this api (``reader``: the Kafka reader unless one is given)."""
    return TopicJobs(
        services.settings,
        reader=reader if reader is not None else KafkaTopicReader(services.settings),
        registry=services.registry,
        training_limiter=services.training_limiter,
        observer=JobMetrics(services.metrics),
        training_values=services.training_values,
    )
