"""The worker's HTTP side: liveness, readiness with its reasons, details, metrics, AsyncAPI.

``/healthz`` (alive), ``/health/ready`` (200 or 503), ``/health`` (details), ``/metrics``
(Prometheus) and ``/asyncapi.json``, served by ``AsgiFastStream`` on the worker's port.

The probes answer from state the worker keeps, and await nothing: the broker is pinged by a
background task (:meth:`consumer.app.Worker.watch_broker`) and the partitions' positions are
read by the lag poller, so a probe answers at once even while the broker does not.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from faststream.asgi import AsgiResponse, get

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

    from consumer.app import Worker

PING_TIMEOUT_SECONDS = 2.0
BROKER_CHECK_SECONDS = 1.0  # the background ping's period

Partitions = dict[str, dict[str, int | None]]


def _json(body: dict[str, Any], status: int = 200) -> AsgiResponse:
    return AsgiResponse(
        json.dumps(body, default=str).encode(),
        status_code=status,
        headers={"content-type": "application/json"},
    )


async def partitions(consumer: AIOKafkaConsumer | None) -> Partitions:
    """Per assigned partition (``topic-partition``): position, high watermark and lag."""
    if consumer is None:
        return {}
    found: Partitions = {}
    for tp in sorted(consumer.assignment()):
        highwater = consumer.highwater(tp)
        try:
            position: int | None = await asyncio.wait_for(consumer.position(tp), 0.5)
        except Exception:
            position = None
        lag = highwater - position if highwater is not None and position is not None else None
        found[f"{tp.topic}-{tp.partition}"] = {
            "position": position,
            "highwater": highwater,
            "lag": lag,
        }
    return found


def readiness(worker: Worker) -> tuple[bool, list[str], Partitions]:
    """Ready: broker reachable, a model loaded, consuming, and progressing (or idle).

    From the worker's state only: the last broker ping and the last partition snapshot.
    """
    state = worker.state
    reasons: list[str] = []
    if not state.broker_connected:
        problem = worker.broker.problem  # why Kafka refused it, while the broker's start waits
        reasons.append(f"broker not connected: {problem}" if problem else "broker not connected")
    if state.detector is None:
        reasons.append("no model loaded")
    found = worker.partitions_found
    if not state.consuming:
        problem = worker.consume_problem  # why the subscriber could not start, if it failed
        reasons.append(f"not consuming: {problem}" if problem else "not consuming")
    for name, stopped in sorted(state.stopped_partitions.items()):
        reasons.append(
            f"partition {name} stopped at offset {stopped['offset']}: {stopped['reason']}"
        )
    stall = worker.settings.consumer_stall_seconds
    now = time.monotonic()
    if state.batch_started_monotonic is not None:
        held = now - state.batch_started_monotonic
        if held > stall:
            reasons.append(f"a batch has been in hand for {held:.0f}s")
    lagging = any((p["lag"] or 0) > 0 for p in found.values())
    if lagging and state.consuming:
        since = max(filter(None, (state.last_batch_monotonic, worker.consuming_since)))
        if now - since > stall:
            reasons.append(f"records waiting and no batch committed for {now - since:.0f}s")
    ready = not reasons
    worker.metrics.ready.set(1 if ready else 0)
    return ready, reasons, found


def routes(worker: Worker) -> list[tuple[str, Any]]:
    """The ASGI routes of ``worker``, for ``AsgiFastStream(asgi_routes=...)``."""

    async def healthz(scope: Any) -> AsgiResponse:
        return _json({"status": "alive"})

    async def ready(scope: Any) -> AsgiResponse:
        is_ready, reasons, _ = readiness(worker)
        return _json(
            {"ready": is_ready, "reasons": reasons, "model_version": worker.state.model_version},
            200 if is_ready else 503,
        )

    async def health(scope: Any) -> AsgiResponse:
        is_ready, reasons, found = readiness(worker)
        settings = worker.settings
        return _json(
            {
                "ready": is_ready,
                "reasons": reasons,
                "broker_running": worker.broker.running,
                "publisher": settings.consumer_publisher,
                **worker.state.summary(),
                "assigned_partitions": sorted(found),
                "partitions": found,
                "telemetry_topic": settings.telemetry_topic,
                "consumer_group": settings.consumer_group,
            }
        )

    async def metrics(scope: Any) -> AsgiResponse:
        return AsgiResponse(
            worker.metrics.render(), headers={"content-type": worker.metrics.content_type}
        )

    async def asyncapi(scope: Any) -> AsgiResponse:
        """The AsyncAPI document of this worker's topics and messages (docs/asyncapi.json)."""
        from consumer.asyncapi import document

        return _json(document(worker.settings))

    return [
        ("/healthz", get(healthz, include_in_schema=False)),
        ("/health/ready", get(ready, include_in_schema=False)),
        ("/health", get(health, include_in_schema=False)),
        ("/metrics", get(metrics, include_in_schema=False)),
        ("/asyncapi.json", get(asyncapi, include_in_schema=False)),
    ]
