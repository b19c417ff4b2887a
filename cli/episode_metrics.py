"""Per-episode figures: alert episodes against injected faults.

An injected fault is caught when an episode of its vehicle overlaps it in event time (the
episode from its first anomalous record to its last, the fault from its first record to its
last); an episode that overlaps no fault is a false alert. Messages are counted as they were
sent, and episodes after de-duplication on (episode id, event, record count), as consumers
of the alerts topic are told to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.context import epoch_seconds


@dataclass(frozen=True, slots=True)
class Span:
    """One vehicle's stretch of event time, both ends included (POSIX seconds)."""

    vehicle_id: str
    start: float
    end: float

    def overlaps(self, other: Span) -> bool:
        return (
            self.vehicle_id == other.vehicle_id
            and self.start <= other.end
            and other.start <= self.end
        )


def fault_spans(records: Iterable[tuple[str, float, int | None]]) -> list[Span]:
    """The spans of the injected faults of (vehicle, time, fault number or None) records."""
    found: dict[tuple[str, int], list[float]] = {}
    for vehicle, moment, fault in records:
        if fault is None:
            continue
        bounds = found.setdefault((vehicle, fault), [moment, moment])
        bounds[0], bounds[1] = min(bounds[0], moment), max(bounds[1], moment)
    return [Span(v, lo, hi) for (v, _), (lo, hi) in sorted(found.items())]


def episode_spans(
    events: Iterable[Mapping[str, Any]], open_until: float | None = None
) -> dict[str, Span]:
    """Each episode's last known span, by id, from its events (repeats included); an episode
    not closed yet reaches ``open_until`` (the end of the stream) when given."""
    latest: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for event in events:
        ident = str(event["episode_id"])
        count = int(event["record_count"])
        rank = (count, event["event"] == "closed")
        held = latest.get(ident)
        if held is None or rank >= (held[0], held[1]["event"] == "closed"):
            latest[ident] = (count, event)
    ends = [(str(e["start"]), str(e["end"])) for _, e in latest.values()]
    times = epoch_seconds([t for pair in ends for t in pair]).tolist() if ends else []
    spans = {}
    for i, (ident, (_, event)) in enumerate(latest.items()):
        end = times[2 * i + 1]
        if open_until is not None and event["event"] != "closed":
            end = max(end, open_until)
        spans[ident] = Span(str(event["vehicle_id"]), times[2 * i], end)
    return spans


def vehicle_hours(records: Iterable[tuple[str, float]], interval_seconds: float) -> float:
    """The vehicle-hours a stream covers: each vehicle from its first record to one interval
    past its last."""
    bounds: dict[str, list[float]] = {}
    for vehicle, moment in records:
        held = bounds.setdefault(vehicle, [moment, moment])
        held[0], held[1] = min(held[0], moment), max(held[1], moment)
    return sum(hi - lo + interval_seconds for lo, hi in bounds.values()) / 3600.0


def episode_figures(
    faults: Sequence[Span],
    episodes: Mapping[str, Span],
    *,
    messages: int,
    anomalous_verdicts: int,
    hours: float,
    closed: int | None = None,
) -> dict[str, Any]:
    """Episode precision and recall, false alerts per 1,000 vehicle-hours, messages."""
    by_vehicle: dict[str, list[Span]] = {}
    for span in faults:
        by_vehicle.setdefault(span.vehicle_id, []).append(span)
    true_episodes = 0
    caught: set[Span] = set()
    for span in episodes.values():
        hits = [f for f in by_vehicle.get(span.vehicle_id, ()) if f.overlaps(span)]
        if hits:
            true_episodes += 1
            caught.update(hits)
    count = len(episodes)
    false = count - true_episodes
    found: dict[str, Any] = {
        "episodes": count,
        "faults": len(faults),
        "faults_caught": len(caught),
        "false_episodes": false,
        "precision": round(true_episodes / count, 4) if count else None,
        "recall": round(len(caught) / len(faults), 4) if faults else None,
        "false_per_1000_vehicle_hours": round(1000.0 * false / hours, 2) if hours > 0 else None,
        "vehicle_hours": round(hours, 2),
        "messages": messages,
        "messages_per_episode": round(messages / count, 2) if count else None,
        "anomalous_verdicts": anomalous_verdicts,
        "messages_per_anomalous_verdict": (
            round(messages / anomalous_verdicts, 3) if anomalous_verdicts else None
        ),
    }
    if closed is not None:
        found["closed"] = closed
    return found
