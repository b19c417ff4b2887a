"""Background jobs' reports on the model volume, so that every api replica can answer for them.

    $MODEL_DIR/.jobs/<job id>.json     one job's report (a :class:`shared.jobs.JobRecord`)

A job is run by the replica that accepted it; that replica is its only writer. Each write
goes to a temporary file in the same directory, then ``os.replace`` puts it in place: a
reader (any replica, answering ``GET /jobs/{id}``) sees a whole report or the previous one.

The registry ignores this directory: its name is not a version name, and retention only
removes versions and its own temporary entries. Reports are kept :data:`RETENTION_SECONDS`.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from shared.errors import RegistryError
from shared.jobs import JobRecord, is_job_id

JOBS_DIR = ".jobs"
RETENTION_SECONDS = 7 * 24 * 3600
_STALE_TEMP_SECONDS = 3600


class JobStore:
    """Reports of jobs under ``<model_dir>/.jobs`` (plain files; no lock: one writer per job)."""

    def __init__(self, model_dir: Path | str) -> None:
        self.root = Path(model_dir) / JOBS_DIR

    def path(self, job_id: str) -> Path:
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / f"{job_id}.json"

    def save(self, record: JobRecord) -> None:
        """Write ``record`` atomically (temporary file, then ``os.replace``)."""
        target = self.path(record.job_id)
        temp = self.root / f".tmp-{record.job_id}-{uuid.uuid4().hex[:8]}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with temp.open("wb") as handle:
                handle.write(record.model_dump_json(indent=1).encode())
                handle.flush()
            os.replace(temp, target)
        except OSError as error:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise RegistryError(f"cannot write the job report {target}: {error}") from error

    def load(self, job_id: str) -> JobRecord | None:
        """The report of ``job_id`` as written, or ``None`` when there is none."""
        if not is_job_id(job_id):
            return None
        try:
            raw = self.path(job_id).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise RegistryError(f"cannot read the job report of {job_id}: {error}") from error
        try:
            return JobRecord.model_validate_json(raw)
        except ValidationError as error:
            raise RegistryError(f"the job report of {job_id} is unreadable: {error}") from error

    def get(self, job_id: str, now: datetime | None = None) -> JobRecord | None:
        """The report as a reader should see it (see :meth:`JobRecord.observed`)."""
        record = self.load(job_id)
        return record.observed(now) if record is not None else None

    def prune(self, *, max_age_seconds: float = RETENTION_SECONDS) -> int:
        """Remove reports untouched for ``max_age_seconds`` and stale temporary files."""
        removed = 0
        now = time.time()
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            is_temp = entry.name.startswith(".tmp-")
            if not is_temp and not entry.name.endswith(".json"):
                continue
            limit = _STALE_TEMP_SECONDS if is_temp else max_age_seconds
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < now - limit:
                    os.unlink(entry.path)
                    removed += not is_temp
        return removed
