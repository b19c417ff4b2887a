"""Reports on a model version from the workers' figures: drift and shadow agreement.

The workers write their drift windows and shadow counters to the model volume
(:mod:`shared.worker_figures`); these functions merge every worker's figures for a version
and compare them with what the version was trained on. They raise core errors
(:class:`~shared.errors.ModelNotFoundError`, :class:`~shared.errors.NoDriftReferenceError`);
``GET /models/{version}/drift`` and ``GET /models/{candidate}/shadow`` answer them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from shared.drift import DriftReference, merge_counts, statistics
from shared.errors import NoDriftReferenceError
from shared.registry import ModelRegistry
from shared.settings import Settings
from shared.shadow import report as shadow_figures
from shared.worker_figures import DRIFT, SHADOW, ObservationStore


class DriftStatistic(BaseModel):
    """How far one feature (or the score) moved from the training data."""

    feature: int | None = Field(None, description="index in feature_vector; absent for the score")
    name: str | None = Field(None, description="the feature's name, when the model has names")
    psi: float = Field(description="population stability index over ten decile bins")
    ks: float = Field(description="Kolmogorov-Smirnov statistic on the same bins")
    drifted: bool = Field(description="psi above DRIFT_PSI_THRESHOLD")


DRIFT_EXAMPLE: dict[str, Any] = {
    "version": "20240115100000",
    "active": True,
    "records": 10000,
    "ready": True,
    "threshold": 0.25,
    "drifted": True,
    "features": [
        {"feature": 0, "name": "speed", "psi": 0.012, "ks": 0.031, "drifted": False},
        {"feature": 4, "name": "oil_pressure", "psi": 0.61, "ks": 0.33, "drifted": True},
    ],
    "score": {"psi": 0.29, "ks": 0.18, "drifted": True},
    "workers": 2,
    "stale": False,
    "observed_at": "2024-01-15T10:05:00Z",
}


class DriftReport(BaseModel):
    """``GET /models/{version}/drift``: the workers' rolling window against the training data."""

    model_config = ConfigDict(json_schema_extra={"examples": [DRIFT_EXAMPLE]})

    version: str
    active: bool
    records: int = Field(description="scored records in the workers' windows, summed")
    ready: bool = Field(description="whether the windows hold DRIFT_MIN_RECORDS records")
    threshold: float
    drifted: bool = Field(description="any feature or the score drifted (only when ready)")
    features: list[DriftStatistic]
    score: DriftStatistic | None
    workers: int = Field(description="workers whose windows were merged")
    stale: bool = Field(description="no worker wrote within OBSERVATIONS_TTL_SECONDS")
    observed_at: str | None = Field(description="when the newest window was written")


SHADOW_EXAMPLE: dict[str, Any] = {
    "candidate": "20240116090000",
    "active": "20240115100000",
    "shadowing": True,
    "records": 48210,
    "active_anomalies": 1012,
    "candidate_anomalies": 964,
    "active_anomaly_rate": 0.020992,
    "candidate_anomaly_rate": 0.019996,
    "flips_to_anomaly": 61,
    "flips_to_normal": 109,
    "agreement": 0.996474,
    "rank_correlation": 0.981532,
    "rank_correlation_sample": 10000,
    "workers": 1,
    "stale": False,
    "observed_at": "2024-01-16T09:30:00Z",
}


class ShadowReport(BaseModel):
    """``GET /models/{candidate}/shadow``: the candidate's verdicts against the active one's."""

    model_config = ConfigDict(json_schema_extra={"examples": [SHADOW_EXAMPLE]})

    candidate: str
    active: str | None = Field(description="the version it was compared with")
    shadowing: bool = Field(description="whether it is the candidate the workers score now")
    records: int = Field(description="records scored by both")
    active_anomalies: int
    candidate_anomalies: int
    active_anomaly_rate: float | None
    candidate_anomaly_rate: float | None
    flips_to_anomaly: int = Field(description="normal for the active model, anomalous for it")
    flips_to_normal: int = Field(description="anomalous for the active model, normal for it")
    agreement: float | None = Field(description="share of records with the same verdict")
    rank_correlation: float | None = Field(
        description="Spearman's rank correlation of the two models' scores, over the sample"
    )
    rank_correlation_sample: int = Field(
        description="score pairs it was computed on (the latest SHADOW_SAMPLE_RECORDS per worker)"
    )
    workers: int
    stale: bool
    observed_at: str | None


def _observed_at(payloads: list[dict[str, Any]]) -> str | None:
    if not payloads:
        return None
    newest = max(float(p.get("written_at", 0)) for p in payloads)
    return datetime.fromtimestamp(newest, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def drift_report(
    registry: ModelRegistry, store: ObservationStore, version: str, settings: Settings
) -> DriftReport:
    """Merge the workers' drift windows of ``version`` and compare them with its reference."""
    meta = registry.meta(version)
    reference = DriftReference.from_meta(meta.model_extra)
    if reference is None:
        raise NoDriftReferenceError(
            f"model version {version!r} was trained without a drift reference; "
            "train a new version to watch drift"
        )
    payloads, stale = store.read(DRIFT, (version,), settings.observations_ttl_seconds)
    usable = [
        p
        for p in payloads
        if np.asarray(p.get("counts", [])).shape == (len(reference.edges), reference.width)
    ]
    counts = merge_counts(np.asarray(p["counts"], dtype=np.int64) for p in usable)
    records = sum(int(p.get("records", 0)) for p in usable)
    ready = counts is not None and records >= settings.drift_min_records
    names = (meta.model_extra or {}).get("feature_names")
    threshold = settings.drift_psi_threshold
    features: list[DriftStatistic] = []
    score: DriftStatistic | None = None
    if ready and counts is not None:
        stats = statistics(reference, counts)
        for label, values in stats.items():
            item = DriftStatistic(
                feature=None if label == "score" else int(label),
                name=None
                if label == "score" or not isinstance(names, list)
                else str(names[int(label)]),
                psi=values["psi"],
                ks=values["ks"],
                drifted=values["psi"] > threshold,
            )
            if label == "score":
                score = item
            else:
                features.append(item)
    return DriftReport(
        version=version,
        active=registry.active_version() == version,
        records=records,
        ready=ready,
        threshold=threshold,
        drifted=any(f.drifted for f in features) or bool(score and score.drifted),
        features=features,
        score=score,
        workers=len(usable),
        stale=stale,
        observed_at=_observed_at(usable),
    )


def shadow_report(
    registry: ModelRegistry,
    store: ObservationStore,
    candidate: str,
    against: str | None,
    settings: Settings,
) -> ShadowReport:
    """Merge the workers' shadow figures of ``candidate`` against ``against`` (or the active)."""
    registry.meta(candidate)  # 404 when there is no such version
    active = against or registry.active_version()
    if active is None:
        compared = store.subjects(SHADOW, candidate)
        active = compared[-1] if compared else None
    payloads, stale = (
        store.read(SHADOW, (candidate, active), settings.observations_ttl_seconds)
        if active is not None
        else ([], False)
    )
    figures = shadow_figures(payloads)
    return ShadowReport.model_validate(
        {
            **figures,
            "candidate": candidate,
            "active": active,
            "shadowing": registry.candidate_version() == candidate,
            "workers": len(payloads),
            "stale": stale,
            "observed_at": _observed_at(payloads),
        }
    )
