"""``POST /score``: one record's verdict from the active (or a chosen) model version.

A context model judges the record after its optional ``history``; a point model alone.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import ScoreBody, ServicesDep
from api.openapi import AUTH_PROBLEMS, BODY_PROBLEMS, json_body, problem_responses
from api.scoring import verdict
from shared.schemas import (
    MAX_HISTORY,
    RECORD_EXAMPLE,
    SCORE_HISTORY_EXAMPLE,
    VERDICT_EXAMPLE,
    ScoreRequest,
    Verdict,
)

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
    # (the caller was authenticated and rate-limited by the router's dependency; POST /score
    # is normally answered by api.score_fast before routing, with the same functions)
    return Response(await verdict(services, record, model_version), media_type="application/json")
