"""Alert episodes do not depend on crashes or rebalances: real broker, real workers.

As in ``test_context_state``: the same records go to two raw topics; one worker reads topic A
straight through, and topic B is read by workers that are SIGKILLed mid-stream, restarted,
joined by another and left by it (each a rebuild of the partitions' context and episodes from
their tails). The alert events of B, de-duplicated on the whole event, must be exactly A's:
no ``closed`` lost, no episode opened under another id, every id equal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kafka_helpers import consume_all, create_topics, produce
from tests.integration.test_context_state import disturbed_run, publish_context_model, telemetry
from tests.integration.test_worker_processes import end_offsets, wait_committed
from tests.integration.worker_helpers import Topics, WorkerProcess, stopping


async def make_topics(bootstrap: str, unique_topic: Callable[..., str], tag: str) -> Topics:
    made = Topics(
        unique_topic(f"raw-{tag}"),
        unique_topic(f"anom-{tag}"),
        unique_topic(f"dlq-{tag}"),
        unique_topic(f"grp-{tag}"),
        unique_topic(f"alerts-{tag}"),
    )
    await create_topics(bootstrap, made.all, partitions=3)
    return made


async def alert_events(bootstrap: str, topic: str) -> list[str]:
    """Every alert message on ``topic``, each as canonical JSON (repeats kept)."""
    records = await consume_all(bootstrap, topic, 1, timeout=60, settle=2.0)
    return [json.dumps(json.loads(r.value or b""), sort_keys=True) for r in records]


# Five worker processes one after another; each takes half a minute to start on a loaded machine.
@pytest.mark.timeout(900)
async def test_episode_ids_are_equal_with_or_without_crashes_and_rebalances(
    kafka_bootstrap: str,
    unique_topic: Callable[..., str],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    """The alert events after SIGKILLs and a worker joining and leaving equal a straight run's."""
    publish_context_model(model_dir)
    straight_topics = await make_topics(kafka_bootstrap, unique_topic, "a")
    other = await make_topics(kafka_bootstrap, unique_topic, "b")
    values, keys = telemetry(600)
    metas_a = await produce(kafka_bootstrap, straight_topics.telemetry, values, keys=keys)
    metas_b = await produce(kafka_bootstrap, other.telemetry, values, keys=keys)
    assert [(m.partition, m.offset) for m in metas_a] == [(m.partition, m.offset) for m in metas_b]
    extra: dict[str, Any] = {"CONSUMER_SESSION_TIMEOUT_MS": "6000"}

    # (a) one worker, straight through
    straight = WorkerProcess.make(
        kafka_bootstrap, straight_topics, model_dir, tmp_path, "straight", **extra
    )
    async with stopping(straight):
        straight.start()
        await wait_committed(
            kafka_bootstrap, straight_topics.group, end_offsets(metas_a), timeout=120
        )
    # the ids name the raw topic: A's events are compared as if they had come from B
    events_a = [
        e.replace(straight_topics.telemetry, other.telemetry)
        for e in await alert_events(kafka_bootstrap, straight_topics.alerts)
    ]

    # (b) SIGKILLs, restarts, a worker joining and leaving, in small slow batches: one worker
    # alone takes about 150 s over the 12,000 records, so that a joiner that needs half a
    # minute to start still finds records left in its partitions
    slow = {
        **extra,
        "module": "tests.integration.slow_worker",
        "TEST_BATCH_DELAY_SECONDS": "0.25",
        "BATCH_MAX_RECORDS": "20",
    }
    kills, rebalances, _metas, _health = await disturbed_run(
        kafka_bootstrap, other, model_dir, tmp_path, metas_b, slow=slow, steady=extra
    )
    events_b = await alert_events(kafka_bootstrap, other.alerts)

    kinds = Counter(json.loads(e)["event"] for e in set(events_a))
    assert kinds["opened"] > 0 and kinds["closed"] > 0
    assert len(set(events_a)) == len(events_a), "a straight run repeats no event"
    missing, extra_events = set(events_a) - set(events_b), set(events_b) - set(events_a)
    assert not missing and not extra_events, (
        f"{len(missing)} events missing, {len(extra_events)} extra, e.g. "
        f"{sorted(missing)[:2]} / {sorted(extra_events)[:2]}"
    )
    ids_a = {json.loads(e)["episode_id"] for e in events_a}
    print(
        f"\nalert episodes: {len(ids_a)} episodes ({dict(kinds)}) equal in both runs; "
        f"{len(events_b) - len(set(events_b))} repeated events in the disturbed run, "
        f"{kills} SIGKILLs, {rebalances} join/leave rebalances"
    )
