"""Traces, metrics and logs of an in-process worker against a real broker."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.kafka_helpers import produce
from tests.integration.worker_helpers import (
    Topics,
    asgi_get,
    collect_outputs,
    group_offsets,
    publish_model,
    record_value,
    running_worker,
    telemetry,
    wait_until,
    worker_settings,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
POISON_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
POISON_TRACEPARENT = f"00-{POISON_TRACE_ID}-b7ad6b7169203331-01"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def trace_of(spans: list[ReadableSpan], trace_id: str) -> list[ReadableSpan]:
    return [
        s for s in spans if s.context is not None and format(s.context.trace_id, "032x") == trace_id
    ]


async def test_traces_metrics_and_logs_of_a_run(
    kafka_bootstrap: str, topics: Topics, model_dir: Path, json_log: io.StringIO
) -> None:
    """A run continues the producer's trace, counts every record, and logs dead letters with ids."""
    version, _ = publish_model(model_dir)
    values, keys = telemetry(300, anomaly_every=25)  # 12 far-out records
    headers: list[list[tuple[str, bytes]] | None] = [None] * len(values)
    headers[0] = [("traceparent", TRACEPARENT.encode())]  # record 0 is far out: an anomaly
    poison = [b"not json", record_value("VH-X", [1.0, 2.0])]  # invalid_json, dimension_mismatch
    values += poison
    keys += [b"VH-BAD", b"VH-BAD"]
    headers += [[("traceparent", POISON_TRACEPARENT.encode())], None]
    metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys, headers=headers)
    sent = {(m.partition, m.offset) for m in metas}
    traced_at = (metas[0].partition, metas[0].offset)
    poison_at = (metas[-2].partition, metas[-2].offset)
    ends: dict[int, int] = {}
    for meta in metas:
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)

    exporter = InMemorySpanExporter()
    settings = worker_settings(
        kafka_bootstrap,
        topics,
        model_dir,
        publish_all_verdicts=True,
        batch_max_records=64,
        consumer_lag_poll_seconds=0.2,
    )
    async with running_worker(settings, span_exporter=exporter) as worker:
        outputs = await collect_outputs(kafka_bootstrap, topics, sent, timeout=60)
        for _ in range(100):
            committed = {
                tp.partition: o
                for tp, o in (await group_offsets(kafka_bootstrap, topics.group)).items()
            }
            if committed == ends:
                break
            await asyncio.sleep(0.1)
        assert committed == ends

        def drained() -> bool:
            lag = {
                labels: v
                for (name, labels), v in samples(worker.metrics.render().decode()).items()
                if name == "anomaly_worker_consumer_lag_records"
            }
            return len(lag) == 3 and all(v == 0 for v in lag.values())

        await wait_until(drained, 10, "lag back to 0 on every partition")
        text = (await asgi_get(worker, "/metrics")).text

    # -- traces: the producer's trace continues through the worker to the verdict ----------
    spans = list(exporter.get_finished_spans())
    in_trace = trace_of(spans, TRACE_ID)
    process = [
        s
        for s in in_trace
        if s.kind is SpanKind.CONSUMER and s.name == f"{topics.telemetry} process"
    ]
    publish = [
        s
        for s in in_trace
        if s.kind is SpanKind.PRODUCER and s.name == f"{topics.anomalies} publish"
    ]
    assert len(process) == 1 and len(publish) == 1, [s.name for s in in_trace]
    assert process[0].parent is not None
    assert format(process[0].parent.span_id, "016x") == PARENT_SPAN_ID
    assert publish[0].parent is not None and process[0].context is not None
    assert publish[0].parent.span_id == process[0].context.span_id
    # the verdict carries the publish span onward
    (verdict,) = outputs.verdict_records[traced_at]
    carried = dict(verdict.headers)["traceparent"].decode()
    assert publish[0].context is not None
    assert carried == f"00-{TRACE_ID}-{format(publish[0].context.span_id, '016x')}-01"
    # the dead letter of the traced poison record too, under its own trace
    assert any(s.name == f"{topics.dlq} publish" for s in trace_of(spans, POISON_TRACE_ID))
    (dead,) = outputs.dead_letters[poison_at]
    # a batch span (FastStream's) links to each traced record's context
    linked = {
        format(link.context.trace_id, "032x")
        for s in spans
        for link in s.links
        if s.kind is SpanKind.CONSUMER
    }
    assert {TRACE_ID, POISON_TRACE_ID} <= linked
    batch_spans = [
        s
        for s in spans
        if s.name == f"{topics.telemetry} process"
        and s.parent is not None
        and s.context is not None
        and format(s.context.trace_id, "032x") not in (TRACE_ID, POISON_TRACE_ID)
    ]
    assert batch_spans, "FastStream's batch process spans"
    # an untraced verdict carries its batch span's context
    other = next(w for w in outputs.verdict_records if w != traced_at)
    assert dict(outputs.verdict_records[other][0].headers)["traceparent"].startswith(b"00-")

    # -- metrics: counts equal what was sent ------------------------------------------------
    found = samples(text)
    valid = len(values) - len(poison)
    anomalies = sum(1 for (body,) in outputs.verdicts.values() if body["is_anomaly"])
    assert anomalies >= 12
    assert value(found, "anomaly_worker_records_consumed_total") == len(values)
    assert value(found, "anomaly_worker_verdicts_published_total", outcome="anomaly") == anomalies
    assert (
        value(found, "anomaly_worker_verdicts_published_total", outcome="normal")
        == valid - anomalies
    )
    assert value(found, "anomaly_worker_dead_letters_total", reason="invalid_json") == 1
    assert value(found, "anomaly_worker_dead_letters_total", reason="dimension_mismatch") == 1
    batches = value(found, "anomaly_worker_batches_total")
    assert batches >= len(values) / 64
    assert value(found, "anomaly_worker_batch_size_records_count") == batches
    assert value(found, "anomaly_worker_batch_size_records_sum") == len(values)
    assert value(found, "anomaly_worker_scoring_duration_seconds_count") == batches
    assert 0 < value(found, "anomaly_worker_scoring_duration_seconds_sum") < 30
    assert value(found, "anomaly_worker_end_to_end_latency_seconds_count") == len(values)
    assert 0 < value(found, "anomaly_worker_end_to_end_latency_seconds_sum") / len(values) < 60
    assert value(found, "anomaly_worker_anomaly_score_count") == valid
    assert value(found, "anomaly_worker_anomaly_score_bucket", le="0.0") == anomalies
    assert value(found, "anomaly_worker_model_info", version=version, contamination="auto") == 1
    assert 0 <= value(found, "anomaly_worker_model_age_seconds") < 600
    assert value(found, "anomaly_worker_model_reloads_total") == 1
    assert value(found, "anomaly_worker_model_reload_failures_total") == 0
    for partition in range(3):
        lag = value(
            found,
            "anomaly_worker_consumer_lag_records",
            topic=topics.telemetry,
            partition=str(partition),
        )
        assert lag == 0
    # FastStream's own Prometheus middleware, in the same registry
    faststream = {name for name, _ in found if name.startswith("faststream_")}
    assert "faststream_received_messages_total" in faststream, sorted(faststream)
    assert sum(
        v for (name, _), v in found.items() if name == "faststream_received_messages_total"
    ) == len(values)

    # -- logs: one JSON object per line, with the ids; dead letters name the record ---------
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert lines
    for line in lines:
        assert {"trace_id", "span_id", "request_id"} <= set(line), line
    dead_lines = [line for line in lines if line["message"] == "record dead-lettered"]
    assert len(dead_lines) == 2
    for line in dead_lines:
        assert line["topic"] == topics.telemetry
        assert isinstance(line["partition"], int) and isinstance(line["offset"], int)
        assert line["trace_id"] is not None and line["span_id"] is not None  # the batch span
    assert {(line["partition"], line["offset"]) for line in dead_lines} == {
        (m.partition, m.offset) for m in metas[-2:]
    }
    assert dead.topic == topics.dlq
