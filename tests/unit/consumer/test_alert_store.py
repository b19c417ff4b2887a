"""Alert episodes in the worker: events after the verdicts, rebuilt with the context."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from consumer.context_store import ContextStore
from consumer.metrics import WorkerMetrics
from consumer.processor import BatchProcessor, Kind
from shared.detector import Detector
from shared.episodes import EpisodeRules
from tests.unit.consumer.fakes import TOPIC, Rec
from tests.unit.consumer.test_context_store import (
    FakeReader,
    partition_records,
    value,
)
from tests.unit.consumer.test_context_store import (
    detector as detector,
)

RULES = EpisodeRules(open_anomalous=1, open_window=1, close_normal=3, silence_seconds=600.0)
SCORED_AT = "2024-01-15T10:00:00Z"


def faulty(parts: Mapping[int, Sequence[Rec]], every: int = 23) -> dict[int, list[Rec]]:
    """The partitions with one sensor far off on every ``every``-th record."""
    out: dict[int, list[Rec]] = {}
    for p, recs in parts.items():
        out[p] = []
        for r in recs:
            body = json.loads(r.value or b"")
            if r.offset % every == 5:
                body["feature_vector"][0] += 500.0
            moment = body["timestamp"]
            raw = value(body["vehicle_id"], 0.0, body["feature_vector"]).replace(
                b'"1970-01-01T00:00:00Z"', json.dumps(moment).encode()
            )
            out[p].append(Rec(r.topic, r.partition, r.offset, r.key, raw))
    return out


def processor() -> BatchProcessor:
    return BatchProcessor(anomaly_topic="anomalies", dlq_topic="dlq", alert_topic="alerts")


def events(messages: Sequence[Any]) -> list[tuple[str, str, int]]:
    """(episode id, event, record count) of the alert messages."""
    found = []
    for m in messages:
        if m.kind is Kind.ALERT:
            body = json.loads(m.value)
            found.append((body["episode_id"], body["event"], body["record_count"]))
    return found


async def test_alerts_follow_the_verdicts_on_their_topic(detector: Detector) -> None:
    """A batch's alert messages come after its verdicts, keyed by vehicle, on the alerts topic."""
    parts = faulty(partition_records(seed=3))
    store = ContextStore(None, WorkerMetrics(), rules=RULES)
    batch = parts[0]
    await store.prepare(detector, {(TOPIC, 0): 0})
    outcome = processor().process(batch, detector, SCORED_AT, store.states, store.books)
    kinds = [m.kind for m in outcome.messages]
    assert Kind.ALERT in kinds
    assert kinds.index(Kind.ALERT) > max(i for i, k in enumerate(kinds) if k is Kind.VERDICT)
    alerts = [m for m in outcome.messages if m.kind is Kind.ALERT]
    assert {m.topic for m in alerts} == {"alerts"}
    assert all(m.key == json.loads(m.value or b"")["vehicle_id"].encode() for m in alerts)
    assert len(outcome.alerts) == len(alerts)


@pytest.mark.parametrize("cut", [60, 97])
async def test_a_rebuilt_store_emits_a_straight_runs_episodes(
    detector: Detector,
    cut: int,
) -> None:
    """After a rebuild that scores the tail again, the events (and ids) equal a straight run's."""
    parts = faulty(partition_records(seed=3))
    before = [r for p in sorted(parts) for r in parts[p] if r.offset < cut]
    rest = [r for p in sorted(parts) for r in parts[p] if r.offset >= cut]
    straight = ContextStore(None, WorkerMetrics(), rules=RULES)
    await straight.prepare(detector, {(TOPIC, p): 0 for p in parts})
    first = processor().process(before, detector, SCORED_AT, straight.states, straight.books)
    straight.advance(first.next_offsets)
    open_at_cut = straight.open_episodes()
    expected = processor().process(rest, detector, SCORED_AT, straight.states, straight.books)
    store = ContextStore(FakeReader(parts), WorkerMetrics(), rules=RULES, replay_offsets=200)
    await store.prepare(detector, {(TOPIC, p): cut for p in parts})
    assert store.open_episodes() == open_at_cut
    after = processor().process(rest, detector, SCORED_AT, store.states, store.books)
    assert events(after.messages) == events(expected.messages)
    assert events(expected.messages)
    assert events(first.messages)
