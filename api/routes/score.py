"""``POST /score``: one record's verdict from the active (or a chosen) model version.

A context model judges the record after its optional ``history``; a point model alone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Query, Response

from api.deps import ScoreBody, ServicesDep
from api.openapi import AUTH_PROBLEMS, BODY_PROBLEMS, json_body, problem_responses
from shared.context import epoch_seconds
from shared.schemas import (
    MAX_HISTORY,
    RECORD_EXAMPLE,
    SCORE_HISTORY_EXAMPLE,
    VERDICT_EXAMPLE,
    ScoreRequest,
    Verdict,
    format_timestamp,
)
from shared.verdicts import encode_verdict, score_after_history, score_rows

router = APIRouter(tags=["scoring"])


@router.post(
    "/score",
    summary="Score one record",
    description=(
        "The record's `anomaly_score` is the `decision_function` of the model's IsolationForest "
        "(negative = anomalous, `is_anomaly` = score < 0) under the active model version, or "
        "under `model_version`. The answer has no `source` (that is for streamed verdicts). "
        "A context model judges the record in its vehicle's history: the optional `history` "
        f"(up to {MAX_HISTORY} of the vehicle's previous records, oldest first) is scored "
        "first, from an empty history, then the record; without `history` the record is "
        "judged as a vehicle's first reading, so its change, noise, flat-line and sustained "
        "evidence are empty. A point model ignores `history`. 404 when no model was trained "
        "yet or the version does not exist; 422 when the feature vector has another length "
        "than the model's, or a history record another length than the record's. An "
        "anomalous answer carries `attribution`: the features (sensors) that drove it, ranked "
        "(`ATTRIBUTION_TOP_K`), with the kind of `evidence` for a context model."
    ),
    response_model=Verdict,
    response_model_exclude={"source"},
    responses={
        200: {"content": {"application/json": {"example": VERDICT_EXAMPLE}}},
        **problem_responses(*AUTH_PROBLEMS, *BODY_PROBLEMS, 404, 409),
    },
    openapi_extra=json_body(
        ScoreRequest,
        {
            "seed": {"summary": "The seed's example", "value": RECORD_EXAMPLE},
            "history": {
                "summary": "A record after its vehicle's previous records",
                "value": SCORE_HISTORY_EXAMPLE,
            },
        },
    ),
)
async def score(
    record: ScoreBody,
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
    top_k = services.settings.attribution_top_k
    # In a worker thread even though the compiled forest takes microseconds a row: measured
    # with bench/api_load.py, scoring inline on the event loop gave ~15% fewer requests/s.
    if detector.kind == "context":
        records = [*(record.history or ()), record]
        scored = await anyio.to_thread.run_sync(
            score_after_history,
            detector,
            [r.vehicle_id for r in records],
            epoch_seconds([r.timestamp for r in records]),
            np.asarray([r.feature_vector for r in records], dtype=np.float64),
            top_k,
            limiter=services.scoring_limiter,
        )
    else:
        features = np.asarray([record.feature_vector], dtype=np.float64)
        scored = await anyio.to_thread.run_sync(
            score_rows, detector, features, top_k, limiter=services.scoring_limiter
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
