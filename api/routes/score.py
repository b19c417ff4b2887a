"""``POST /score``: one record's verdict from the active (or a chosen) model version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Query, Response

from api.deps import RecordBody, ServicesDep
from api.openapi import AUTH_PROBLEMS, BODY_PROBLEMS, json_body, problem_responses
from shared.schemas import (
    RECORD_EXAMPLE,
    VERDICT_EXAMPLE,
    TelemetryRecord,
    Verdict,
    format_timestamp,
)
from shared.verdicts import encode_verdict, score_rows

router = APIRouter(tags=["scoring"])


@router.post(
    "/score",
    summary="Score one record",
    description=(
        "The record's `anomaly_score` is IsolationForest's `decision_function` (negative = "
        "anomalous, `is_anomaly` = score < 0) under the active model version, or under "
        "`model_version`. The answer has no `source` (that is for streamed verdicts). 404 when "
        "no model was trained yet or the version does not exist; 422 when the feature vector "
        "has another length than the model's. An anomalous answer carries `attribution`: the "
        "features that drove it, ranked (`ATTRIBUTION_TOP_K`)."
    ),
    response_model=Verdict,
    response_model_exclude={"source"},
    responses={
        200: {"content": {"application/json": {"example": VERDICT_EXAMPLE}}},
        **problem_responses(*AUTH_PROBLEMS, *BODY_PROBLEMS, 404, 409),
    },
    openapi_extra=json_body(
        TelemetryRecord, {"seed": {"summary": "The seed's example", "value": RECORD_EXAMPLE}}
    ),
)
async def score(
    record: RecordBody,
    services: ServicesDep,
    model_version: Annotated[
        str | None,
        Query(
            description="score with this version instead of the active one",
            max_length=64,
            examples=["20240115100000"],
        ),
    ] = None,
) -> Response:
    # (the caller was authenticated and rate-limited by the router's dependency)
    models = services.models
    detector = await (models.active() if model_version is None else models.get(model_version))
    detector.check_width(len(record.feature_vector))
    features = np.asarray([record.feature_vector], dtype=np.float64)
    # In a worker thread even though the compiled forest takes microseconds a row: measured
    # with bench/api_load.py, scoring inline on the event loop gave ~15% fewer requests/s.
    scored = await anyio.to_thread.run_sync(
        score_rows,
        detector,
        features,
        services.settings.attribution_top_k,
        limiter=services.scoring_limiter,
    )
    value = float(scored.scores[0])
    anomalous = bool(scored.flags[0])
    services.metrics.scores.labels("anomaly" if anomalous else "normal").inc()
    attribution = scored.attributions.get(0) if anomalous else None
    body = encode_verdict(
        record.vehicle_id,
        record.timestamp,
        value,
        detector.version,
        format_timestamp(datetime.now(UTC)),
        attribution=attribution,
    )
    return Response(body, media_type="application/json")
