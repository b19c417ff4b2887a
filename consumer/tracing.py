"""W3C trace context through the worker: record headers in, verdict headers out.

FastStream's ``KafkaTelemetryMiddleware`` opens one CONSUMER span per batch (``<topic>
process``, under a ``<topic> create`` span that links to the context of every record that
carried a ``traceparent``: see :func:`consumer.subscription.parse_traced_batch`). The verdicts and dead letters go
out through a plain aiokafka producer, which FastStream does not see, so
:class:`MessageTracing` does the rest:

* a record that carried a ``traceparent`` gets, in its producer's trace, a ``<topic>
  process`` CONSUMER span (linked to the batch span) and, under it, a ``<out topic> publish``
  PRODUCER span that ends once the broker acknowledged the batch; the message it answers
  carries that publish span's ``traceparent`` onward;
* any other message carries the batch span's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer

from consumer.processor import Outgoing

TRACE_HEADERS = ("traceparent", "tracestate")


def trace_carrier(record: Any) -> dict[str, str] | None:
    """The record's ``traceparent`` (and ``tracestate``) headers, or ``None`` without one."""
    headers = record.headers
    if not headers:
        return None
    carrier: dict[str, str] | None = None
    for name, value in headers:
        if name in TRACE_HEADERS and value is not None:
            if carrier is None:
                carrier = {}
            carrier[name] = bytes(value).decode("latin-1")
    return carrier if carrier is not None and "traceparent" in carrier else None


class MessageTracing:
    """Spans and outgoing ``traceparent`` headers for one batch's messages."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def instrument(
        self, records: Sequence[Any], messages: Sequence[Outgoing]
    ) -> tuple[list[Outgoing], list[Span]]:
        """The messages with trace headers, and the spans to end once they are acknowledged."""
        carriers: dict[tuple[str, int, int], dict[str, str]] = {}
        for record in records:
            carrier = trace_carrier(record)
            if carrier is not None:
                carriers[(record.topic, record.partition, record.offset)] = carrier
        batch_carrier: dict[str, str] = {}
        propagate.inject(batch_carrier)  # the batch span (FastStream's, the current one)
        batch_headers = tuple((k, v.encode("latin-1")) for k, v in batch_carrier.items())
        batch_context = trace.get_current_span().get_span_context()
        links = [Link(batch_context)] if batch_context.is_valid else []
        out: list[Outgoing] = []
        spans: list[Span] = []
        for message in messages:
            source = (message.source_topic, message.source_partition, message.source_offset)
            carrier = carriers.get(source)
            if carrier is None:
                headers = batch_headers
            else:
                headers = self._record_spans(message, carrier, links, spans)
            out.append(replace(message, headers=(*message.headers, *headers)))
        return out, spans

    def _record_spans(
        self,
        message: Outgoing,
        carrier: dict[str, str],
        links: list[Link],
        spans: list[Span],
    ) -> tuple[tuple[str, bytes], ...]:
        parent = propagate.extract(carrier)
        process = self.tracer.start_span(
            f"{message.source_topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation": "process",
                "messaging.destination.name": message.source_topic,
                "messaging.kafka.destination.partition": message.source_partition,
                "messaging.kafka.message.offset": message.source_offset,
            },
        )
        publish = self.tracer.start_span(
            f"{message.topic} publish",
            context=trace.set_span_in_context(process),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation": "publish",
                "messaging.destination.name": message.topic,
                "vehicle_anomaly.message_kind": message.kind.value,
            },
        )
        spans.extend((publish, process))
        out: dict[str, str] = {}
        propagate.inject(out, context=trace.set_span_in_context(publish))
        return tuple((k, v.encode("latin-1")) for k, v in out.items())


def end_spans(spans: Sequence[Span], error: BaseException | None = None) -> None:
    """End the batch's record spans; marked as errors when the batch was not published."""
    for span in spans:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, repr(error)))
        span.end()
