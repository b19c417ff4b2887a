"""The job store on the model volume: atomic reports, abandoned jobs, retention, and the registry
leaving it alone."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shared.errors import RegistryError
from shared.job_store import JOBS_DIR, JobStore
from shared.jobs import STALE_AFTER_SECONDS, JobProgress, JobRecord, JobStatus, new_job_id
from shared.registry import ModelRegistry

NOW = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


def _record(status: JobStatus = JobStatus.RUNNING, *, updated: datetime = NOW) -> JobRecord:
    return JobRecord(
        job_id=new_job_id(),
        status=status,
        topic="telemetry.raw",
        request={"last": 10},
        activate=True,
        created_at=NOW,
        updated_at=updated,
        progress=JobProgress(phase="reading", records_read=5, skipped={"schema": 1}),
        owner="host-1",
    )


def test_a_report_round_trips_through_its_file(model_dir: Path) -> None:
    """A saved report reads back equal, as .jobs/<id>.json, with no temporary file left."""
    store = JobStore(model_dir)
    record = _record()
    store.save(record)
    assert store.load(record.job_id) == record
    assert sorted(os.listdir(model_dir / JOBS_DIR)) == [f"{record.job_id}.json"]
    record.progress.records_read = 9
    store.save(record)
    loaded = store.load(record.job_id)
    assert loaded is not None and loaded.progress.records_read == 9
    assert sorted(os.listdir(model_dir / JOBS_DIR)) == [f"{record.job_id}.json"]


@pytest.mark.parametrize(
    "job_id", ["0" * 32, "../LATEST", "ABCDEF" + "0" * 26, "", "0" * 31, "0" * 32 + "/x"]
)
def test_an_unknown_or_malformed_id_has_no_report(model_dir: Path, job_id: str) -> None:
    """An unknown id and anything that is not an id (paths included) have no report."""
    assert JobStore(model_dir).load(job_id) is None
    assert JobStore(model_dir).get(job_id) is None


def test_a_path_is_only_made_for_an_id(model_dir: Path) -> None:
    """JobStore.path refuses anything but a job id, so no path escapes the jobs folder."""
    with pytest.raises(ValueError, match="not a job id"):
        JobStore(model_dir).path("../../etc/passwd")


def test_an_unreadable_report_is_a_registry_error(model_dir: Path) -> None:
    """A report that is not a report is a RegistryError (503), not a crash or a 404."""
    store = JobStore(model_dir)
    job_id = new_job_id()
    store.root.mkdir()
    store.path(job_id).write_text("{not json")
    with pytest.raises(RegistryError, match="unreadable"):
        store.load(job_id)


def test_a_silent_unfinished_job_reads_as_abandoned() -> None:
    """Running (or queued) and not written for STALE_AFTER_SECONDS: failed, job-abandoned."""
    fresh = _record(updated=NOW)
    assert fresh.observed(NOW + timedelta(seconds=STALE_AFTER_SECONDS - 1)) is fresh
    seen = fresh.observed(NOW + timedelta(seconds=STALE_AFTER_SECONDS + 1))
    assert seen.status is JobStatus.FAILED
    assert seen.problem is not None
    assert seen.problem.type == "urn:vehicle-anomaly:problem:job-abandoned"
    assert "host-1" in seen.problem.detail and "reading" in seen.problem.detail
    assert fresh.status is JobStatus.RUNNING  # the stored report itself is not changed
    done = _record(JobStatus.SUCCEEDED, updated=NOW)
    assert done.observed(NOW + timedelta(days=1)) is done


def test_get_applies_the_abandonment_rule(model_dir: Path) -> None:
    """get returns a queued report silent for an hour as failed (abandoned)."""
    store = JobStore(model_dir)
    record = _record(JobStatus.QUEUED, updated=datetime.now(UTC) - timedelta(hours=1))
    store.save(record)
    seen = store.get(record.job_id)
    assert seen is not None and seen.status is JobStatus.FAILED


def test_prune_removes_old_reports_and_stale_temporary_files(model_dir: Path) -> None:
    """prune deletes reports and temporary files older than a week and keeps the newer ones."""
    store = JobStore(model_dir)
    old, new = _record(JobStatus.SUCCEEDED), _record(JobStatus.FAILED)
    store.save(old)
    store.save(new)
    temp = store.root / f".tmp-{new_job_id()}-abcd1234"
    temp.write_text("partial")
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(store.path(old.job_id), (week_ago, week_ago))
    os.utime(temp, (week_ago, week_ago))
    assert store.prune() == 1
    assert store.load(old.job_id) is None
    assert store.load(new.job_id) == new
    assert not temp.exists()
    assert JobStore(model_dir / "nowhere").prune() == 0


def test_an_unwritable_volume_is_a_registry_error(tmp_path: Path) -> None:
    """Saving a report where the model directory is a file is a RegistryError."""
    blocker = tmp_path / "models"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(RegistryError, match="cannot write the job report"):
        JobStore(blocker).save(_record())


def test_the_registry_leaves_the_jobs_alone(model_dir: Path) -> None:
    """Versions, listing and retention ignore .jobs, however old its files are."""
    from sklearn.ensemble import IsolationForest

    store = JobStore(model_dir)
    record = _record(JobStatus.SUCCEEDED)
    store.save(record)
    long_ago = time.time() - 30 * 24 * 3600
    os.utime(store.path(record.job_id), (long_ago, long_ago))
    os.utime(store.root, (long_ago, long_ago))
    registry = ModelRegistry(model_dir, retention=1, keep_activated=0)
    model = IsolationForest(n_estimators=2, random_state=0).fit(np.zeros((4, 2)))
    for _ in range(3):
        registry.publish(model, n_features=2, record_count=4, params={})
    assert JOBS_DIR not in registry.versions()
    assert len(registry.versions()) == 1
    registry.prune()
    assert store.load(record.job_id) == record
