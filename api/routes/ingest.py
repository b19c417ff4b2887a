"""``POST /ingest``: train a model version on a batch of records."""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.deps import AdminCaller, ServicesDep, TrainingBody
from api.metrics import published
from api.openapi import (
    ADMIN_PROBLEMS,
    BODY_PROBLEMS,
    VERSION_EXAMPLE,
    json_body,
    problem_responses,
)
from shared.errors import RegistryError, TrainingError
from shared.training import train_matrix
from shared.training_schemas import TrainingRequest, TrainingResponse

logger = logging.getLogger("api.ingest")

router = APIRouter(tags=["training"])

SEED_EXAMPLE = {
    "records": [
        {
            "vehicle_id": "VH-001",
            "timestamp": "2024-01-15T10:00:00Z",
            "feature_vector": [0.5, 0.3, 0.8, 1.2],
        }
    ]
}
PARAMS_EXAMPLE = {
    "records": [
        {"vehicle_id": "VH-001", "timestamp": "2024-01-15T10:00:00Z", "feature_vector": [0.5, 0.3]},
        {"vehicle_id": "VH-001", "timestamp": "2024-01-15T10:01:00Z", "feature_vector": [0.6, 0.2]},
        {"vehicle_id": "VH-003", "timestamp": "2024-01-15T10:01:30Z", "feature_vector": [0.4, 0.4]},
    ],
    "params": {"n_estimators": 200, "false_alarm_rate": 0.005, "random_state": 42},
}
POINT_EXAMPLE = {
    "records": PARAMS_EXAMPLE["records"],
    "params": {"detector": "point", "contamination": 0.05, "random_state": 42},
}
RESPONSE_EXAMPLE = {
    "model_version": "20240115100000",
    "record_count": 1,
    **VERSION_EXAMPLE,
    "signed": False,
    "active": True,
    "warnings": [
        "trained on 1 record(s): IsolationForest needs more data to separate anomalies, "
        "and this model will score every record 0 (not anomalous)",
        "the threshold was set on all the training records, the fitted ones included: only 0 "
        "were held out and 2000 are needed for false_alarm_rate=0.001; new normal data may be "
        "flagged more often than that (train on more records per vehicle)",
    ],
    "false_alarm_rate": 0.001,
    "calibration": {
        "false_alarm_rate": 0.001,
        "threshold": -0.5,
        "held_out_records": 0,
        "from_held_out": False,
        "held_out_flagged": None,
    },
}


def unwritable_registry(model_dir: Any, error: OSError) -> RegistryError:
    """The 503 of a model directory that cannot take a new version (read-only, full...)."""
    reason = (
        "is read-only"
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        else "cannot be written"
    )
    return RegistryError(
        f"the model directory {model_dir} {reason}: cannot publish a version "
        f"({error.strerror or error})"
    )


@router.post(
    "/ingest",
    summary="Train a model version",
    description=(
        "Fits a model on the records (all of one dimension) and publishes it as a new registry "
        "version: a context model (each record judged in its vehicle's recent history, its "
        "threshold set on held-out records to flag `false_alarm_rate` of normal ones) unless "
        "`params.detector` (or `DETECTOR_KIND`) is `point` (an IsolationForest on the readings). "
        "The new version is made active unless `activate=false`, which makes it the shadow "
        "candidate instead (the worker scores it beside the active one; see "
        "`GET /models/{version}/shadow`). Answers **201** with the "
        "version (also in `Location`). Training runs in a worker thread; at most two run at "
        "once, others wait. Limits: `INGEST_MAX_RECORDS` records (413), "
        "`INGEST_MAX_BODY_BYTES` bytes (413), at least `MIN_TRAINING_RECORDS` records (422)."
    ),
    status_code=201,
    response_model=TrainingResponse,
    responses={
        201: {
            "description": "The version was published.",
            "headers": {
                "Location": {"description": "/models/{version}", "schema": {"type": "string"}}
            },
            "content": {"application/json": {"example": RESPONSE_EXAMPLE}},
        },
        **problem_responses(*ADMIN_PROBLEMS, *BODY_PROBLEMS, 503),
    },
    openapi_extra=json_body(
        TrainingRequest,
        {
            "seed": {"summary": "The seed's example: one record", "value": SEED_EXAMPLE},
            "with_params": {"summary": "Several records and parameters", "value": PARAMS_EXAMPLE},
            "point": {"summary": "A point model", "value": POINT_EXAMPLE},
        },
    ),
)
async def ingest(
    request: Request,
    caller: AdminCaller,
    body: TrainingBody,
    services: ServicesDep,
    activate: Annotated[bool, Query(description="make the new version the active one")] = True,
) -> Response:
    metrics = services.metrics

    def train() -> tuple[TrainingResponse, float]:
        started = time.perf_counter()  # after waiting for a training slot
        # train_version's steps, from the batch's arrays (api.training_batch)
        response = train_matrix(
            services.registry,
            body.matrix(),
            body.params,
            services.settings,
            activate=activate,
            feature_names=body.feature_names,
            vehicle_ids=body.vehicle_ids,
            timestamps=body.timestamps,
        )
        return response, time.perf_counter() - started

    tracer = getattr(request.app.state, "tracer", None)
    span_scope: Any = (
        tracer.start_as_current_span(
            "train model",
            attributes={"training.records": body.record_count, "training.activate": activate},
        )
        if tracer is not None
        else contextlib.nullcontext()
    )
    with span_scope as span:
        try:
            result, elapsed = await anyio.to_thread.run_sync(
                train, limiter=services.training_limiter
            )
        except TrainingError:
            metrics.trainings.labels("rejected").inc()
            raise
        except OSError as error:  # the model directory cannot be written: say so, as a 503
            metrics.trainings.labels("failed").inc()
            raise unwritable_registry(services.settings.model_dir, error) from error
        except Exception:
            metrics.trainings.labels("failed").inc()
            raise
        if span is not None:
            span.set_attribute("model.version", result.model_version)
            span.set_attribute("training.duration_ms", round(elapsed * 1000, 1))
    metrics.trainings.labels("published").inc()
    published(metrics, result, elapsed, caller=caller.identity)
    return JSONResponse(
        result.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/models/{result.model_version}"},
    )
