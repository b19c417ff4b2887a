"""Examples for the OpenAPI document of the topic-training routes (bodies and job reports)."""

from __future__ import annotations

from typing import Any

from shared.errors import problem_type
from shared.jobs import REPORT_EXAMPLE

# The bodies of POST /ingest/from-topic.
LAST_EXAMPLE: dict[str, Any] = {
    "last": 10000,
    "exclude_flagged": True,
    "params": {"n_estimators": 200, "max_samples": 1.0, "random_state": 42},
}
RANGE_EXAMPLE: dict[str, Any] = {
    "since": "2024-01-14T00:00:00Z",
    "until": "2024-01-15T00:00:00Z",
}


# Reports of GET /jobs/{id} at each stage (REPORT_EXAMPLE is a succeeded one).
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
