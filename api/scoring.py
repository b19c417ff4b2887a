"""The verdict on one ``/score`` record: the one core of the route and of its fast path."""

from __future__ import annotations

import functools
from datetime import UTC, datetime

import anyio.to_thread
import numpy as np

from api.services import Services
from shared.context import epoch_seconds
from shared.schemas import ScoreRequest, format_timestamp
from shared.verdicts import encode_verdict, score_after_history, score_rows

# Histories longer than this are scored in a worker thread, not on the event loop.
INLINE_HISTORY = 16


async def verdict(services: Services, record: ScoreRequest, model_version: str | None) -> bytes:
    """The verdict's JSON under the active version (or ``model_version``)."""
    models = services.models
    detector = await (models.active() if model_version is None else models.get(model_version))
    detector.check_width(len(record.feature_vector))
    top_k = services.settings.attribution_top_k
    # One record takes the compiled forest microseconds: scored on the event loop, since a
    # thread hop costs more than that. A long history is scored in a worker thread.
    if detector.kind == "context":
        records = [*(record.history or ()), record]
        call = functools.partial(
            score_after_history,
            detector,
            [r.vehicle_id for r in records],
            epoch_seconds([r.timestamp for r in records]),
            np.asarray([r.feature_vector for r in records], dtype=np.float64),
            top_k,
        )
    else:
        features = np.asarray([record.feature_vector], dtype=np.float64)
        call = functools.partial(score_rows, detector, features, top_k)
    if len(record.history or ()) > INLINE_HISTORY:
        scored = await anyio.to_thread.run_sync(call, limiter=services.scoring_limiter)
    else:
        scored = call()
    value = float(scored.scores[0])
    anomalous = bool(scored.flags[0])
    services.metrics.scored[anomalous].inc()
    attribution = scored.attributions.get(0) if anomalous else None
    body = encode_verdict(
        record.vehicle_id,
        record.timestamp,
        value,
        detector.version,
        format_timestamp(datetime.now(UTC)),
        attribution=attribution,
    )
    return body
