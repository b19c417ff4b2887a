"""The worker's AsyncAPI document: generated from the code and committed in docs/."""

from __future__ import annotations

import json
from pathlib import Path

from consumer.asyncapi import document
from shared.settings import Settings

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json"


def test_committed_document_is_in_sync_with_the_code() -> None:
    """docs/asyncapi.json equals what the code generates (regenerate: python -m consumer.asyncapi)."""
    generated = json.loads(json.dumps(document(Settings.model_construct()), sort_keys=True))
    assert json.loads(COMMITTED.read_text()) == generated, (
        "docs/asyncapi.json is stale: run .venv/bin/python -m consumer.asyncapi > docs/asyncapi.json"
    )


def test_document_names_the_four_topics_and_their_schemas() -> None:
    """The raw, anomalies, alerts and dead-letter topics appear with their message schemas."""
    spec = document(Settings.model_construct())
    addresses = {channel["address"] for channel in spec["channels"].values()}
    assert addresses == {
        "telemetry.raw",
        "telemetry.anomalies",
        "telemetry.alerts",
        "telemetry.dlq",
    }
    schemas = spec["components"]["schemas"]
    assert set(schemas["TelemetryRecord"]["required"]) == {
        "vehicle_id",
        "timestamp",
        "feature_vector",
    }
    assert {"anomaly_score", "is_anomaly", "model_version", "source"} <= set(
        schemas["Verdict"]["properties"]
    )
    assert {"episode_id", "event", "record_count", "severity", "first_source"} <= set(
        schemas["AlertEvent"]["properties"]
    )


def test_document_follows_the_configured_topics() -> None:
    """Renamed topics in the settings are the channels of the document."""
    spec = document(
        Settings(
            telemetry_topic="fleet.in",
            anomaly_topic="fleet.out",
            alert_topic="fleet.alerts",
            dlq_topic="fleet.dead",
        )
    )
    assert {c["address"] for c in spec["channels"].values()} == {
        "fleet.in",
        "fleet.out",
        "fleet.alerts",
        "fleet.dead",
    }
