"""Shadow scoring of a context candidate: each record judged in the history the active model
saw, so the candidate's scores are its own offline scores of the stream, to the bit, whether it
arrived mid-stream, a batch was rewound, or the active model is a point model."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pytest
from aiokafka.errors import KafkaTimeoutError

from consumer.context_store import ContextStore
from consumer.metrics import WorkerMetrics
from consumer.processor import Outgoing, RecordLike
from shared.detector import Detector
from tests.unit.consumer.fakes import FakeConsumer, FakeSink, Rec, build_handler
from tests.unit.consumer.test_context_store import (
    SENSORS,
    FakeReader,
    context_detector,
    partition_records,
)

Matrix = np.ndarray


class Observed:
    """A monitor that keeps what each batch showed it."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, np.ndarray, np.ndarray | None]] = []

    def observe(
        self,
        detector: Detector,
        features: Matrix,
        scores: Matrix,
        candidate_scores: Matrix | None = None,
    ) -> None:
        self.batches.append((detector.version, scores, candidate_scores))


def offline(detector: Detector, parts: dict[int, list[Rec]]) -> dict[tuple[int, int], float]:
    """Every record's score from the model's offline call, partition by partition."""
    assert detector.context is not None
    found = {}
    for p, recs in parts.items():
        bodies = [json.loads(r.value or b"") for r in recs]
        times = np.asarray([datetime.fromisoformat(b["timestamp"]).timestamp() for b in bodies])
        X = np.asarray([b["feature_vector"] for b in bodies])
        offsets = np.asarray([r.offset for r in recs], dtype=np.int64)
        scores = detector.context.score_records(
            [b["vehicle_id"] for b in bodies], times, X, offsets=offsets
        )
        found.update({(p, r.offset): s for r, s in zip(recs, scores.tolist(), strict=True)})
    return found


def batches(parts: dict[int, list[Rec]], size: int) -> list[list[Rec]]:
    """Both partitions interleaved, in batches of ``size``."""
    stream = [r for pair in zip(parts[0], parts[1], strict=False) for r in pair]
    return [stream[i : i + size] for i in range(0, len(stream), size)]


async def run(
    active: Detector,
    candidate: Detector,
    parts: dict[int, list[Rec]],
    *,
    shadow_from: int,
    fail_batch: int | None = None,
) -> tuple[dict[tuple[int, int], float], Observed]:
    """Stream the batches through a handler; the candidate is set from batch ``shadow_from``,
    and the first try of batch ``fail_batch`` fails to publish (and is delivered again)."""
    failed: set[int] = set()
    work = batches(parts, 24)

    def refuse(message: Outgoing) -> BaseException | None:
        if fail_batch is not None and fail_batch not in failed:
            first = work[fail_batch][0]
            if (message.source_partition, message.source_offset) == (first.partition, first.offset):
                failed.add(fail_batch)
                error: BaseException = KafkaTimeoutError()  # (aiokafka's errors are untyped)
                return error
        return None

    handler, state, _ = build_handler(FakeSink(fail_on=refuse))
    handler.contexts = ContextStore(FakeReader(parts), WorkerMetrics())
    observed = Observed()
    handler.monitor = observed
    state.detector = active
    consumer = FakeConsumer()
    got: dict[tuple[int, int], float] = {}
    for number, batch in enumerate(work):
        state.shadow = candidate if number >= shadow_from else None
        for _attempt in range(2):  # (delivered again once after a failure)
            if await handler.handle(batch, consumer):
                break
        else:
            raise AssertionError(f"batch {number} failed twice")
        _, _, shadow_scores = observed.batches[-1]
        if shadow_scores is not None:
            keyed: Sequence[RecordLike] = batch
            got.update(
                {
                    (r.partition, r.offset): s
                    for r, s in zip(keyed, shadow_scores.tolist(), strict=True)
                }
            )
    await handler.drain()
    return got, observed


async def test_a_context_candidate_scores_each_record_in_the_active_models_history() -> None:
    """Set mid-stream, with a rewound batch, over two partitions of a three-sensor fleet (a
    width other than the evidence's eight: scoring its readings as evidence used to raise on
    every batch, and the worker retried the batch for ever)."""
    active, candidate = (
        context_detector("20240115100000", 0, 0),
        context_detector("20240116000000", 5, 5),
    )
    parts = partition_records(seed=3, steps=50)
    got, observed = await run(active, candidate, parts, shadow_from=4, fail_batch=7)
    expected = offline(candidate, parts)
    assert len(got) == sum(len(b) for b in batches(parts, 24)[4:])
    assert got == {where: expected[where] for where in got}  # to the bit
    assert all(c is None for _, _, c in observed.batches[:4])


async def test_a_context_candidate_under_a_point_model_rebuilds_its_own_history() -> None:
    """Under a point model there is no history to copy: the candidate's own store rebuilds it
    from the partitions' tails (after a rewound batch too), so from whichever batch it is set
    its scores are still its offline scores."""
    from sklearn.ensemble import IsolationForest

    from tests.unit.consumer.fakes import make_detector

    rng = np.random.default_rng(0)
    meta = make_detector().meta.model_copy(update={"n_features": SENSORS})
    point = Detector(
        meta, IsolationForest(n_estimators=10, random_state=0).fit(rng.normal(size=(64, SENSORS)))
    )
    candidate = context_detector("20240116000000", 5, 5)
    parts = partition_records(seed=4, steps=40)
    expected = offline(candidate, parts)
    got, _ = await run(point, candidate, parts, shadow_from=0)
    assert got == expected
    got, _ = await run(point, candidate, parts, shadow_from=2, fail_batch=3)
    assert len(got) == sum(len(b) for b in batches(parts, 24)[2:])
    assert got == {where: expected[where] for where in got}


async def test_a_candidate_that_fails_to_score_holds_up_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The active model's verdicts are published and committed; the batch goes uncompared."""
    from tests.unit.consumer.fakes import make_detector, mixed_batch

    sink = FakeSink()
    handler, state, _ = build_handler(sink)
    observed = Observed()
    handler.monitor = observed
    candidate = make_detector("20240116000000", seed=1)

    def broken(features: Matrix) -> Matrix:
        raise RuntimeError("a broken candidate")

    candidate.score = broken  # type: ignore[method-assign]  # (the failure under test)
    state.shadow = candidate
    consumer = FakeConsumer()
    with caplog.at_level(logging.ERROR, logger="consumer.processor"):
        assert await handler.handle(mixed_batch(), consumer)
    await handler.drain()
    assert observed.batches[-1][2] is None
    assert "shadow candidate failed" in caplog.text
    assert len(consumer.commits) == 1 and state.batch_failures == 0
    assert len(sink.sent) == 3  # two verdicts and a dead letter, as without a candidate
