"""The body of POST /ingest/from-topic: its fields' own rules, the rules beyond its schema, its
JSON schema's oneOf, and the core spec it becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from api.topic_request import TopicTrainingRequest, request_issues
from shared.topic_training import TopicTrainingSpec, window_ms
from shared.training_schemas import TrainingParams

NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def _issues(body: dict[str, Any], max_records: int = 1000) -> list[tuple[str, str]]:
    request = TopicTrainingRequest.model_validate(body)
    return [(i.field, i.kind) for i in request_issues(request, max_records=max_records, now=NOW)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"last": 10}, []),
        ({"last": 1000}, []),
        ({"since": "2024-01-14T00:00:00Z"}, []),
        ({"since": "2024-01-14T00:00:00Z", "until": "2024-01-15T00:00:00+01:00"}, []),
        ({}, [("last", "validation-error"), ("since", "validation-error")]),
        ({"exclude_flagged": True}, [("last", "validation-error"), ("since", "validation-error")]),
        (
            {"until": "2024-01-15T00:00:00Z"},
            [("last", "validation-error"), ("since", "validation-error")],
        ),
        ({"last": 5, "since": "2024-01-14T00:00:00Z"}, [("since", "validation-error")]),
        ({"last": 5, "until": "2024-01-14T00:00:00Z"}, [("until", "validation-error")]),
        ({"last": 1001}, [("last", "too-many-records")]),
        (
            {"since": "2024-01-15T00:00:00Z", "until": "2024-01-15T00:00:00Z"},
            [("until", "invalid-range")],
        ),
        (
            {"since": "2024-01-15T00:00:00Z", "until": "2024-01-14T23:59:59Z"},
            [("until", "invalid-range")],
        ),
        ({"since": "2024-01-15T13:00:00Z"}, [("since", "invalid-range")]),
    ],
)
def test_request_rules_beyond_the_schema(
    body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """Exactly one range; until after since; last within INGEST_TOPIC_MAX_RECORDS."""
    assert _issues(body) == expected


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"last": 0}, "last"),
        ({"last": "10"}, "last"),
        ({"last": True}, "last"),
        ({"last": 2.5}, "last"),
        ({"last": None}, "last"),
        ({"since": None}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-02-30T00:00:00Z"}, "since"),
        ({"since": "2024-01-14T00:00:00"}, "since"),
        ({"last": 5, "exclude_flagged": "yes"}, "exclude_flagged"),
        ({"last": 5, "params": {"n_estimators": 0}}, "params"),
        ({"last": 5, "params": {"trees": 3}}, "params"),
        ({"last": 5, "topic": "other"}, "topic"),
    ],
)
def test_request_field_errors(body: dict[str, Any], field: str) -> None:
    """Each field's own rules (types are strict: JSON's, not Python's coercions)."""
    with pytest.raises(ValidationError) as caught:
        TopicTrainingRequest.model_validate(body)
    assert any(str(error["loc"][0]) == field for error in caught.value.errors())


def test_a_whole_float_is_an_integer() -> None:
    """JSON Schema's integer includes 5.0: the schema and the validator agree."""
    assert TopicTrainingRequest.model_validate({"last": 5.0}).last == 5


def test_the_body_becomes_the_cores_window() -> None:
    """The body's RFC 3339 since/until become the spec's window in epoch milliseconds."""
    request = TopicTrainingRequest.model_validate(
        {"since": "2024-01-15T10:00:00.0004Z", "until": "2024-01-15T11:00:00+01:00"}
    )
    since, until = window_ms(request.to_spec(), NOW)
    assert since == int(datetime(2024, 1, 15, 10, tzinfo=UTC).timestamp() * 1000) + 1
    assert until == int(datetime(2024, 1, 15, 10, tzinfo=UTC).timestamp() * 1000)
    default = TopicTrainingRequest.model_validate({"since": "2024-01-15T10:00:00Z"})
    assert window_ms(default.to_spec(), NOW)[1] == NOW_MS


def test_the_schema_says_one_range() -> None:
    """The JSON schema's oneOf holds the two closed shapes, with examples."""
    schema = TopicTrainingRequest.model_json_schema()
    shapes = [set(branch["properties"]) for branch in schema["oneOf"]]
    assert shapes == [
        {"last", "exclude_flagged", "params"},
        {"since", "until", "exclude_flagged", "params"},
    ]
    assert all(branch["additionalProperties"] is False for branch in schema["oneOf"])
    assert schema["properties"]["last"] == {
        "default": None,
        "description": schema["properties"]["last"]["description"],
        "minimum": 1,
        "title": "Last",
        "type": "integer",
    }
    assert schema["examples"]


def test_a_body_becomes_the_cores_spec() -> None:
    """to_spec parses the timestamps and carries the training parameters unchanged."""
    request = TopicTrainingRequest.model_validate(
        {
            "since": "2024-01-14T00:00:00Z",
            "exclude_flagged": True,
            "params": {"n_estimators": 7},
            "feature_names": ["a", "b"],
        }
    )
    assert request.to_spec() == TopicTrainingSpec(
        since=datetime(2024, 1, 14, tzinfo=UTC),
        exclude_flagged=True,
        params=TrainingParams(n_estimators=7),
        feature_names=["a", "b"],
    )
    assert TopicTrainingRequest.model_validate({"last": 3}).to_spec() == TopicTrainingSpec(last=3)
