"""The error table: every error class maps by class (walking its MRO) to a status, a public
problem type and, for a record's fault, a dead-letter reason."""

from __future__ import annotations

import inspect

import pytest

import shared.errors as errors
from shared.errors import (
    ERROR_TABLE,
    INTERNAL_ERROR,
    DimensionMismatchError,
    InvalidRecordError,
    ModelNotFoundError,
    NoActiveModelError,
    RegistryError,
    VehicleAnomalyError,
    dead_letter_reason,
    error_kind,
    problem_type,
)


def _classes() -> list[type[VehicleAnomalyError]]:
    return [
        value
        for _, value in inspect.getmembers(errors, inspect.isclass)
        if issubclass(value, VehicleAnomalyError)
    ]


def test_every_class_is_drawn_in_the_docstring() -> None:
    """The tree in the module's docstring names every error class."""
    assert errors.__doc__ is not None
    for cls in _classes():
        assert cls.__name__ in errors.__doc__, cls.__name__


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (InvalidRecordError("schema", "bad"), 422, "validation-error"),
        (DimensionMismatchError(2, 3), 422, "dimension-mismatch"),
        (errors.TrainingError("too few"), 422, "training-rejected"),
        (RegistryError("disk"), 503, "registry-unavailable"),
        (ModelNotFoundError("no model at all, says the message"), 404, "model-not-found"),
        (NoActiveModelError("whatever the wording"), 404, "no-active-model"),
        (errors.ModelIntegrityError("x"), 409, "model-integrity"),
        (errors.ModelInUseError("x"), 409, "model-in-use"),
        (errors.NotCandidateError("x"), 409, "not-candidate"),
        (errors.NoDriftReferenceError("x"), 409, "no-drift-reference"),
        (errors.TopicNotFoundError("x"), 503, "topic-not-found"),
        (errors.KafkaUnavailableError("x"), 503, "kafka-unavailable"),
        (errors.TooManyRecordsError("x"), 422, "too-many-records"),
        (errors.JobsBusyError("x", 10), 429, "jobs-busy"),
        (errors.JobTimeoutError("x"), 504, "job-timeout"),
        (errors.JobInterruptedError("x"), 503, "job-interrupted"),
        (errors.JobAbandonedError("x"), 503, "job-abandoned"),
        (ValueError("not ours"), 500, "internal-error"),
    ],
)
def test_an_error_maps_by_its_class(error: Exception, status: int, slug: str) -> None:
    """The status and public problem type follow the class, never the message."""
    kind = error_kind(error)
    assert (kind.status, kind.slug) == (status, slug)
    assert kind.type == f"urn:vehicle-anomaly:problem:{slug}"


def test_a_subclass_without_an_entry_takes_its_nearest_ancestors() -> None:
    """An unlisted subclass is answered as the closest listed class in its MRO."""

    class Unlisted(NoActiveModelError):
        pass

    assert error_kind(Unlisted("x")) is ERROR_TABLE[NoActiveModelError]
    assert error_kind(VehicleAnomalyError("x")) is INTERNAL_ERROR


def test_dead_letter_reasons_are_the_records_own() -> None:
    """A record's fault carries its reason; errors that are no record's fault carry none."""
    assert dead_letter_reason(InvalidRecordError("invalid_json", "x")) == "invalid_json"
    assert dead_letter_reason(DimensionMismatchError(1, 2)) == "dimension_mismatch"
    assert ERROR_TABLE[DimensionMismatchError].dead_letter == "dimension_mismatch"
    assert dead_letter_reason(RegistryError("x")) is None


def test_the_prefix_is_written_once() -> None:
    """problem_type joins the one prefix and a slug."""
    assert problem_type("jobs-busy") == "urn:vehicle-anomaly:problem:jobs-busy"
