"""The body of ``POST /ingest/from-topic`` and the rules it must keep beyond its schema.

:class:`TopicTrainingRequest` is the HTTP contract (its JSON schema states "either ``last``
or ``since``/``until``" as a ``oneOf``); :meth:`TopicTrainingRequest.to_spec` turns a valid
body into the core's :class:`shared.topic_training.TopicTrainingSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from api.examples import LAST_EXAMPLE, RANGE_EXAMPLE
from shared.schemas import Timestamp, parse_timestamp
from shared.topic_training import TopicTrainingSpec, window_ms
from shared.training_schemas import FeatureNames, TrainingParams


def _one_range_only(schema: dict[str, Any]) -> None:
    """The schema states the rule the validator enforces: either `last`, or `since` (+ `until`)."""
    properties = schema.get("properties", {})
    shared = {k: v for k, v in properties.items() if k in ("exclude_flagged", "params")}

    def branch(*names: str, required: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {**{n: properties[n] for n in names if n in properties}, **shared},
            "required": [required],
            "additionalProperties": False,
        }

    schema["oneOf"] = [
        branch("last", required="last"),
        branch("since", "until", required="since"),
    ]
    schema["examples"] = [LAST_EXAMPLE, RANGE_EXAMPLE]


class TopicTrainingRequest(BaseModel):
    """The body of ``POST /ingest/from-topic``: one range, and how to train."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_range_only)

    last: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        None,
        description="the newest N records of the topic (at most INGEST_TOPIC_MAX_RECORDS); "
        "not with since/until",
    )
    since: Timestamp | SkipJsonSchema[None] = Field(
        None, description="RFC 3339: the records whose Kafka timestamp is at or after this"
    )
    until: Timestamp | SkipJsonSchema[None] = Field(
        None,
        description="RFC 3339: ... and before this (default: when the job is accepted); "
        "needs since",
    )
    exclude_flagged: StrictBool = Field(
        False, description="skip the records an earlier verdict on the anomalies topic flagged"
    )
    params: TrainingParams | None = Field(None, description="as for POST /ingest")
    feature_names: FeatureNames = Field(
        None, description="as for POST /ingest: names of the features, in feature_vector order"
    )

    @field_validator("last", "since", "until", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null: leave the field out instead")
        return value

    @field_validator("last", mode="before")
    @classmethod
    def _integer(cls, value: Any) -> Any:
        # JSON Schema's integer: 5 and 5.0, not "5" or true
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        return value

    def to_spec(self) -> TopicTrainingSpec:
        """The core's spec of this body (timestamps parsed)."""
        return TopicTrainingSpec(
            last=self.last,
            since=parse_timestamp(self.since) if self.since is not None else None,
            until=parse_timestamp(self.until) if self.until is not None else None,
            exclude_flagged=self.exclude_flagged,
            params=self.params,
            feature_names=self.feature_names,
        )


@dataclass(frozen=True, slots=True)
class RequestIssue:
    """A rule of the request broken beyond its schema: which field, why, and what kind."""

    field: str
    message: str
    kind: str  # "validation-error", "invalid-range" or "too-many-records"


def request_issues(
    request: TopicTrainingRequest, *, max_records: int, now: datetime
) -> list[RequestIssue]:
    """What is wrong with ``request`` besides its fields' own types (empty when it is fine)."""
    issues = []
    if request.last is None and request.since is None:
        for name in ("last", "since"):
            issues.append(
                RequestIssue(
                    name, "give either last, or since (with an optional until)", "validation-error"
                )
            )
        return issues
    if request.last is not None:
        for name in ("since", "until"):
            if getattr(request, name) is not None:
                issues.append(
                    RequestIssue(
                        name, f"{name} does not go with last: choose one range", "validation-error"
                    )
                )
        if not issues and request.last > max_records:
            issues.append(
                RequestIssue(
                    "last",
                    f"at most {max_records} records (INGEST_TOPIC_MAX_RECORDS)",
                    "too-many-records",
                )
            )
        return issues
    since_ms, until_ms = window_ms(request.to_spec(), now)
    if until_ms <= since_ms:
        which = "until" if request.until is not None else "since"
        issues.append(
            RequestIssue(
                which,
                "until must be later than since"
                if request.until is not None
                else f"since must be in the past (now is {now.isoformat()})",
                "invalid-range",
            )
        )
    return issues
