"""`evaluate`'s per-episode figures: the alert episodes of a replay against its injected faults.

Through the pipeline, the episodes are the events the worker published on the alerts topic
for the replayed records (an event belongs to the replay when its first record is one of
ours); offline, the records' scores go through :class:`shared.episodes.EpisodeBook` with the
``ALERT_*`` settings, as one partition. An injected fault is caught when an episode of its
vehicle overlaps it; an episode overlapping no fault is a false alert; an episode still open
at the end of the replay reaches its end. See :mod:`cli.episode_metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from cli.episode_metrics import episode_figures, episode_spans, fault_spans, vehicle_hours
from cli.evaluate_input import Item
from shared.settings import Settings


def typical_interval(vehicles: Sequence[str], times: npt.NDArray[np.float64]) -> float:
    """The median time between two records of one vehicle (1 s when nothing tells)."""
    last: dict[str, float] = {}
    gaps = []
    for vehicle, moment in zip(vehicles, times.tolist(), strict=True):
        if vehicle in last and moment > last[vehicle]:
            gaps.append(moment - last[vehicle])
        last[vehicle] = moment
    return float(np.median(gaps)) if gaps else 1.0


def report(
    items: Sequence[Item], events: Sequence[dict[str, Any]], anomalous_verdicts: int
) -> dict[str, Any]:
    """The episode figures of a replay's alert events (repeats included, as sent)."""
    from shared.context import epoch_seconds

    vehicles = [str(i.record.get("vehicle_id", "")) for i in items]
    times = epoch_seconds([str(i.record.get("timestamp", "")) for i in items])
    faults = fault_spans(zip(vehicles, times.tolist(), (i.episode for i in items), strict=True))
    hours = vehicle_hours(
        zip(vehicles, times.tolist(), strict=True), typical_interval(vehicles, times)
    )
    end = float(times.max()) if len(times) else None
    return episode_figures(
        faults,
        episode_spans(events, open_until=end),
        messages=len(events),
        anomalous_verdicts=anomalous_verdicts,
        hours=hours,
        closed=sum(1 for e in events if e.get("event") == "closed"),
    )


def offline_events(
    estimator: Any, items: Sequence[Item], scores: npt.NDArray[np.float64], settings: Settings
) -> list[dict[str, Any]] | None:
    """The events of the scores through an episode book (``None`` for a point model)."""
    from shared.context import ContextForest, epoch_seconds
    from shared.episodes import EpisodeBook, EpisodeRules

    if not isinstance(estimator, ContextForest):
        return None
    rules = EpisodeRules(
        open_anomalous=settings.alert_open_anomalous,
        open_window=settings.alert_open_window,
        close_normal=settings.alert_close_normal,
        silence_seconds=settings.alert_silence_seconds,
        open_severity=settings.alert_open_severity,
    )
    book = EpisodeBook(rules, 1.0 + float(estimator.forest_.offset_))
    stamps = [str(i.record.get("timestamp", "")) for i in items]
    found = book.feed(
        "offline",
        0,
        [str(i.record.get("vehicle_id", "")) for i in items],
        stamps,
        epoch_seconds(stamps),
        range(len(items)),
        scores,
        scores < 0,
        {},
        "offline",
    )
    return [json.loads(e.encode()) for e in found]


def print_episodes(found: dict[str, Any]) -> None:
    """The episode figures as a few lines of the printed report."""
    precision, recall = found["precision"], found["recall"]
    print()
    print(
        f"alert episodes       {found['episodes']:,} ({found.get('closed', 0):,} closed), "
        f"{found['faults_caught']}/{found['faults']} faults caught"
    )
    print(
        "episode precision    "
        + (f"{precision:.3f}" if precision is not None else "-")
        + "   recall "
        + (f"{recall:.3f}" if recall is not None else "-")
    )
    rate = found["false_per_1000_vehicle_hours"]
    print(
        f"false alerts         {found['false_episodes']:,}"
        + (f" ({rate:.1f} per 1,000 vehicle-hours)" if rate is not None else "")
    )
    per_episode, per_verdict = (
        found["messages_per_episode"],
        found["messages_per_anomalous_verdict"],
    )
    print(
        f"alert messages       {found['messages']:,}"
        + (f", {per_episode:.2f} per episode" if per_episode is not None else "")
        + (f", {per_verdict:.3f} per anomalous verdict" if per_verdict is not None else "")
    )


def ours(
    value: bytes | None, raw_topic: str, where: dict[tuple[int, int], int]
) -> dict[str, Any] | None:
    """An alert event read from the topic, when its first record is one of the replay's."""
    try:
        event = json.loads(value or b"")
        first = event["first_source"]
        key = (int(first["partition"]), int(first["offset"]))
    except (TypeError, ValueError, KeyError):
        return None
    if first.get("topic") != raw_topic or key not in where:
        return None
    return event if isinstance(event, dict) else None
