"""The FastAPI application: ``create_app(settings)``.

Building the app checks the configuration (no API key and auth not disabled, or no model
signing key and unsigned models not allowed: it refuses, with :class:`ConfigurationError`) and wires middleware and routes; the lifespan makes the
registry directory and the shared services. Nothing is read or loaded at import time.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.auth import API_KEY_HEADER, KeyRing
from api.client_address import parse_networks
from api.deps import rate_limited
from api.docs import install_docs
from api.errors import install_error_handlers
from api.metrics import ApiMetrics
from api.middleware import (
    REQUEST_ID_HEADER,
    BodyLimit,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
)
from api.openapi import install_openapi
from api.ratelimit import TokenBucketLimiter
from api.routes import health, ingest, jobs, models, score
from api.score_fast import ScoreFastPath, install_score_dispatch
from api.services import build_services
from api.topic_jobs import build_topic_jobs
from api.topic_request import TopicTrainingRequest
from shared.schemas import ScoreRequest, TelemetryRecord
from shared.settings import UNSIGNED_WARNING, Settings, load_settings
from shared.tracing import API_SERVICE, tracer_provider
from shared.training_schemas import TrainingRequest

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from shared.topic_training import TopicReader

logger = logging.getLogger("api")

# FastAPI's own OpenTelemetry hooks (0.165 and later) stay off: the api traces with its own
# instrumentation (one SERVER span per request), and their per-request check of the global
# providers cost a few per cent of a /score.
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)

DESCRIPTION = """\
Trains IsolationForest models on vehicle telemetry (`POST /ingest`) and scores records
(`POST /score`) against a model registry shared with the streaming worker.

Every route but the probes, `/metrics` and these docs needs an API key: `X-API-Key: <key>`
or `Authorization: Bearer <key>` (the **Authorize** button). Errors are
`application/problem+json` (RFC 9457); every answer carries `X-Request-ID`.
"""

TAGS = [
    {"name": "training", "description": "Train and publish model versions."},
    {"name": "scoring", "description": "Score a record."},
    {"name": "models", "description": "The model registry: inspect, roll back, delete."},
    {"name": "jobs", "description": "Background jobs (training from the topic): their reports."},
    {"name": "health", "description": "Probes and metrics (no API key)."},
]


def _service_version() -> str:
    try:
        return package_version("vehicle-anomaly")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def create_app(
    settings: Settings | None = None,
    *,
    span_exporter: SpanExporter | None = None,
    topic_reader: TopicReader | None = None,
) -> FastAPI:
    """The api for ``settings`` (default: read from the environment).

    Tracing (a SERVER span per request, a ``train model`` child per training) is on when
    spans go somewhere: ``span_exporter`` (tests) or ``OTEL_EXPORTER_OTLP_ENDPOINT``. Topic
    jobs read through ``topic_reader`` (tests), else from Kafka.
    """
    settings = settings if settings is not None else load_settings()
    keys = KeyRing.from_settings(settings)  # ConfigurationError without keys
    unsigned = settings.models_unsigned()  # ConfigurationError: no key, unsigned not allowed
    metrics = ApiMetrics()
    provider = None
    if span_exporter is not None or settings.otel_exporter_otlp_endpoint:
        provider = tracer_provider(API_SERVICE, settings, exporter=span_exporter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if keys.disabled:
            logger.warning(
                "AUTH_DISABLED=true: every route is open to anyone who can reach this port; "
                "use it for a local demo only"
            )
        if unsigned:
            logger.warning(UNSIGNED_WARNING)
        services = build_services(settings, metrics, keys)
        app.state.services = services
        app.state.jobs = build_topic_jobs(services, topic_reader)
        logger.info(
            "api started",
            extra={
                "model_dir": str(settings.model_dir),
                "active_model": services.registry.active_version(),
                "api_keys": len(keys),
                "auth_disabled": keys.disabled,
            },
        )
        yield
        await app.state.jobs.shutdown()  # a job still reading ends failed (job-interrupted)
        services.body_processes.close()
        logger.info("api stopped")
        if provider is not None:
            provider.shutdown()  # flushes the spans still batched for OTLP

    app = FastAPI(
        title="Vehicle anomaly api",
        version=_service_version(),
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # served by install_docs, with local assets
        redoc_url=None,
        openapi_url="/openapi.json",
        **_NO_NATIVE_TELEMETRY,
    )
    install_docs(app, "/openapi.json")
    app.state.settings = settings
    app.state.keys = keys
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    app.state.auth_failures = TokenBucketLimiter(
        settings.auth_failures_per_minute / 60.0, settings.auth_failure_burst
    )
    app.state.metrics = metrics
    app.state.tracer = provider.get_tracer("api") if provider is not None else None

    protected = [Depends(rate_limited)]
    app.include_router(ingest.router, dependencies=protected)
    app.include_router(score.router, dependencies=protected)
    app.include_router(models.router, dependencies=protected)
    app.include_router(jobs.router, dependencies=protected)
    app.include_router(health.router)

    install_error_handlers(app)
    install_openapi(app, [TrainingRequest, TelemetryRecord, ScoreRequest, TopicTrainingRequest])

    # add_middleware wraps: the last one added is the outermost.
    app.add_middleware(ScoreFastPath, fastapi=app)  # innermost: inside the limits and logs
    app.add_middleware(
        BodySizeLimitMiddleware,
        limits={
            "/ingest": BodyLimit(settings.ingest_max_body_bytes, "INGEST_MAX_BODY_BYTES"),
            "/score": BodyLimit(
                settings.score_max_body_bytes, "SCORE_MAX_BODY_BYTES", "send a shorter history"
            ),
        },
        default=BodyLimit(settings.other_max_body_bytes, "OTHER_MAX_BODY_BYTES", "send less"),
        read_timeout=settings.body_read_timeout_seconds,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", API_KEY_HEADER, REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After", "Location"],
            max_age=600,
        )
    if provider is None:
        install_score_dispatch(app)  # POST /score past FastAPI's outer layers
    else:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # Outermost: the server span covers the request middleware, so its access line
        # and the route's logs carry the trace id.
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, excluded_urls="healthz,health/ready,metrics"
        )
    return app
