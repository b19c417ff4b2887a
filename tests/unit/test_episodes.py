"""The alert episodes' state machine: opening, updates, closing, ids, and replays."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from cli.episode_metrics import Span, episode_figures, episode_spans, fault_spans
from shared.episodes import EpisodeBook, EpisodeRules, episode_id, severity

TOPIC = "telemetry.raw"
SCALE = 0.6
RULES = EpisodeRules(
    open_anomalous=2, open_window=3, close_normal=3, silence_seconds=60.0, open_severity=0.5
)


def feed(
    book: EpisodeBook,
    rows: list[tuple[str, float, float]],
    first_offset: int = 0,
    attributions: dict[int, list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Feed (vehicle, time, score) rows at consecutive offsets; the events' JSON bodies."""
    ids = [r[0] for r in rows]
    times = np.array([r[1] for r in rows])
    scores = np.array([r[2] for r in rows])
    stamps = [f"t{int(t)}" for t in times]
    offsets = list(range(first_offset, first_offset + len(rows)))
    events = book.feed(
        TOPIC, 0, ids, stamps, times, offsets, scores, scores < 0, attributions or {}, "v1"
    )
    return [json.loads(e.encode()) for e in events]


def stream(n: int = 60) -> list[tuple[str, float, float]]:
    """Two vehicles, one with two weak faults and one severe spike, the other clean."""
    rows = []
    for i in range(n):
        t = 10.0 * i
        a = -0.01 if i in (5, 6, 20, 22) else (-0.5 if i == 40 else 0.1)
        rows.append(("A", t, a))
        rows.append(("B", t + 5, 0.1))
    return rows


def test_one_weak_anomaly_opens_nothing() -> None:
    """One anomalous record below the severity bar does not open an episode."""
    book = EpisodeBook(RULES, SCALE)
    assert feed(book, [("A", 0, 0.1), ("A", 10, -0.01), ("A", 20, 0.1), ("A", 30, 0.1)]) == []
    assert book.open_episodes() == []


def test_n_of_m_opens_at_the_first_anomalous_record() -> None:
    """Two anomalous records in three open an episode whose id and start are the first's."""
    book = EpisodeBook(RULES, SCALE)
    events = feed(book, [("A", 0, 0.1), ("A", 10, -0.01), ("A", 20, 0.1), ("A", 30, -0.02)])
    assert [e["event"] for e in events] == ["opened"]
    opened = events[0]
    assert opened["episode_id"] == episode_id((TOPIC, 0, 1)) == "telemetry.raw-0-1"
    assert (opened["start"], opened["end"], opened["record_count"]) == ("t10", "t30", 3)
    assert opened["worst_score"] == -0.02
    assert opened["worst_source"]["offset"] == 3


def test_a_severe_record_opens_alone_and_k_normal_records_close() -> None:
    """A record past the severity bar opens at once; K normal records in a row close."""
    book = EpisodeBook(RULES, SCALE)
    events = feed(book, [("A", 0, -0.4), ("A", 10, 0.1), ("A", 20, 0.1), ("A", 30, 0.1)])
    assert [e["event"] for e in events] == ["opened", "closed"]
    closed = events[1]
    assert closed["reason"] == "normal" and closed["at"] == "t30" and closed["end"] == "t0"
    assert closed["severity"] == round(severity(-0.4, SCALE), 4)


def test_silence_in_event_time_closes() -> None:
    """A vehicle silent past T closes, on any record of the partition that shows it."""
    book = EpisodeBook(RULES, SCALE)
    events = feed(book, [("A", 0, -0.4), ("B", 30, 0.1), ("B", 61, 0.1)])
    assert [(e["event"], e.get("reason")) for e in events] == [
        ("opened", None),
        ("closed", "silent"),
    ]


def test_severity_band_and_leading_sensors_update() -> None:
    """A worse record that crosses a quarter, or new leading sensors, updates the episode."""
    book = EpisodeBook(RULES, SCALE)
    lead = {0: [{"feature": 1, "share": 1.0}], 1: [{"feature": 2, "share": 1.0}]}
    events = feed(book, [("A", 0, -0.4), ("A", 10, -0.45)], attributions=lead)
    assert [e["event"] for e in events] == ["opened", "updated"]
    assert [s["feature"] for s in events[1]["leading_sensors"]] == [1, 2]
    assert events[1]["record_count"] == 2


def test_severity_grade() -> None:
    """The grade is 0 at the threshold, 0.5 halfway to the most isolated, and capped at 1."""
    assert severity(0.05, SCALE) == 0.0
    assert severity(-0.3, SCALE) == pytest.approx(0.5)
    assert severity(-2.0, SCALE) == 1.0


def test_any_batching_gives_the_same_events() -> None:
    """Feeding the records in one call or in small batches gives the same events."""
    rows = stream()
    whole = feed(EpisodeBook(RULES, SCALE), rows)
    book = EpisodeBook(RULES, SCALE)
    pieces: list[dict[str, Any]] = []
    for start in range(0, len(rows), 7):
        pieces += feed(book, rows[start : start + 7], first_offset=start)
    assert pieces == whole
    assert [e["event"] for e in whole].count("opened") == 3


def test_a_replay_from_a_quiet_point_reproduces_the_ids() -> None:
    """A book rebuilt from a point where nothing was pending carries on as the straight one."""
    rows = stream()
    straight = feed(EpisodeBook(RULES, SCALE), rows)
    rebuilt = EpisodeBook(RULES, SCALE)
    feed(rebuilt, rows[30:70], first_offset=30)  # the replayed tail: events dropped
    after = feed(rebuilt, rows[70:], first_offset=70)
    assert after == [e for e in straight if int(e["at"][1:]) >= 350]


def test_rules_are_checked() -> None:
    """N may not exceed M."""
    with pytest.raises(ValueError, match="open_anomalous"):
        EpisodeRules(open_anomalous=3, open_window=2)


def test_episode_figures_count_overlaps() -> None:
    """A fault overlapped by an episode is caught; an episode overlapping none is false."""
    faults = fault_spans([("A", 0.0, 1), ("A", 10.0, 1), ("B", 50.0, 2), ("C", 5.0, None)])
    assert faults == [Span("A", 0.0, 10.0), Span("B", 50.0, 50.0)]
    body = {"vehicle_id": "A", "record_count": 1, "event": "opened"}
    events = [
        {**body, "episode_id": "x", "start": "2024-01-01T00:00:05Z", "end": "2024-01-01T00:00:05Z"},
        {**body, "episode_id": "x", "start": "2024-01-01T00:00:05Z", "end": "2024-01-01T00:00:05Z"},
    ]
    spans = episode_spans(events)
    assert list(spans) == ["x"]
    base = spans["x"].start - 5.0
    shifted = [Span(f.vehicle_id, f.start + base, f.end + base) for f in faults]
    found = episode_figures(shifted, spans, messages=2, anomalous_verdicts=4, hours=2.0)
    assert (found["precision"], found["recall"], found["false_episodes"]) == (1.0, 0.5, 0)
    assert found["messages_per_anomalous_verdict"] == 0.5


def test_longer_attributions_give_the_same_episode() -> None:
    """Only each record's first three attribution entries count, however many it carries."""
    long = [
        {"feature": f, "share": s} for f, s in ((4, 0.4), (1, 0.3), (2, 0.1), (0, 0.1), (3, 0.1))
    ]
    rows = [("A", 0.0, -0.4), ("A", 10.0, -0.45), ("A", 20.0, 0.1)]
    wide = feed(EpisodeBook(RULES, SCALE), rows, attributions={0: long, 1: long})
    short = feed(EpisodeBook(RULES, SCALE), rows, attributions={0: long[:3], 1: long[:3]})
    assert wide == short
    assert [s["feature"] for s in wide[0]["leading_sensors"]] == [4, 1]
