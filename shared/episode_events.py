"""An alert episode and its events: the episode's fields, its id, its severity grade, and the
JSON an event is published as (the rules that make them are :mod:`shared.episodes`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

Source = tuple[str, int, int]  # topic, partition, offset

LEAD_MIN_SHARE = 0.2
LEAD_MAX = 3
SEVERITY_BANDS = 4  # an update when the grade enters another quarter

OPENED, UPDATED, CLOSED = "opened", "updated", "closed"
CLOSED_NORMAL, CLOSED_SILENT = "normal", "silent"

_encoder = msgspec.json.Encoder()


def episode_id(source: Source) -> str:
    """The stable id of an episode that started at ``source``: ``<topic>-<partition>-<offset>``."""
    topic, partition, offset = source
    return f"{topic}-{partition}-{offset}"


def severity(score: float, scale: float) -> float:
    """The 0-1 grade of an ``anomaly_score``; ``scale`` is ``1 - threshold`` (see the module)."""
    if not scale > 0:
        return 0.0
    return float(min(1.0, max(0.0, -score / scale)))


@dataclass(slots=True)
class Episode:
    """An open episode of one vehicle."""

    id: str
    vehicle_id: str
    start: str
    first: Source
    end: str
    records: int  # from its first anomalous record to its last one
    anomalous: int
    worst_score: float
    worst: Source
    shares: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    band: int = 0
    leading: tuple[int, ...] = ()
    since_anomalous: int = 0  # records after its last anomalous one (the normal run)


@dataclass(frozen=True, slots=True)
class Event:
    """One message of the alerts topic: an episode as it stood at one record."""

    kind: str
    vehicle_id: str
    at: str  # the timestamp of the record that made the event
    episode: Episode
    severity: float
    leading: tuple[dict[str, Any], ...]
    model_version: str
    reason: str | None = None

    def encode(self) -> bytes:
        """The event's JSON bytes (see ``docs/alerts.md``)."""
        e = self.episode
        body: dict[str, Any] = {
            "event": self.kind,
            "episode_id": e.id,
            "vehicle_id": e.vehicle_id,
            "start": e.start,
            "end": e.end,
            "at": self.at,
            "record_count": e.records,
            "anomalous_records": e.anomalous,
            "worst_score": e.worst_score,
            "severity": round(self.severity, 4),
            "leading_sensors": list(self.leading),
            "model_version": self.model_version,
            "first_source": _source(e.first),
            "worst_source": _source(e.worst),
        }
        if self.reason is not None:
            body["reason"] = self.reason
        return _encoder.encode(body)


def _source(where: Source) -> dict[str, Any]:
    return {"topic": where[0], "partition": where[1], "offset": where[2]}
