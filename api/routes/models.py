"""The model registry: list, inspect, activate (roll back) and delete versions."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Response
from pydantic import ValidationError

from api.deps import AuthorizedCaller, ModelCacheDep, RegistryDep
from api.openapi import AUTH_PROBLEMS, VERSION_EXAMPLE, problem_responses
from api.schemas import ModelInfo, ModelList
from shared.errors import ModelIntegrityError, ModelNotFoundError
from shared.registry import version_sort_key
from shared.schemas import ModelMeta

logger = logging.getLogger("api.models")

router = APIRouter(prefix="/models", tags=["models"])

VersionPath = Annotated[str, Path(description="a version name, e.g. 20240115100000", max_length=64)]

META_EXAMPLE: dict[str, Any] = {
    "version": "20240115100000",
    **VERSION_EXAMPLE,
    "record_count": 5000,
    "signature": None,
    "sklearn_version": "1.5.2",
    "active": True,
}


def _info(meta: ModelMeta, active: str | None) -> ModelInfo:
    return ModelInfo.model_validate({**meta.model_dump(), "active": meta.version == active})


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
        found = []
        for version in sorted(registry.versions(), key=version_sort_key, reverse=True):
            try:
                found.append(_info(registry.meta(version), active))
            except (ModelNotFoundError, ModelIntegrityError, ValidationError) as error:
                # deleted meanwhile, or its meta.json is unreadable: leave it out, say so
                logger.warning(
                    "model version skipped", extra={"model_version": version, "error": str(error)}
                )
        return ModelList(active=active, models=found)

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
        return _info(registry.meta(version), registry.active_version())

    return await anyio.to_thread.run_sync(read)


@router.post(
    "/{version}/activate",
    summary="Make a version the active one (roll back or forward)",
    description=(
        "The version's checksum (and signature, with MODEL_SIGNING_KEY) is verified first: a "
        "version that fails is refused with 409 and the active version stays as it was."
    ),
    response_model=ModelInfo,
    responses={
        200: {"content": {"application/json": {"example": META_EXAMPLE}}},
        **problem_responses(*AUTH_PROBLEMS, 404, 409, 422),
    },
)
async def activate_model(
    caller: AuthorizedCaller, registry: RegistryDep, version: VersionPath
) -> ModelInfo:
    previous = registry.active_version()
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
        **problem_responses(*AUTH_PROBLEMS, 404, 409, 422),
    },
)
async def delete_model(
    caller: AuthorizedCaller, registry: RegistryDep, models: ModelCacheDep, version: VersionPath
) -> Response:
    await anyio.to_thread.run_sync(registry.delete, version)
    models.evict(version)
    logger.info(
        "model version deleted", extra={"model_version": version, "caller": caller.identity}
    )
    return Response(status_code=204)
