"""A broker outage seen from outside: probes that answer at once, logs that do not flood.

Each test runs its own broker (``private_broker``: scripts/kafka-local on free ports), stops
it under a real worker process, and starts it again. Figures print with ``-s``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.broker import private_broker
from tests.integration.kafka_helpers import create_topics, produce
from tests.integration.test_faults import figures
from tests.integration.worker_helpers import (
    Topics,
    WorkerProcess,
    collect_outputs,
    expected_offsets,
    publish_model,
    stopping,
    telemetry,
)

OUTAGE_SECONDS = 20
LOUD_LINE = re.compile(r"^\d\d:\d\d:\d\d (WARNING|ERROR|CRITICAL) ")


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Any]:
    """A broker this test alone uses, and may stop."""
    with private_broker(tmp_path / "kafka") as broker:
        yield broker


async def made_topics(bootstrap: str, unique_topic: Callable[..., str]) -> Topics:
    topics = Topics(
        unique_topic("raw"), unique_topic("anomalies"), unique_topic("dlq"), unique_topic("group")
    )
    await create_topics(bootstrap, topics.all, partitions=3)
    return topics


async def timed_get(worker: WorkerProcess, path: str) -> tuple[float, int | None]:
    started = time.monotonic()
    response = await worker.get(path)  # None: no answer within 3 s
    return time.monotonic() - started, response.status_code if response is not None else None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def outage(
    own_broker: Any,
    worker: WorkerProcess,
    topics: Topics,
    during: Callable[[], Any] | None = None,
) -> tuple[set[tuple[int, int]], Any, float, int]:
    """300 records, the broker stopped ``OUTAGE_SECONDS`` (``during`` polled meanwhile), then
    started again and 300 more: what was sent, the outputs, the recovery time, and the log
    offset where the outage began."""
    bootstrap = own_broker.bootstrap
    values, keys = telemetry(600)
    before = await produce(bootstrap, topics.telemetry, values[:300], keys=keys[:300])
    worker.start()
    await worker.wait_ready(120)
    await worker.wait_for(lambda h: h["records"] >= 300, 60, "the first records")
    log_start = len(worker.log_path.read_bytes())
    own_broker.stop()
    stopped = time.monotonic()
    while time.monotonic() - stopped < OUTAGE_SECONDS:
        if during is not None:
            await during()
        await asyncio.sleep(0.2)
    result = own_broker.start()
    assert result.returncode == 0, result.stdout
    restarted = time.monotonic()
    await worker.wait_ready(120)
    recovery = time.monotonic() - restarted
    after = await produce(bootstrap, topics.telemetry, values[300:], keys=keys[300:])
    sent = expected_offsets(before) | expected_offsets(after)
    outputs = await collect_outputs(bootstrap, topics, sent, timeout=120)
    return sent, outputs, recovery, log_start


async def test_probes_answer_from_state_while_the_broker_is_down(
    own_broker: Any, model_dir: Path, tmp_path: Path, unique_topic: Callable[..., str]
) -> None:
    """/health/ready and /health answer within 1 s all through an outage; ready says 503."""
    topics = await made_topics(own_broker.bootstrap, unique_topic)
    publish_model(model_dir)
    worker = WorkerProcess.make(
        own_broker.bootstrap, topics, model_dir, tmp_path, "w", publish_all_verdicts="true"
    )
    timings: dict[str, list[float]] = {"/health/ready": [], "/health": []}
    answers: list[tuple[str, int | None]] = []

    async def probe() -> None:
        for path, times in timings.items():
            took, status = await timed_get(worker, path)
            times.append(took)
            answers.append((path, status))

    async with stopping(worker):
        sent, outputs, recovery, _ = await outage(own_broker, worker, topics, probe)
    figures("broker stopped 20 s (probes)", sent, outputs, recovery)
    print(
        "PROBE-TIMINGS "
        + json.dumps(
            {
                path: {
                    "count": len(times),
                    "p50_ms": round(percentile(times, 0.5) * 1000, 1),
                    "p99_ms": round(percentile(times, 0.99) * 1000, 1),
                    "max_ms": round(max(times) * 1000, 1),
                }
                for path, times in timings.items()
            }
        )
    )

    assert all(status is not None for _, status in answers), "a probe got no answer"
    assert max(max(times) for times in timings.values()) < 1.0  # generous: 2 shared cores
    assert ("/health/ready", 503) in answers
    assert outputs.answered() == sent


@pytest.mark.parametrize("repeat_seconds", ["0", "30"], ids=["unlimited", "limited"])
async def test_an_outage_writes_a_few_lines_not_thousands(
    own_broker: Any,
    model_dir: Path,
    tmp_path: Path,
    unique_topic: Callable[..., str],
    repeat_seconds: str,
) -> None:
    """LOG_REPEAT_SECONDS holds back repeated warnings; the first line and the recovery stay."""
    topics = await made_topics(own_broker.bootstrap, unique_topic)
    publish_model(model_dir)
    worker = WorkerProcess.make(
        own_broker.bootstrap,
        topics,
        model_dir,
        tmp_path,
        "w",
        publish_all_verdicts="true",
        log_repeat_seconds=repeat_seconds,
    )
    async with stopping(worker):
        sent, outputs, recovery, log_start = await outage(own_broker, worker, topics)
    text = worker.log_path.read_bytes()[log_start:].decode(errors="replace")
    loud = [line for line in text.splitlines() if LOUD_LINE.match(line)]
    print(
        "LOG-FIGURES "
        + json.dumps(
            {
                "log_repeat_seconds": repeat_seconds,
                "outage_seconds": OUTAGE_SECONDS,
                "warning_and_error_lines": len(loud),
                "summaries": sum("more like it" in line or "repeated=" in line for line in loud),
            }
        )
    )
    figures(f"broker stopped 20 s (logs, repeat {repeat_seconds} s)", sent, outputs, recovery)

    assert outputs.answered() == sent
    assert "broker connection lost" in text
    assert "broker connection restored" in text
    if repeat_seconds != "0":
        assert len(loud) < 150, "\n".join(loud[-40:])
