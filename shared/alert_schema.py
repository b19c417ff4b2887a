"""The wire format of an alert event on ``ALERT_TOPIC`` (the document's schema; the worker
writes the same fields with :meth:`shared.episodes.Event.encode`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas import SourceRef

ALERT_EXAMPLE: dict[str, Any] = {
    "event": "opened",
    "episode_id": "telemetry.raw-3-1842",
    "vehicle_id": "VH-002",
    "start": "2024-01-15T10:05:00Z",
    "end": "2024-01-15T10:05:20Z",
    "at": "2024-01-15T10:05:20Z",
    "record_count": 3,
    "anomalous_records": 2,
    "worst_score": -0.082,
    "severity": 0.1353,
    "leading_sensors": [{"feature": 3, "name": "coolant_temp", "share": 0.81}],
    "model_version": "20240115100000",
    "first_source": {"topic": "telemetry.raw", "partition": 3, "offset": 1842},
    "worst_source": {"topic": "telemetry.raw", "partition": 3, "offset": 1856},
}


class LeadingSensor(BaseModel):
    """A sensor that leads an episode's attribution."""

    feature: int = Field(description="index in feature_vector")
    name: str | None = Field(None, description="the feature's name, when the model has names")
    share: float = Field(description="its share of the episode's summed attribution shares, 0..1")


class AlertEvent(BaseModel):
    """An alert episode as it stood at one record: opened, updated or closed."""

    model_config = ConfigDict(json_schema_extra={"examples": [ALERT_EXAMPLE]})

    event: Literal["opened", "updated", "closed"]
    episode_id: str = Field(
        description="<topic>-<partition>-<offset> of the episode's first record: the same after "
        "a replay; de-duplicate on (episode_id, event, record_count)"
    )
    vehicle_id: str
    start: str = Field(description="the timestamp of the episode's first anomalous record")
    end: str = Field(description="the timestamp of its last anomalous record so far")
    at: str = Field(description="the timestamp of the record that made this event")
    record_count: int = Field(description="records from the first anomalous one to the last")
    anomalous_records: int
    worst_score: float = Field(description="the lowest anomaly_score of the episode")
    severity: float = Field(
        description="0..1: the worst record's isolation between the threshold (0) and the most "
        "isolated possible (1); 0.5 is halfway"
    )
    leading_sensors: list[LeadingSensor]
    model_version: str
    first_source: SourceRef
    worst_source: SourceRef
    reason: Literal["normal", "silent"] | None = Field(
        None,
        description="closed only: normal (ALERT_CLOSE_NORMAL normal records in a row) or silent "
        "(nothing from the vehicle for ALERT_SILENCE_SECONDS of event time)",
    )
