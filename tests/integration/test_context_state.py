"""A context model's verdicts do not depend on crashes or rebalances: real broker, real workers.

The same records go to two raw topics (to B in two parts, the second after a worker joins). One
worker reads topic A straight through; topic B is read by workers that are SIGKILLed mid-stream, restarted, joined by another and left by it
(each a rebalance, each a context rebuild from the partition's tail). Every offset's
``anomaly_score`` must be equal (``==``) in the two runs, the duplicates of at-least-once
delivery included.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shared.context import ContextForest
from tests.integration.kafka_helpers import create_topics, produce
from tests.integration.signing import signed_registry
from tests.integration.test_worker_processes import end_offsets, wait_committed
from tests.integration.worker_helpers import (
    Outputs,
    Topics,
    WorkerProcess,
    collect_outputs,
    expected_offsets,
    group_offsets,
    stopping,
)

SENSORS = 3
VEHICLES = 20
START = 1_705_312_800.0  # 2024-01-15T10:00:00Z


def fleet(steps: int, seed: int, faults: bool) -> tuple[list[str], list[float], list[list[float]]]:
    """Correlated readings of the fleet at 1 Hz; with ``faults``, spikes and a stuck sensor."""
    rng = np.random.default_rng(seed)
    ids, times, rows = [], [], []
    for step in range(steps):
        for v in range(VEHICLES):
            a = 50 + 10 * np.sin(step / 30 + v) + rng.normal(0, 1)
            row = [a, 2 * a + 3 * v + rng.normal(0, 0.5), float(np.round(20 + a / 10))]
            if faults and step % 37 == v % 37:
                row[step % SENSORS] += 40.0
            if faults and v == 3 and 100 <= step < 130:
                row[1] = 150.0
            ids.append(f"VH-{v:03d}")
            times.append(START + step + v / 100)
            rows.append(row)
    return ids, times, rows


def publish_context_model(model_dir: Path) -> str:
    """Fit a small context model on clean readings and make it the active version."""
    ids, times, rows = fleet(150, seed=0, faults=False)
    model = ContextForest(n_estimators=40, random_state=1).fit(
        ids, np.asarray(times), np.asarray(rows)
    )
    meta = signed_registry(model_dir).publish(
        model,
        n_features=SENSORS,
        record_count=len(ids),
        params={},
        extra={"detector": "context"},
    )
    return meta.version


def telemetry(steps: int) -> tuple[list[bytes], list[bytes]]:
    ids, times, rows = fleet(steps, seed=5, faults=True)
    values = []
    for vehicle, moment, row in zip(ids, times, rows, strict=True):
        stamp = datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")
        body = {"vehicle_id": vehicle, "timestamp": stamp, "feature_vector": row}
        values.append(json.dumps(body).encode())
    values[500] = b"not json"  # a dead letter, which must not enter any vehicle's context
    return values, [v.encode() for v in ids]


async def second_topics(bootstrap: str, unique_topic: Callable[..., str]) -> Topics:
    made = Topics(
        unique_topic("raw-b"), unique_topic("anom-b"), unique_topic("dlq-b"), unique_topic("grp-b")
    )
    await create_topics(bootstrap, made.all, partitions=3)
    return made


def scores(outputs: Outputs) -> dict[tuple[int, int], list[float]]:
    return {
        where: [v["anomaly_score"] for v in verdicts]
        for where, verdicts in outputs.verdicts.items()
    }


async def assigned(worker: WorkerProcess) -> set[str]:
    health = await worker.health()
    return set(health.get("assigned_partitions") or []) if health else set()


async def disturbed_run(
    bootstrap: str,
    topics: Topics,
    model_dir: Path,
    tmp_path: Path,
    metas: list[Any],
    *,
    slow: dict[str, Any],
    steady: dict[str, Any],
    on_split: Callable[[], Awaitable[list[Any]]] | None = None,
) -> tuple[int, int, list[Any], dict[str, Any] | None]:
    """Read ``topics`` to the end through disturbances: a worker SIGKILLed mid-stream, a
    restart, a worker joining (``on_split`` runs once both hold partitions; the records it
    produces join ``metas``) and leaving, a second SIGKILL, and a last worker (``steady``
    settings). Returns the kills, the rebalances, every record's metadata and the last
    worker's health."""
    kills = rebalances = 0
    first = WorkerProcess.make(bootstrap, topics, model_dir, tmp_path, "b-first", **slow)
    async with stopping(first):
        first.start()
        await first.wait_for(lambda h: h["batches_processed"] >= 5, 180, "five batches")
        first.signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        kills += 1
    second = WorkerProcess.make(bootstrap, topics, model_dir, tmp_path, "b-second", **slow)
    joiner = WorkerProcess.make(bootstrap, topics, model_dir, tmp_path, "b-joiner", **slow)
    last = WorkerProcess.make(bootstrap, topics, model_dir, tmp_path, "b-last", **steady)
    async with stopping(second, joiner, last):
        second.start()
        await second.wait_for(lambda h: h["batches_processed"] >= 5, 180, "five batches")
        joiner.start()  # joins: a rebalance moves partitions to it
        deadline = time.monotonic() + 180
        while not (await assigned(joiner) and await assigned(second)):
            assert time.monotonic() < deadline, f"no split\n{second.tail()}\n{joiner.tail()}"
            await asyncio.sleep(0.1)
        rebalances += 1
        if on_split is not None:
            metas = metas + await on_split()
        await joiner.wait_for(lambda h: h["batches_processed"] >= 3, 180, "joiner batches")
        joiner.stop()  # leaves: its partitions go back
        rebalances += 1
        done = (await second.health() or {}).get("batches_processed", 0)
        await second.wait_for(lambda h: h["batches_processed"] >= done + 5, 180, "more batches")
        second.signal(signal.SIGKILL)
        assert second.wait(10) == -signal.SIGKILL
        kills += 1
        last.start()
        committed = await group_offsets(bootstrap, topics.group)
        assert sum(committed.values()) < len(metas), "the last kill landed mid-stream"
        await wait_committed(bootstrap, topics.group, end_offsets(metas), timeout=120)
        health = await last.health()
    return kills, rebalances, metas, health


async def test_scores_are_equal_with_or_without_crashes_and_rebalances(
    kafka_bootstrap: str,
    topics: Topics,
    unique_topic: Callable[..., str],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    """Every offset's score is the same after SIGKILLs and a worker joining and leaving."""
    publish_context_model(model_dir)
    other = await second_topics(kafka_bootstrap, unique_topic)
    values, keys = telemetry(300)
    metas_a = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys)
    # topic B gets its records in two parts, the second once the joiner holds partitions, so
    # that it has records to score whichever partitions it is given
    split = 2_400
    metas_b = await produce(kafka_bootstrap, other.telemetry, values[:split], keys=keys[:split])
    extra: dict[str, Any] = {
        "PUBLISH_ALL_VERDICTS": "true",
        "CONSUMER_SESSION_TIMEOUT_MS": "6000",
    }

    # (a) one worker, straight through
    straight = WorkerProcess.make(kafka_bootstrap, topics, model_dir, tmp_path, "straight", **extra)
    async with stopping(straight):
        straight.start()
        await wait_committed(kafka_bootstrap, topics.group, end_offsets(metas_a), timeout=120)
    outputs_a = await collect_outputs(kafka_bootstrap, topics, expected_offsets(metas_a))
    assert outputs_a.answered() == expected_offsets(metas_a)

    # (b) SIGKILLs, restarts, a worker joining and leaving; small, slow batches so that each
    # event lands mid-stream
    slow = {
        **extra,
        "module": "tests.integration.slow_worker",
        "TEST_BATCH_DELAY_SECONDS": "0.2",
        "BATCH_MAX_RECORDS": "40",
    }

    async def second_part() -> list[Any]:
        more = await produce(kafka_bootstrap, other.telemetry, values[split:], keys=keys[split:])
        assert [(m.partition, m.offset) for m in metas_a] == [
            (m.partition, m.offset) for m in metas_b + more
        ]
        return more

    kills, rebalances, metas_b, health = await disturbed_run(
        kafka_bootstrap,
        other,
        model_dir,
        tmp_path,
        metas_b,
        slow=slow,
        steady=extra,
        on_split=second_part,
    )
    outputs_b = await collect_outputs(kafka_bootstrap, other, expected_offsets(metas_b))
    assert outputs_b.answered() == expected_offsets(metas_b)

    a, b = scores(outputs_a), scores(outputs_b)
    assert set(a) == set(b)
    differing = [w for w in a if set(a[w]) != set(b[w]) or len(set(a[w])) != 1]
    assert not differing, f"{len(differing)} offsets differ, e.g. {differing[:5]}"
    assert outputs_a.dead_letters.keys() == outputs_b.dead_letters.keys()
    flagged = sum(1 for w in a if a[w][0] < 0)
    print(
        f"\ncontext equality: {len(a)} offsets compared, {outputs_b.duplicates()} duplicate "
        f"verdicts in the disturbed run (all equal), {kills} SIGKILLs, {rebalances} "
        f"join/leave rebalances, {flagged} flagged; last worker: {health}"
    )
