"""The api's traces (a SERVER span per request, the training as its child) and JSON logs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from tests.unit.api.api_support import AUTH, make_settings, records, serve


async def test_ingest_is_traced_and_logged_with_its_ids(
    tmp_path: Path, json_log: io.StringIO
) -> None:
    """/ingest makes a SERVER span with the training as child, logs with its ids, and metrics."""
    exporter = InMemorySpanExporter()
    app = create_app(make_settings(tmp_path / "models"), span_exporter=exporter)
    rows = np.random.default_rng(0).normal(size=(40, 4)).round(4).tolist()
    async with serve(app) as client:
        response = await client.post("/ingest", json={"records": records(rows)}, headers=AUTH)
        assert response.status_code == 201
        request_id = response.headers["X-Request-ID"]
        metrics = (await client.get("/metrics")).text

    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "POST /ingest"
    assert server.attributes is not None and server.attributes["http.status_code"] == 201
    (training,) = [s for s in spans if s.name == "train model"]
    assert training.parent is not None and server.context is not None
    assert training.parent.span_id == server.context.span_id
    assert training.context is not None and training.context.trace_id == server.context.trace_id
    assert training.attributes is not None and training.attributes["training.records"] == 40
    trace_id = format(server.context.trace_id, "032x")

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert lines
    for line in lines:
        assert {"trace_id", "span_id", "request_id"} <= set(line), line
    request_lines = [line for line in lines if line["request_id"] == request_id]
    messages = {line["message"] for line in request_lines}
    assert "model version published" in messages
    assert "POST /ingest 201" in messages
    for line in request_lines:
        assert line["trace_id"] == trace_id
        assert line["span_id"] is not None
    # /metrics is not traced (nor the probes)
    assert not [s for s in spans if "metrics" in s.name]

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }
    prefix = "vehicle_anomaly_api_"
    labels = (("method", "POST"), ("route", "/ingest"), ("status", "201"))
    assert samples[(prefix + "http_requests_total", labels)] == 1
    assert samples[(prefix + "http_request_duration_seconds_count", labels)] == 1
    assert samples[(prefix + "training_duration_seconds_count", ())] == 1
    assert samples[(prefix + "training_records_sum", ())] == 40


async def test_without_an_exporter_nothing_is_traced(tmp_path: Path) -> None:
    """Without a span exporter the app has no tracer and still serves."""
    app = create_app(make_settings(tmp_path / "models"))
    assert app.state.tracer is None
    async with serve(app) as client:
        assert (await client.get("/healthz")).status_code == 200
