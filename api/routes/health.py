"""Probes and metrics: no API key, no rate limit."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.deps import ServicesDep
from api.schemas import ActiveModel, HealthReport, RegistryHealth, Status
from shared.errors import NoActiveModelError, RegistryError

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Liveness",
    description="Answers 200 while the process serves HTTP; it touches nothing else.",
    response_model=Status,
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
async def healthz() -> Status:
    return Status(status="ok")


@router.get(
    "/health/ready",
    summary="Readiness",
    description=(
        "200 when the model registry can be read and the active version, if there is one, "
        "loads and passes the loader's checks (no model yet is ready); else 503, with the "
        "reason in `detail`."
    ),
    response_model=Status,
    responses={
        200: {"content": {"application/json": {"example": {"status": "ready"}}}},
        503: {
            "model": Status,
            "description": "The registry cannot be read, or the active version is refused.",
            "content": {"application/json": {"example": {"status": "registry unreadable"}}},
        },
    },
)
async def ready(services: ServicesDep) -> Response:
    if not services.registry.readable():
        return JSONResponse({"status": "registry unreadable"}, status_code=503)
    try:
        await services.models.active()  # loaded once; then a dictionary look-up
    except NoActiveModelError:
        pass
    except RegistryError as error:
        return JSONResponse(
            {"status": "active model refused", "detail": str(error)}, status_code=503
        )
    return JSONResponse({"status": "ready"})


HEALTH_EXAMPLE = {
    "status": "ok",
    "version": "0.1.0",
    "uptime_seconds": 3600.5,
    "registry": {"readable": True, "versions": 3},
    "model": {"version": "20240115100000", "age_seconds": 86400.0, "n_features": 4},
}


@router.get(
    "/health",
    summary="Health details",
    description=(
        "The registry's state and the active model's version and age. `status` is `degraded` "
        "when the registry cannot be read or the active version's metadata cannot be; no "
        "model yet is `ok`."
    ),
    response_model=HealthReport,
    responses={200: {"content": {"application/json": {"example": HEALTH_EXAMPLE}}}},
)
async def health(request: Request, services: ServicesDep) -> HealthReport:
    registry = services.registry
    readable = registry.readable()
    model = ActiveModel(version=None)
    degraded = not readable
    if readable:
        try:
            version = registry.active_version()
        except RegistryError as error:  # LATEST names no version: shown, not a 500
            version, degraded = None, True
            model.error = str(error)
        model.version = version
        if version is not None:
            try:
                meta = registry.meta(version)
            except (RegistryError, ValueError) as error:
                model.error = str(error)
                degraded = True
            else:
                age = (datetime.now(UTC) - meta.created_at).total_seconds()
                model.age_seconds = round(age, 3)
                model.n_features = meta.n_features
    return HealthReport(
        status="degraded" if degraded else "ok",
        version=request.app.version,
        uptime_seconds=round(time.monotonic() - services.started_at, 3),
        registry=RegistryHealth(
            readable=readable, versions=len(registry.versions()) if readable else None
        ),
        model=model,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="The text exposition format.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"example": "# HELP ...\n"}}}},
)
async def metrics(request: Request, services: ServicesDep) -> Response:
    # Only the exact path: `/%6detrics` decodes to /metrics too, but a load balancer's rule
    # that hides /metrics does not match it.
    raw = request.scope.get("raw_path")
    if raw is not None and raw.split(b"?", 1)[0] != b"/metrics":
        raise StarletteHTTPException(404)
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
