"""The worker as real processes (``python -m consumer``): SIGKILL, SIGTERM, two in one group."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

from tests.integration.kafka_helpers import produce
from tests.integration.worker_helpers import (
    Outputs,
    Topics,
    WorkerProcess,
    collect_outputs,
    expected_offsets,
    group_offsets,
    publish_model,
    stopping,
    telemetry,
)


def end_offsets(metas: list[Any]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for meta in metas:
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    return ends


async def wait_committed(bootstrap: str, group: str, ends: dict[int, int], timeout: float) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    committed: dict[int, int] = {}
    while time.monotonic() < deadline:
        committed = {tp.partition: o for tp, o in (await group_offsets(bootstrap, group)).items()}
        if committed == ends:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"committed {committed}, expected {ends}")


def report(label: str, outputs: Outputs, sent: int) -> None:
    print(
        f"\n{label}: {sent} records in, {outputs.total()} verdicts/dead letters out, "
        f"{outputs.duplicates()} duplicates, {len(outputs.answered())} offsets answered"
    )


async def test_sigkill_mid_stream_loses_nothing(
    kafka_bootstrap: str, topics: Topics, model_dir: Path, tmp_path: Path
) -> None:
    """A worker SIGKILLed mid-stream 3 times, then restarted: every offset is answered."""
    publish_model(model_dir)
    values, keys = telemetry(20_000, anomaly_every=50)
    metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys)
    extra = {
        "PUBLISH_ALL_VERDICTS": "true",
        "BATCH_MAX_RECORDS": "200",
        "CONSUMER_SESSION_TIMEOUT_MS": "6000",
    }
    # ~2 s for the 100 batches, so that each kill lands mid-stream on a fast machine
    slow = {"module": "tests.integration.slow_worker", "TEST_BATCH_DELAY_SECONDS": "0.02"}
    rng = random.Random(7)
    kills = 0
    for life in range(3):
        worker = WorkerProcess.make(
            kafka_bootstrap, topics, model_dir, tmp_path, f"life{life}", **extra, **slow
        )
        async with stopping(worker):
            worker.start()
            before = (await group_offsets(kafka_bootstrap, topics.group)) if life else {}
            await worker.wait_for(lambda h: h["batches_processed"] >= 1, 60, "first batch")
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            worker.signal(signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
            kills += 1
            after = await group_offsets(kafka_bootstrap, topics.group)
            assert sum(after.values()) > sum(before.values()), "each life made progress"
            assert sum(after.values()) < len(metas), "killed mid-stream, not after the end"
    survivor = WorkerProcess.make(kafka_bootstrap, topics, model_dir, tmp_path, "survivor", **extra)
    async with stopping(survivor):
        survivor.start()
        await wait_committed(kafka_bootstrap, topics.group, end_offsets(metas), timeout=90)
        outputs = await collect_outputs(
            kafka_bootstrap, topics, expected_offsets(metas), timeout=30
        )
    assert outputs.answered() == expected_offsets(metas)
    report(f"SIGKILL x{kills} then restart", outputs, len(metas))


async def test_sigterm_during_a_batch_commits_nothing_unpublished(
    kafka_bootstrap: str, topics: Topics, model_dir: Path, tmp_path: Path
) -> None:
    """SIGTERM past the graceful timeout abandons the batch in hand: its offsets stay uncommitted."""
    publish_model(model_dir)
    values, keys = telemetry(1_500)
    metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys)
    ends = end_offsets(metas)
    slow = WorkerProcess.make(
        kafka_bootstrap,
        topics,
        model_dir,
        tmp_path,
        "slow",
        module="tests.integration.slow_worker",
        PUBLISH_ALL_VERDICTS="true",
        BATCH_MAX_RECORDS="100",
        TEST_BATCH_DELAY_SECONDS="2",
        CONSUMER_GRACEFUL_TIMEOUT_SECONDS="0.5",
    )
    async with stopping(slow):
        slow.start()
        await slow.wait_for(
            lambda h: h["batches_processed"] >= 2 and (h["batch_in_progress_seconds"] or 0) >= 0.3,
            60,
            "a batch in hand after two committed ones",
        )
        stopped_at = time.monotonic()
        slow.signal(signal.SIGTERM)
        status = slow.wait(30)
        shutdown_seconds = time.monotonic() - stopped_at
    assert status in (0, -signal.SIGTERM), slow.tail()
    committed = {
        tp.partition: o for tp, o in (await group_offsets(kafka_bootstrap, topics.group)).items()
    }
    outputs = await collect_outputs(
        kafka_bootstrap, topics, expected_offsets(metas), timeout=3, settle=0
    )
    answered = outputs.answered()
    unpublished_seen = False
    for partition, end in ends.items():
        mark = committed.get(partition, 0)
        first_unanswered = next((o for o in range(end) if (partition, o) not in answered), end)
        assert mark <= first_unanswered, (
            f"partition {partition}: committed past an unpublished record"
        )
        assert all((partition, o) in answered for o in range(mark))
        unpublished_seen |= first_unanswered < end
    assert unpublished_seen, "the batch in hand should have been abandoned unpublished"
    assert sum(committed.values()) < len(metas)
    print(
        f"\nSIGTERM mid-batch: committed {committed} of {ends}, "
        f"{len(answered)} offsets published, shutdown took {shutdown_seconds:.1f}s"
    )

    # A restart resumes from the committed offsets and answers the rest: nothing dropped.
    again = WorkerProcess.make(
        kafka_bootstrap, topics, model_dir, tmp_path, "again", PUBLISH_ALL_VERDICTS="true"
    )
    async with stopping(again):
        again.start()
        await wait_committed(kafka_bootstrap, topics.group, ends, timeout=60)
        outputs = await collect_outputs(
            kafka_bootstrap, topics, expected_offsets(metas), timeout=30
        )
    assert outputs.answered() == expected_offsets(metas)
    report("after SIGTERM and restart", outputs, len(metas))


async def test_two_workers_split_partitions_and_one_takes_over(
    kafka_bootstrap: str, topics: Topics, model_dir: Path, tmp_path: Path
) -> None:
    """Two workers share a group's 3 partitions; after one stops the other owns all of them."""
    publish_model(model_dir)
    extra = {
        "PUBLISH_ALL_VERDICTS": "true",
        "BATCH_MAX_RECORDS": "100",
        "CONSUMER_SESSION_TIMEOUT_MS": "6000",
    }
    first = WorkerProcess.make(kafka_bootstrap, topics, model_dir, tmp_path, "first", **extra)
    second = WorkerProcess.make(kafka_bootstrap, topics, model_dir, tmp_path, "second", **extra)
    metas: list[Any] = []
    async with stopping(first, second):
        first.start()
        second.start()

        async def assigned(worker: WorkerProcess) -> set[str]:
            health = await worker.health()
            return set(health["assigned_partitions"]) if health else set()

        deadline = time.monotonic() + 60
        while True:
            split = (await assigned(first), await assigned(second))
            if split[0] and split[1] and len(split[0] | split[1]) == 3:
                break
            assert time.monotonic() < deadline, (
                f"no split: {split}\n{first.tail()}\n{second.tail()}"
            )
            await asyncio.sleep(0.2)

        async def stream() -> None:
            for chunk in range(0, 6_000, 200):
                values, keys = telemetry(200, seed=chunk, start=chunk)
                metas.extend(await produce(kafka_bootstrap, topics.telemetry, values, keys=keys))
                await asyncio.sleep(0.1)

        producing = asyncio.create_task(stream())
        await asyncio.sleep(1.0)
        first_health = await first.health()
        assert first_health is not None
        assert first_health["records"] > 0
        first.signal(signal.SIGTERM)
        assert first.wait(30) in (0, -signal.SIGTERM)
        deadline = time.monotonic() + 30
        while len(await assigned(second)) != 3:
            assert time.monotonic() < deadline, second.tail()
            await asyncio.sleep(0.2)
        await producing
        await wait_committed(kafka_bootstrap, topics.group, end_offsets(metas), timeout=60)
        second_health = await second.health()
        outputs = await collect_outputs(
            kafka_bootstrap, topics, expected_offsets(metas), timeout=30
        )
    assert second_health is not None
    assert second_health["records"] > 0
    assert outputs.answered() == expected_offsets(metas)
    report(
        f"two workers (first handled {first_health['records']} records before SIGTERM, "
        f"second {second_health['records']})",
        outputs,
        len(metas),
    )
