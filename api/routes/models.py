"""The model registry: list, inspect, activate (roll back) and delete versions."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Response
from pydantic import ValidationError

from api.deps import AdminCaller, AuthorizedCaller, ModelCacheDep, RegistryDep, ServicesDep
from api.openapi import ADMIN_PROBLEMS, AUTH_PROBLEMS, VERSION_EXAMPLE, problem_responses
from api.schemas import ModelInfo, ModelList
from shared.errors import ModelIntegrityError, ModelNotFoundError, NotCandidateError
from shared.registry import version_sort_key
from shared.reports import (
    DRIFT_EXAMPLE,
    SHADOW_EXAMPLE,
    DriftReport,
    ShadowReport,
    drift_report,
    shadow_report,
)
from shared.training_schemas import ModelMeta
from shared.worker_figures import ObservationStore

logger = logging.getLogger("api.models")

router = APIRouter(prefix="/models", tags=["models"])

# A version's name, as shared.registry_files.is_version_name checks it.
VERSION_PATTERN = r"^[0-9]{14}(-[0-9]+)?$"

VersionPath = Annotated[str, Path(description="a version name, e.g. 20240115100000", max_length=64)]

META_EXAMPLE: dict[str, Any] = {
    "version": "20240115100000",
    **VERSION_EXAMPLE,
    "record_count": 5000,
    "signature": None,
    "sklearn_version": "1.5.2",
    "active": True,
}


def _info(meta: ModelMeta, active: str | None, candidate: str | None = None) -> ModelInfo:
    return ModelInfo.model_validate(
        {
            **meta.model_dump(),
            "active": meta.version == active,
            "candidate": meta.version == candidate,
        }
    )


@router.get(
    "",
    summary="List the model versions",
    description="Every version's metadata, newest first, and which one is active.",
    response_model=ModelList,
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {"active": "20240115100000", "models": [META_EXAMPLE]}
                }
            }
        },
        **problem_responses(*AUTH_PROBLEMS),
    },
)
async def list_models(caller: AuthorizedCaller, registry: RegistryDep) -> ModelList:
    def read() -> ModelList:
        active = registry.active_version()
        candidate = registry.candidate_version()
        found = []
        for version in sorted(registry.versions(), key=version_sort_key, reverse=True):
            try:
                found.append(_info(registry.meta(version), active, candidate))
            except (ModelNotFoundError, ModelIntegrityError, ValidationError) as error:
                # deleted meanwhile, or its meta.json is unreadable: leave it out, say so
                logger.warning(
                    "model version skipped", extra={"model_version": version, "error": str(error)}
                )
        return ModelList(active=active, candidate=candidate, models=found)

    return await anyio.to_thread.run_sync(read)


@router.get(
    "/{version}",
    summary="One version's metadata",
    response_model=ModelInfo,
    responses={
        200: {"content": {"application/json": {"example": META_EXAMPLE}}},
        **problem_responses(*AUTH_PROBLEMS, 404, 409, 422),
    },
)
async def get_model(
    caller: AuthorizedCaller, registry: RegistryDep, version: VersionPath
) -> ModelInfo:
    def read() -> ModelInfo:
        return _info(
            registry.meta(version), registry.active_version(), registry.candidate_version()
        )

    return await anyio.to_thread.run_sync(read)


@router.post(
    "/{version}/activate",
    summary="Make a version the active one (roll back or forward)",
    description=(
        "The version is loaded and checked first, as the worker loads it: checksum, signature, "
        "that its files name this version, the estimator's type and width, and a probe that "
        "it scores. A version that fails is refused with 409 giving the reason, and the "
        "active version stays as it was."
    ),
    response_model=ModelInfo,
    responses={
        200: {"content": {"application/json": {"example": META_EXAMPLE}}},
        **problem_responses(*ADMIN_PROBLEMS, 404, 409, 422),
    },
)
async def activate_model(
    caller: AdminCaller, registry: RegistryDep, models: ModelCacheDep, version: VersionPath
) -> ModelInfo:
    previous = registry.active_version()
    await models.get(version)  # the validated loader: 409 with the reason, LATEST untouched
    meta = await anyio.to_thread.run_sync(registry.activate, version)
    logger.info(
        "model version activated",
        extra={"model_version": version, "previous": previous, "caller": caller.identity},
    )
    return _info(meta, version)


@router.delete(
    "/{version}",
    summary="Delete a version",
    description="The active version cannot be deleted (409): activate another one first.",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "Deleted."},
        **problem_responses(*ADMIN_PROBLEMS, 404, 409, 422),
    },
)
async def delete_model(
    caller: AdminCaller, registry: RegistryDep, models: ModelCacheDep, version: VersionPath
) -> Response:
    await anyio.to_thread.run_sync(registry.delete, version)
    models.evict(version)
    logger.info(
        "model version deleted", extra={"model_version": version, "caller": caller.identity}
    )
    return Response(status_code=204)


@router.get(
    "/{version}/drift",
    summary="How far the stream drifted from a version's training data",
    description=(
        "Merges the workers' rolling windows (the last `DRIFT_WINDOW_RECORDS` records each "
        "scored with this version) and compares them with the training data, per feature and "
        "for the anomaly score: population stability index and a Kolmogorov-Smirnov statistic "
        "over ten decile bins. A feature drifted when its PSI exceeds `DRIFT_PSI_THRESHOLD`. "
        "Figures appear once the windows hold `DRIFT_MIN_RECORDS` records (`ready`). 409 for a "
        "version trained without a drift reference."
    ),
    response_model=DriftReport,
    responses={
        200: {"content": {"application/json": {"example": DRIFT_EXAMPLE}}},
        **problem_responses(*AUTH_PROBLEMS, 404, 409, 422),
    },
)
async def get_drift(
    caller: AuthorizedCaller, services: ServicesDep, version: VersionPath
) -> DriftReport:
    store = ObservationStore(services.settings.model_dir)
    return await anyio.to_thread.run_sync(
        drift_report, services.registry, store, version, services.settings
    )


@router.get(
    "/{version}/shadow",
    summary="How a candidate's verdicts compare with the active model's",
    description=(
        "The workers score every record with the active version and, in shadow, with the "
        "candidate (`POST /ingest?activate=false` or `POST /models/{version}/shadow`), without "
        "publishing the candidate's verdicts. The report merges their figures: each model's "
        "anomaly rate, verdicts that would flip each way, agreement, and Spearman's rank "
        "correlation of the scores. `against` picks the active version compared with (default: "
        "the active one now). Promote with `POST /models/{version}/activate`."
    ),
    response_model=ShadowReport,
    responses={
        200: {"content": {"application/json": {"example": SHADOW_EXAMPLE}}},
        **problem_responses(*AUTH_PROBLEMS, 404, 422),
    },
)
async def get_shadow(
    caller: AuthorizedCaller,
    services: ServicesDep,
    version: VersionPath,
    against: Annotated[
        str | None,
        Query(
            description="the active version compared with",
            max_length=64,
            pattern=VERSION_PATTERN,
        ),
    ] = None,
) -> ShadowReport:
    store = ObservationStore(services.settings.model_dir)
    return await anyio.to_thread.run_sync(
        shadow_report, services.registry, store, version, against, services.settings
    )


@router.post(
    "/{version}/shadow",
    summary="Score a version in shadow (make it the candidate)",
    description=(
        "The workers pick it up at their next registry poll. One candidate at a time: this "
        "replaces the previous one. The active version cannot be a candidate (409), nor a "
        "version that fails the loader's checks (409, with the reason)."
    ),
    response_model=ModelInfo,
    responses={
        200: {"content": {"application/json": {"example": {**META_EXAMPLE, "active": False}}}},
        **problem_responses(*ADMIN_PROBLEMS, 404, 409, 422),
    },
)
async def start_shadow(
    caller: AdminCaller, registry: RegistryDep, models: ModelCacheDep, version: VersionPath
) -> ModelInfo:
    registry.meta(version)  # 404 before loading anything
    await models.get(version)  # a candidate the worker would refuse is refused here (409)
    meta = await anyio.to_thread.run_sync(registry.set_candidate, version)
    logger.info("shadow candidate set", extra={"model_version": version, "caller": caller.identity})
    return _info(meta, registry.active_version(), version)


@router.delete(
    "/{version}/shadow",
    summary="Stop scoring a version in shadow",
    description="409 when the version is not the current candidate.",
    status_code=204,
    response_class=Response,
    responses={
        204: {"description": "Shadow scoring stops at the workers' next poll."},
        **problem_responses(*ADMIN_PROBLEMS, 404, 409, 422),
    },
)
async def stop_shadow(caller: AdminCaller, registry: RegistryDep, version: VersionPath) -> Response:
    def clear() -> None:
        registry.meta(version)
        if registry.candidate_version() != version:
            raise NotCandidateError(f"model version {version!r} is not the shadow candidate")
        registry.clear_candidate()

    await anyio.to_thread.run_sync(clear)
    logger.info(
        "shadow candidate cleared", extra={"model_version": version, "caller": caller.identity}
    )
    return Response(status_code=204)
