"""The scoring worker in-process against a real broker: coverage, poison, no model, hot swap."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from shared.registry import MODEL_FILE, ModelRegistry
from tests.integration.kafka_helpers import produce
from tests.integration.worker_helpers import (
    Topics,
    asgi_get,
    collect_outputs,
    expected_offsets,
    features_of,
    group_offsets,
    list_groups,
    publish_model,
    record_value,
    running_worker,
    telemetry,
    wait_until,
    worker_settings,
)

TS = "2024-01-15T10:00:00Z"


def scores_of(model: Any, values: list[bytes]) -> np.ndarray:
    scores: np.ndarray = model.decision_function(
        np.array([features_of(v) for v in values], dtype=np.float64)
    )
    return scores


async def end_offsets_committed(bootstrap: str, topics: Topics, metas: list[Any]) -> None:
    ends: dict[int, int] = {}
    for meta in metas:
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    for _ in range(100):
        committed = {
            tp.partition: o for tp, o in (await group_offsets(bootstrap, topics.group)).items()
        }
        if committed == ends:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"committed {committed}, expected {ends}")


async def test_every_offset_gets_exactly_one_verdict_or_dead_letter(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """PUBLISH_ALL_VERDICTS: one verdict or one dead letter per input offset, scores exact."""
    version, _ = publish_model(model_dir)
    model = ModelRegistry(model_dir).load(version).estimator
    values, keys = telemetry(600)
    poison = [b"nope", b"[1,2]", None, b"", record_value("VH-X", [1.0, 2.0])]
    for i, bad in enumerate(poison * 8):
        values.insert(i * 15 + 7, bad)  # type: ignore[arg-type]  # None is one of the poison values
        keys.insert(i * 15 + 7, b"VH-BAD")
    metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys)
    sent = {(m.partition, m.offset): (v, k) for m, v, k in zip(metas, values, keys, strict=True)}
    settings = worker_settings(
        kafka_bootstrap, topics, model_dir, publish_all_verdicts=True, batch_max_records=64
    )
    async with running_worker(settings):
        outputs = await collect_outputs(kafka_bootstrap, topics, set(sent), timeout=60)
        await end_offsets_committed(kafka_bootstrap, topics, metas)

    assert outputs.answered() == set(sent)
    assert outputs.duplicates() == 0
    valid = {where: v for where, (v, _) in sent.items() if v not in poison}
    assert set(outputs.verdicts) == set(valid)
    assert set(outputs.dead_letters) == set(sent) - set(valid)
    order = sorted(valid)
    expected = dict(zip(order, scores_of(model, [valid[w] for w in order]), strict=True))
    worst = 0.0
    for where, (body,) in outputs.verdicts.items():
        (record,) = outputs.verdict_records[where]
        assert record.key == sent[where][1] == body["vehicle_id"].encode()
        assert body["model_version"] == version
        assert body["is_anomaly"] is (body["anomaly_score"] < 0)
        worst = max(worst, abs(body["anomaly_score"] - expected[where]))
    assert worst <= 1e-12
    print(f"\n{len(valid)} verdicts, largest score difference from sklearn: {worst}")


async def test_poison_records_of_every_kind_go_to_the_dlq(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """Each poison kind is dead-lettered with its reason, bytes and headers; neighbours scored."""
    publish_model(model_dir)
    valid = record_value("VH-OK", [0.1, 0.2, 0.3, 0.4])
    poison: list[tuple[bytes | None, str]] = [
        (b"this is not json", "invalid_json"),
        (b'["VH-1", "2024-01-15T10:00:00Z", [1, 2, 3, 4]]', "schema"),
        (b'{"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z"}', "schema"),
        (
            b'{"vehicle_id": 12, "timestamp": "2024-01-15T10:00:00Z", "feature_vector": [1,2,3,4]}',
            "schema",
        ),
        (
            b'{"vehicle_id": "VH-1", "timestamp": "yesterday", "feature_vector": [1, 2, 3, 4]}',
            "schema",
        ),
        (
            b'{"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z", "feature_vector": "1234"}',
            "schema",
        ),
        (
            f'{{"vehicle_id": "VH-1", "timestamp": "{TS}", "feature_vector": [NaN, 1, 2, 3]}}'.encode(),
            "non_finite",
        ),
        (
            f'{{"vehicle_id": "VH-1", "timestamp": "{TS}", "feature_vector": [1e400, 1, 2, 3]}}'.encode(),
            "non_finite",
        ),
        (record_value("VH-1", [1.0, 2.0, 3.0]), "dimension_mismatch"),
        (b'{"pad": "' + b"x" * 1_000_000 + b'"}', "too_large"),
        (b"", "empty"),
        (None, "empty"),
        (b'{"vehicle_id": "VH-\xff\xfe", "timestamp": "2024-01-15T10:00:00Z"}', "invalid_utf8"),
    ]
    values: list[bytes | None] = []
    keys: list[bytes | None] = []
    headers: list[list[tuple[str, bytes]] | None] = []
    for i, (value, _) in enumerate(poison):
        values += [valid, value]
        keys += [b"VH-OK", f"key-{i}".encode()]
        headers += [[("junk", b"\xff\xfe not utf-8")], None]  # FastStream must not decode them
    values.append(valid)
    keys.append(b"VH-OK")
    headers.append(None)
    metas = await produce(
        kafka_bootstrap, topics.telemetry, values, keys=keys, headers=headers, partition=1
    )
    settings = worker_settings(kafka_bootstrap, topics, model_dir, publish_all_verdicts=True)
    async with running_worker(settings):
        outputs = await collect_outputs(
            kafka_bootstrap, topics, expected_offsets(metas), timeout=60
        )

    by_offset = {m.offset: m for m in metas}
    for i, (value, reason) in enumerate(poison):
        offset = by_offset[metas[2 * i + 1].offset].offset
        (letter,) = outputs.dead_letters[(1, offset)]
        assert letter.value == value, reason
        assert letter.key == f"key-{i}".encode()
        found = dict(letter.headers)
        assert found["error"] == reason.encode()
        assert found["error_detail"]
        assert found["source_topic"] == topics.telemetry.encode()
        assert found["source_partition"] == b"1"
        assert found["source_offset"] == str(offset).encode()
        # the valid records before and after it were scored
        assert (1, offset - 1) in outputs.verdicts
        assert (1, offset + 1) in outputs.verdicts
    assert len(outputs.verdicts) == len(poison) + 1
    assert outputs.duplicates() == 0


async def test_no_model_means_no_consumption_until_one_is_published(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """Without a model nothing is consumed or committed and readiness is 503; then it starts."""
    values, keys = telemetry(50)
    metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys)
    settings = worker_settings(kafka_bootstrap, topics, model_dir, publish_all_verdicts=True)
    async with running_worker(settings) as worker:
        await asyncio.sleep(1.5)  # several registry polls
        ready = await asgi_get(worker, "/health/ready")
        assert ready.status_code == 503
        assert "no model loaded" in ready.json()["reasons"]
        assert worker.subscriber is None
        assert topics.group not in await list_groups(kafka_bootstrap)
        assert await group_offsets(kafka_bootstrap, topics.group) == {}

        version, _ = publish_model(model_dir)
        outputs = await collect_outputs(
            kafka_bootstrap, topics, expected_offsets(metas), timeout=30
        )
        await wait_until(lambda: worker.state.batches > 0, 10, "batch")
        ready = await asgi_get(worker, "/health/ready")
        assert ready.status_code == 200, ready.text
        health = (await asgi_get(worker, "/health")).json()
    assert outputs.answered() == expected_offsets(metas)
    assert {body["model_version"] for (body, *_) in outputs.verdicts.values()} == {version}
    assert health["model_version"] == version
    assert len(health["assigned_partitions"]) == 3
    assert health["records"] == 50


async def test_model_swap_mid_stream_moves_verdicts_to_the_new_version(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """Verdicts switch from v1 to v2 while records flow; a broken version is skipped; none lost."""
    registry = ModelRegistry(model_dir)
    v1, _ = publish_model(model_dir, seed=0)
    models = {v1: registry.load(v1).estimator}
    settings = worker_settings(
        kafka_bootstrap, topics, model_dir, publish_all_verdicts=True, batch_max_records=50
    )
    sent: dict[tuple[int, int], bytes] = {}

    async def stream(start: int, count: int) -> None:
        for chunk in range(start, start + count, 50):
            values, keys = telemetry(50, seed=chunk, start=chunk)
            metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys)
            sent.update({(m.partition, m.offset): v for m, v in zip(metas, values, strict=True)})
            await asyncio.sleep(0.03)

    async with running_worker(settings) as worker:
        await wait_until(lambda: worker.state.consuming, 20, "consumption")
        await stream(0, 400)
        bad, _ = publish_model(model_dir, seed=5)
        (model_dir / bad / MODEL_FILE).write_bytes(b"not a model")
        await wait_until(lambda: worker.state.failed_version == bad, 10, "refused version")
        await stream(400, 300)
        assert worker.state.model_version == v1
        v2, _ = publish_model(model_dir, seed=1)
        models[v2] = registry.load(v2).estimator
        await stream(700, 500)
        outputs = await collect_outputs(kafka_bootstrap, topics, set(sent), timeout=60)
        health = (await asgi_get(worker, "/health")).json()

    assert outputs.answered() == set(sent)
    assert outputs.duplicates() == 0
    seen = {v1: 0, v2: 0}
    for partition in range(3):
        versions = [
            outputs.verdicts[w][0]["model_version"] for w in sorted(sent) if w[0] == partition
        ]
        switch = versions.index(v2) if v2 in versions else len(versions)
        assert versions == [v1] * switch + [v2] * (len(versions) - switch), "no switch back"
    for where, (body,) in outputs.verdicts.items():
        version = body["model_version"]
        seen[version] += 1
        expected = models[version].decision_function(np.array([features_of(sent[where])]))[0]
        assert abs(body["anomaly_score"] - expected) <= 1e-12
    assert seen[v1] > 0
    assert seen[v2] > 0
    assert health["model_version"] == v2
    assert health["failed_version"] is None
    print(f"\nverdicts by version: {seen}; refused version: {bad}")


async def test_graceful_stop_waits_for_the_background_commit(
    kafka_bootstrap: str, topics: Topics, model_dir: Path
) -> None:
    """The last batch's offsets, still being committed in the background, are committed at stop."""
    from consumer.faststream_compat import subscriber_lock

    publish_model(model_dir)
    settings = worker_settings(kafka_bootstrap, topics, model_dir, publish_all_verdicts=True)
    commits_started: list[dict[Any, int]] = []
    async with running_worker(settings) as worker:
        await wait_until(lambda: worker.subscriber is not None, 20, "consumption")
        assert subscriber_lock(worker.subscriber) is not None
        consumer = worker.subscriber.consumer
        commit = consumer.commit

        async def slow_commit(offsets: Any = None) -> None:
            commits_started.append(dict(offsets or {}))
            await asyncio.sleep(1.0)  # a slow coordinator: the stop comes while this waits
            await commit(offsets)

        consumer.commit = slow_commit
        values, keys = telemetry(300)
        metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys)
        await wait_until(lambda: worker.state.records >= len(metas), 30, "every record handled")
        assert not worker.handler.idle.is_set()  # handled, its commit still in flight
    # The lifespan has ended (graceful stop): the commit in flight was waited for.
    assert commits_started
    await end_offsets_committed(kafka_bootstrap, topics, metas)
