"""OpenTelemetry tracing set-up for both services.

Spans go to OTLP (HTTP/protobuf) when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (the ADOT
collector sidecar in AWS, which forwards to X-Ray), and nowhere otherwise. The resource
names the service (``anomaly-consumer`` or ``anomaly-api``) and, on ECS, the task (cluster,
task ARN, container) from the task metadata endpoint.
"""

from __future__ import annotations

import logging
import os
from importlib import metadata

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from shared.settings import Settings

log = logging.getLogger(__name__)

CONSUMER_SERVICE = "anomaly-consumer"
API_SERVICE = "anomaly-api"


def _version() -> str:
    try:
        return metadata.version("vehicle-anomaly")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def build_resource(service_name: str) -> Resource:
    """Service name and version, OTEL_RESOURCE_ATTRIBUTES, and ECS task attributes when on ECS."""
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": "vehicle-anomaly",
            "service.version": _version(),
        }
    )
    if os.environ.get("ECS_CONTAINER_METADATA_URI_V4") or os.environ.get(
        "ECS_CONTAINER_METADATA_URI"
    ):
        try:
            from opentelemetry.sdk.extension.aws.resource.ecs import AwsEcsResourceDetector

            resource = resource.merge(AwsEcsResourceDetector().detect())
        except Exception as error:  # tracing must never stop a service
            log.warning("ECS resource detection failed: %s", error)
    return resource


def tracer_provider(
    service_name: str, settings: Settings, *, exporter: SpanExporter | None = None
) -> TracerProvider:
    """A provider exporting to ``exporter`` when given, else to OTLP when configured, else nowhere."""
    provider = TracerProvider(resource=build_resource(service_name))
    processor: SpanProcessor | None = None
    if exporter is not None:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        processor = SimpleSpanProcessor(exporter)
    elif settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
    if processor is not None:
        provider.add_span_processor(processor)
    return provider
