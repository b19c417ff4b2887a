# One concern, the episode rules from verdict to event, keeps this module past 300 lines.
"""Alert episodes per vehicle: verdicts in, ``opened`` / ``updated`` / ``closed`` events out.

An :class:`EpisodeBook` holds the episodes of one partition's vehicles and is fed that
partition's scored records in offset order. Everything it decides comes from the records
themselves (their flags, scores, attributions, event times and offsets), never from the wall
clock or from where batches begin, so feeding the same records again, in any batching, gives
the same events with the same ids (:func:`episode_id`).

The rules (:class:`EpisodeRules`):

* an episode **opens** at a vehicle's anomalous record when at least ``open_anomalous`` of its
  last ``open_window`` records (this one included) were anomalous, or when that record's
  severity alone reaches ``open_severity``; it starts at the earliest anomalous record of
  that window, and its id is that record's source;
* it is **updated** when its severity grade crosses into another quarter (0.25, 0.5, 0.75) or
  its set of leading sensors changes;
* it **closes** after ``close_normal`` normal records in a row, or when the vehicle has sent
  nothing for ``silence_seconds`` of event time: a record of its own that comes later than
  that, or any record of the partition whose time is past the vehicle's last by more than
  that (the partition's event time, the highest record time it has seen).

Severity is the worst record's isolation beyond the threshold, on a 0-1 scale: the forest's
raw score ``s`` (scikit-learn's ``-score_samples``, 0 to 1) is ``threshold - anomaly_score``,
and the grade is ``(s - threshold) / (1 - threshold)``, so 0 is a record just past the
threshold, 1 a record isolated at the first split of every tree, and 0.5 a record halfway
between the two.

The leading sensors are those with at least :data:`LEAD_MIN_SHARE` of the episode's summed
attribution shares (of each record's first :data:`LEAD_MAX` entries; at most :data:`LEAD_MAX`
sensors, strongest first). The severity's scale follows the model that scores each record
(:attr:`EpisodeBook.severity_scale` is set before each feed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.episode_events import (
    CLOSED,
    CLOSED_NORMAL,
    CLOSED_SILENT,
    LEAD_MAX,
    LEAD_MIN_SHARE,
    OPENED,
    SEVERITY_BANDS,
    UPDATED,
    Episode,
    Event,
    Source,
    episode_id,
    severity,
)

__all__ = [
    "CLOSED",
    "LEAD_MAX",
    "OPENED",
    "UPDATED",
    "EpisodeBook",
    "EpisodeRules",
    "Event",
    "episode_id",
    "severity",
]

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EpisodeRules:
    """When an episode opens and closes (the ``ALERT_*`` settings)."""

    open_anomalous: int = 2
    open_window: int = 5
    close_normal: int = 30
    silence_seconds: float = 600.0
    open_severity: float = 0.1  # one record this severe opens an episode on its own (1: never)

    def __post_init__(self) -> None:
        if not 1 <= self.open_anomalous <= self.open_window:
            raise ValueError("open_anomalous must be between 1 and open_window")
        if self.close_normal < 1 or not self.silence_seconds > 0:
            raise ValueError("close_normal must be >= 1 and silence_seconds > 0")


@dataclass(slots=True)
class _Vehicle:
    last_time: float
    seen: int = 0  # records since it was last idle (indexes the opening window)
    # the anomalous records of the opening window: (index, source, timestamp, score, attribution)
    pending: list[tuple[int, Source, str, float, Sequence[dict[str, Any]]]] = field(
        default_factory=list
    )
    episode: Episode | None = None


class EpisodeBook:
    """The episodes of one partition's vehicles, fed its scored records in offset order."""

    def __init__(self, rules: EpisodeRules, severity_scale: float) -> None:
        self.rules = rules
        self.severity_scale = severity_scale
        self.watermark = -np.inf  # the highest event time seen
        self._vehicles: dict[str, _Vehicle] = {}  # vehicles with something pending or open

    def open_episodes(self) -> list[Episode]:
        """The episodes open now."""
        return [v.episode for v in self._vehicles.values() if v.episode is not None]

    def feed(
        self,
        topic: str,
        partition: int,
        vehicle_ids: Sequence[str],
        timestamps: Sequence[str],
        times: Matrix,
        offsets: Sequence[int],
        scores: Matrix,
        flags: npt.NDArray[np.bool_],
        attributions: dict[int, list[dict[str, Any]]],
        model_version: str,
    ) -> list[Event]:
        """The events of these records (one partition's, in offset order), in record order."""
        events: list[Event] = []
        n = len(vehicle_ids)
        if n == 0:
            return events
        marks = np.maximum.accumulate(np.maximum(times, self.watermark)).tolist()
        vehicles = self._vehicles
        anomalous_rows = np.flatnonzero(flags).tolist()
        watched = set(vehicles)
        watched.update(vehicle_ids[i] for i in anomalous_rows)
        # only the records of vehicles with something pending or open, or anomalous now: a
        # normal record of any other vehicle changes nothing
        rows = [row for row, vehicle in enumerate(vehicle_ids) if vehicle in watched]
        if not rows:
            self.watermark = float(marks[-1])
            return events
        flagged = set(anomalous_rows)
        times_of = times.tolist()
        silence = self.rules.silence_seconds
        close_normal = self.rules.close_normal
        for row in rows:
            vehicle_id = vehicle_ids[row]
            t = times_of[row]
            state = vehicles.get(vehicle_id)
            if state is not None and marks[row] > state.last_time + silence:
                self._idle(vehicle_id, state, model_version, events)
                state = None
            anomalous = row in flagged
            if state is None:
                if not anomalous:
                    continue
                state = vehicles[vehicle_id] = _Vehicle(t)
            state.last_time = t
            episode = state.episode
            if episode is not None and not anomalous:  # the common case, inline
                state.seen += 1
                episode.since_anomalous += 1
                if episode.since_anomalous >= close_normal:
                    events.append(
                        self._event(CLOSED, episode, timestamps[row], model_version, CLOSED_NORMAL)
                    )
                    del vehicles[vehicle_id]
                continue
            self._step(
                vehicle_id,
                state,
                timestamps[row],
                (topic, partition, int(offsets[row])),
                float(scores[row]),
                anomalous,
                attributions.get(row, ()),
                model_version,
                events,
            )
        self.watermark = float(marks[-1])
        for vehicle_id, state in list(vehicles.items()):
            if self.watermark > state.last_time + silence:
                self._idle(vehicle_id, state, model_version, events)
        return events

    def _idle(self, vehicle_id: str, state: _Vehicle, version: str, events: list[Event]) -> None:
        """The vehicle went silent: its episode (if any) closes, its window empties."""
        if state.episode is not None:
            events.append(
                self._event(CLOSED, state.episode, state.episode.end, version, CLOSED_SILENT)
            )
        del self._vehicles[vehicle_id]

    def _step(
        self,
        vehicle_id: str,
        state: _Vehicle,
        timestamp: str,
        source: Source,
        score: float,
        anomalous: bool,
        attribution: Sequence[dict[str, Any]],
        version: str,
        events: list[Event],
    ) -> None:
        rules = self.rules
        state.seen += 1
        episode = state.episode
        if episode is not None:
            if not anomalous:
                episode.since_anomalous += 1
                if episode.since_anomalous >= rules.close_normal:
                    events.append(self._event(CLOSED, episode, timestamp, version, CLOSED_NORMAL))
                    del self._vehicles[vehicle_id]
                return
            episode.records += episode.since_anomalous + 1
            episode.since_anomalous = 0
            episode.anomalous += 1
            episode.end = timestamp
            if score < episode.worst_score:
                episode.worst_score, episode.worst = score, source
            _add_shares(episode, attribution)
            band, leading = self._grade(episode)
            if band != episode.band or leading != episode.leading:
                episode.band, episode.leading = band, leading
                events.append(self._event(UPDATED, episode, timestamp, version))
            return
        horizon = state.seen - rules.open_window
        pending = [p for p in state.pending if p[0] > horizon]
        if anomalous:
            pending.append((state.seen, source, timestamp, score, attribution))
        if not pending:
            del self._vehicles[vehicle_id]  # idle again: nothing in its window
            return
        state.pending = pending
        if not anomalous or (
            len(pending) < rules.open_anomalous
            and (
                rules.open_severity >= 1.0
                or severity(score, self.severity_scale) < rules.open_severity
            )
        ):
            return
        first = pending[0]
        episode = Episode(
            id=episode_id(first[1]),
            vehicle_id=vehicle_id,
            start=first[2],
            first=first[1],
            end=timestamp,
            records=state.seen - first[0] + 1,
            anomalous=len(pending),
            worst_score=first[3],
            worst=first[1],
        )
        for _, where, _, value, explained in pending:
            if value < episode.worst_score:
                episode.worst_score, episode.worst = value, where
            _add_shares(episode, explained)
        episode.band, episode.leading = self._grade(episode)
        state.episode, state.pending = episode, []
        events.append(self._event(OPENED, episode, timestamp, version))

    def _grade(self, episode: Episode) -> tuple[int, tuple[int, ...]]:
        grade = severity(episode.worst_score, self.severity_scale)
        band = min(SEVERITY_BANDS - 1, int(grade * SEVERITY_BANDS))
        return band, tuple(sorted(_leading(episode.shares)))

    def _event(
        self,
        kind: str,
        episode: Episode,
        at: str,
        version: str,
        reason: str | None = None,
    ) -> Event:
        total = sum(episode.shares.values())
        leading = tuple(
            {
                "feature": feature,
                **({"name": episode.names[feature]} if feature in episode.names else {}),
                "share": round(episode.shares[feature] / total, 4),
            }
            for feature in _leading(episode.shares)
        )
        grade = severity(episode.worst_score, self.severity_scale)
        snapshot = replace(episode, shares={}, names={})
        return Event(kind, episode.vehicle_id, at, snapshot, grade, leading, version, reason)


def _add_shares(episode: Episode, attribution: Sequence[dict[str, Any]]) -> None:
    # the first LEAD_MAX entries only: a verdict's longer list (ATTRIBUTION_TOP_K) begins with
    # them, so the episode does not depend on how many entries its verdicts carried
    for entry in attribution[:LEAD_MAX]:
        feature = int(entry["feature"])
        episode.shares[feature] = episode.shares.get(feature, 0.0) + float(entry["share"])
        if "name" in entry:
            episode.names[feature] = str(entry["name"])


def _leading(shares: dict[int, float]) -> list[int]:
    """The leading sensors, strongest first (ties: the lower feature index)."""
    total = sum(shares.values())
    if not total > 0:
        return []
    ranked = sorted(shares, key=lambda f: (-shares[f], f))
    return [f for f in ranked[:LEAD_MAX] if shares[f] / total >= LEAD_MIN_SHARE]
