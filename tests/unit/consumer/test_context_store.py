"""Context models in the worker: per-partition state, scored in offset order, rebuilt from a tail."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest
from aiokafka import TopicPartition

from consumer.context_store import ContextStore
from consumer.handlers import RebalanceListener
from consumer.metrics import WorkerMetrics
from consumer.processor import BatchProcessor, RecordLike
from shared.context import ContextForest, ContextState
from shared.detector import Detector
from shared.training_schemas import ModelMeta
from tests.unit.consumer.fakes import TOPIC, FakeSink, Rec, build_handler, decoded

Matrix = npt.NDArray[np.float64]
SENSORS = 3
VEHICLES = 6
START = 1_700_000_000.0


def readings(steps: int, seed: int) -> tuple[list[str], Matrix, Matrix]:
    """Correlated readings of a few vehicles, interleaved in time."""
    rng = np.random.default_rng(seed)
    ids, times, rows = [], [], []
    for step in range(steps):
        for v in range(VEHICLES):
            a = 50 + 10 * np.sin(step / 40 + v) + rng.normal(0, 1)
            ids.append(f"VH-{v}")
            times.append(START + 10 * step + v)
            rows.append([a, 2 * a + 5 * v + rng.normal(0, 0.5), float(np.round(20 + a / 10))])
    return ids, np.asarray(times), np.asarray(rows)


def value(vehicle: str, moment: float, row: Sequence[float]) -> bytes:
    stamp = datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"vehicle_id": vehicle, "timestamp": stamp, "feature_vector": list(row)}
    ).encode()


def partition_records(seed: int, steps: int = 60) -> dict[int, list[Rec]]:
    """The same fleet's records over two partitions (even vehicles on 0, odd on 1)."""
    ids, times, X = readings(steps, seed)
    parts: dict[int, list[Rec]] = {0: [], 1: []}
    for vehicle, moment, row in zip(ids, times, X.tolist(), strict=True):
        p = int(vehicle[-1]) % 2
        parts[p].append(Rec(TOPIC, p, len(parts[p]), vehicle.encode(), value(vehicle, moment, row)))
    return parts


def context_detector(
    version: str = "20240115100000", seed: int = 0, random_state: int = 2
) -> Detector:
    """A context model (horizon 40 offsets, so the rebuild's bound shows) fitted on clean data."""
    ids, times, X = readings(400, seed=seed)
    model = ContextForest(n_estimators=30, random_state=random_state).fit(ids, times, X)
    model = copy.deepcopy(model)
    model.params_.horizon = 40
    meta = ModelMeta(
        version=version,
        created_at=datetime(2024, 1, 15, tzinfo=UTC),
        n_features=SENSORS,
        record_count=len(ids),
        params={},
        sha256="0" * 64,
    )
    return Detector(meta, model)


@pytest.fixture(scope="module")
def detector() -> Detector:
    """The context model of these tests."""
    return context_detector()


class FakeReader:
    """Serves ranges of in-memory partitions in chunks; counts the reads and records read."""

    def __init__(self, parts: Mapping[int, Sequence[Rec]]) -> None:
        self.parts = parts
        self.reads: list[dict[tuple[str, int], tuple[int, int]]] = []

    async def read(
        self, ranges: Mapping[tuple[str, int], tuple[int, int]], chunk_records: int
    ) -> AsyncIterator[tuple[tuple[str, int], Sequence[RecordLike]]]:
        self.reads.append(dict(ranges))
        for (topic, p), (start, stop) in ranges.items():
            held = [r for r in self.parts[p] if max(start, 0) <= r.offset < stop]
            for at in range(0, len(held), chunk_records):
                yield (topic, p), held[at : at + chunk_records]


def processor() -> BatchProcessor:
    return BatchProcessor(anomaly_topic="anomalies", dlq_topic="dlq", publish_all=True)


def scores_of(messages: Sequence[object]) -> dict[tuple[int, int], float]:
    found = {}
    for message in messages:
        body = decoded(message)  # type: ignore[arg-type]  # an Outgoing verdict
        found[(body["source"]["partition"], body["source"]["offset"])] = body["anomaly_score"]
    return found


def straight(
    detector: Detector, parts: Mapping[int, Sequence[Rec]]
) -> dict[tuple[int, int], float]:
    """Every record's score from one pass that never stopped."""
    states: dict[tuple[str, int], ContextState] = {}
    batch = [r for p in sorted(parts) for r in parts[p]]
    outcome = processor().process(batch, detector, "2024-01-15T10:00:00Z", states)
    return scores_of(outcome.verdicts)


def test_context_scores_match_the_model_offline_per_partition(detector: Detector) -> None:
    """Interleaved partitions are scored each in offset order: the model's offline scores."""
    parts = partition_records(seed=1)
    batch = [r for pair in zip(parts[0], parts[1], strict=False) for r in pair]
    outcome = processor().process(batch, detector, "2024-01-15T10:00:00Z", {})
    got = scores_of(outcome.verdicts)
    assert detector.context is not None
    for p, recs in parts.items():
        ids = [json.loads(r.value or b"")["vehicle_id"] for r in recs]
        bodies = [json.loads(r.value or b"") for r in recs]
        times = np.asarray([datetime.fromisoformat(b["timestamp"]).timestamp() for b in bodies])
        X = np.asarray([b["feature_vector"] for b in bodies])
        offsets = np.arange(len(recs), dtype=np.int64)
        offline = detector.context.score_records(ids, times, X, offsets=offsets)
        assert [got[(p, o)] for o in range(len(recs))] == offline.tolist()


def test_dead_lettered_records_never_enter_the_context(detector: Detector) -> None:
    """Garbage between valid records changes none of their scores."""
    parts = partition_records(seed=2)
    mixed: list[Rec] = []
    for r in parts[0]:
        mixed.append(Rec(TOPIC, 0, len(mixed), None, b"garbage"))
        mixed.append(Rec(TOPIC, 0, len(mixed), r.key, r.value))
    valid = [r for r in mixed if r.value != b"garbage"]
    outcome = processor().process(mixed, detector, "2024-01-15T10:00:00Z", {})
    alone = processor().process(valid, detector, "2024-01-15T10:00:00Z", {})
    assert len(outcome.dead_letter_messages) == len(parts[0])
    assert scores_of(outcome.verdicts) == scores_of(alone.verdicts)


async def test_the_store_rebuilds_a_partition_as_a_straight_run_holds_it(
    detector: Detector,
) -> None:
    """After a rebuild from the partition's tail, the scores equal a run that never stopped."""
    parts = partition_records(seed=3)
    expected = straight(detector, parts)
    reader = FakeReader(parts)
    metrics = WorkerMetrics()
    store = ContextStore(reader, metrics, chunk_records=7)
    cut = 100
    await store.prepare(detector, {(TOPIC, 0): cut, (TOPIC, 1): cut})
    assert reader.reads == [{(TOPIC, 0): (cut - 40, cut), (TOPIC, 1): (cut - 40, cut)}]
    rest = [r for p in sorted(parts) for r in parts[p] if r.offset >= cut]
    outcome = processor().process(rest, detector, "2024-01-15T10:00:00Z", store.states)
    got = scores_of(outcome.verdicts)
    assert got == {where: s for where, s in expected.items() if where[1] >= cut}
    assert metrics.context_replay_records._value.get() == 80
    assert metrics.context_vehicles._value.get() == VEHICLES


async def test_a_state_in_step_is_kept_and_one_out_of_step_is_rebuilt(detector: Detector) -> None:
    """Only a partition whose state does not end where the batch begins is re-read."""
    parts = partition_records(seed=4)
    reader = FakeReader(parts)
    store = ContextStore(reader, WorkerMetrics())
    await store.prepare(detector, {(TOPIC, 0): 0})
    store.advance({(TOPIC, 0): 50})
    await store.prepare(detector, {(TOPIC, 0): 50})
    assert len(reader.reads) == 1
    await store.prepare(detector, {(TOPIC, 0): 30})  # a rewound batch
    assert reader.reads[-1] == {(TOPIC, 0): (0, 30)}
    store.drop([(TOPIC, 0)])
    assert store.partitions() == []


async def test_a_rebuild_past_its_time_bound_stops_warns_and_counts(
    detector: Detector, caplog: pytest.LogCaptureFixture
) -> None:
    """Past ``replay_seconds`` the rebuild stops, names the partition, and scoring goes on."""
    parts = partition_records(seed=5)
    ticks = iter(range(1_000))
    metrics = WorkerMetrics()
    store = ContextStore(
        FakeReader(parts),
        metrics,
        replay_seconds=2.5,
        chunk_records=5,
        monotonic=lambda: float(next(ticks)),
    )
    with caplog.at_level(logging.WARNING, logger="consumer.context"):
        await store.prepare(detector, {(TOPIC, 1): 100})
    assert metrics.context_replay_truncated._value.get() == 1
    assert metrics.context_replay_records._value.get() == 15  # three chunks, then the bound
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.partition == 1 and warning.rebuilt_to == 75  # type: ignore[attr-defined]
    assert store.partitions() == [(TOPIC, 1)]


class SilentReader:
    """A partition that never delivers: every poll comes back empty, forever."""

    async def read(
        self, ranges: Mapping[tuple[str, int], tuple[int, int]], chunk_records: int
    ) -> AsyncIterator[tuple[tuple[str, int], Sequence[RecordLike]]]:
        where = next(iter(ranges))
        while True:
            yield where, []


async def test_a_partition_that_never_delivers_cannot_stall_the_rebuild(
    detector: Detector,
) -> None:
    """Empty polls still count against ``replay_seconds``: the rebuild ends, marked truncated."""
    ticks = iter(range(1_000))
    metrics = WorkerMetrics()
    store = ContextStore(
        SilentReader(), metrics, replay_seconds=3, monotonic=lambda: float(next(ticks))
    )
    await asyncio.wait_for(store.prepare(detector, {(TOPIC, 1): 100}), 5)
    assert metrics.context_replay_truncated._value.get() == 1
    assert store.partitions() == [(TOPIC, 1)]


async def test_revoked_and_reassigned_partitions_drop_their_context(detector: Detector) -> None:
    """A rebalance drops the context of the partitions it moves: they are rebuilt, not reused."""
    handler, _state, _sleeps = build_handler(FakeSink())
    handler.state.detector = detector
    handler.contexts = ContextStore(FakeReader(partition_records(seed=6)), WorkerMetrics())
    await handler.contexts.prepare(detector, {(TOPIC, 0): 10, (TOPIC, 1): 10})
    listener = RebalanceListener(handler, wait_seconds=1)
    await listener.on_partitions_revoked({TopicPartition(TOPIC, 0)})
    assert handler.contexts.partitions() == [(TOPIC, 1)]
    await listener.on_partitions_assigned({TopicPartition(TOPIC, 1)})
    assert handler.contexts.partitions() == []
