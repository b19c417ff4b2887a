"""The project's exceptions, one small hierarchy, and the one table that maps them.

    VehicleAnomalyError
    ├── ConfigurationError          a setting is missing or invalid (the service does not start)
    ├── InvalidRecordError          one telemetry record breaks the contract (DLQ reason / HTTP 422)
    │   └── DimensionMismatchError  the record's feature count differs from the model's (or a
    │                               /score history record's from the record's)
    ├── TrainingError               training data cannot make a model (HTTP 422)
    ├── RegistryError               the model registry cannot do what was asked (HTTP 503)
    │   ├── PointerFileError        LATEST or CANDIDATE names no version (bad bytes, not a name)
    │   ├── ModelNotFoundError      no such version (HTTP 404)
    │   │   └── NoActiveModelError  no active model yet (HTTP 404)
    │   ├── ModelIntegrityError     checksum or signature refused; the artifact is not loaded
    │   ├── ModelInUseError         the active version cannot be deleted (HTTP 409)
    │   └── NotCandidateError       the version is not the shadow candidate (HTTP 409)
    ├── ReportError                 a report about a version cannot be made
    │   └── NoDriftReferenceError   the version was trained without a drift reference (HTTP 409)
    └── TopicTrainingError          a job training from the raw topic cannot go on
        ├── TopicNotFoundError      a topic it reads does not exist (HTTP 503)
        ├── KafkaUnavailableError   Kafka cannot be reached or read (HTTP 503)
        ├── TooManyRecordsError     the range holds more than a job may read (HTTP 422)
        ├── JobsBusyError           the replica runs as many jobs as it may (HTTP 429)
        ├── JobTimeoutError         reading and waiting took longer than allowed (HTTP 504)
        ├── JobInterruptedError     the replica running it stopped (HTTP 503)
        └── JobAbandonedError       the replica running it stopped reporting (HTTP 503)

:data:`ERROR_TABLE` maps each class to its HTTP status, problem type and (where one applies)
dead-letter reason; :func:`error_kind` looks an error up by class, walking its MRO, so
rewording a message never changes a public problem ``type``. The api answers problem+json
from it, a topic job writes it into its report, and the worker's dead letters carry an
``InvalidRecordError``'s ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROBLEM_TYPE_PREFIX = "urn:vehicle-anomaly:problem:"


def problem_type(slug: str) -> str:
    """The problem ``type`` URI of ``slug`` (e.g. ``training-rejected``)."""
    return PROBLEM_TYPE_PREFIX + slug


class VehicleAnomalyError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigurationError(VehicleAnomalyError):
    """A setting is missing or invalid; the message names the variable."""


class InvalidRecordError(VehicleAnomalyError):
    """A telemetry record that breaks the contract.

    ``reason`` is the short machine-readable dead-letter reason, ``field`` the field at
    fault (``None`` when the record as a whole is at fault), ``detail`` the human text.
    """

    def __init__(self, reason: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.field = field


class DimensionMismatchError(InvalidRecordError):
    """The record's feature vector has another length than the model was trained on."""

    def __init__(
        self,
        got: int,
        expected: int,
        *,
        field: str = "feature_vector",
        against: str = "the model expects",
    ) -> None:
        super().__init__(
            "dimension_mismatch", f"{field} has {got} values; {against} {expected}", field
        )
        self.got = got
        self.expected = expected


class TrainingError(VehicleAnomalyError):
    """Training data that cannot make a model (too few records, mixed dimensions)."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class RegistryError(VehicleAnomalyError):
    """The model registry cannot do what was asked."""


class PointerFileError(RegistryError):
    """``LATEST`` or ``CANDIDATE`` holds something that is not a version name."""


class ModelNotFoundError(RegistryError):
    """No such model version."""


class NoActiveModelError(ModelNotFoundError):
    """No model has been activated yet (nothing was trained)."""


class ModelIntegrityError(RegistryError):
    """An artifact failed its checksum or signature check and was not loaded."""


class ModelInUseError(RegistryError):
    """The active version cannot be deleted."""


class NotCandidateError(RegistryError):
    """The version is not the shadow candidate, so there is no shadowing of it to stop."""


class ReportError(VehicleAnomalyError):
    """A report about a model version cannot be made."""


class NoDriftReferenceError(ReportError):
    """The version was trained without a drift reference: there is nothing to compare with."""


class TopicTrainingError(VehicleAnomalyError):
    """A job training from the raw topic cannot go on; ``detail`` says why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TopicNotFoundError(TopicTrainingError):
    """A topic the job reads does not exist on Kafka."""


class KafkaUnavailableError(TopicTrainingError):
    """Kafka cannot be reached, or reading from it failed."""


class TooManyRecordsError(TopicTrainingError):
    """The range holds more records than one job may read."""


class JobsBusyError(TopicTrainingError):
    """This replica already runs as many jobs as it may; retry after ``retry_after_seconds``."""

    def __init__(self, detail: str, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class JobTimeoutError(TopicTrainingError):
    """Reading the topic and waiting for a training slot took longer than allowed."""


class JobInterruptedError(TopicTrainingError):
    """The replica running the job stopped before the job ended."""


class JobAbandonedError(TopicTrainingError):
    """The replica running the job stopped reporting on it (it was stopped or crashed)."""


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How an error class is answered: HTTP status, problem type and dead-letter reason.

    ``title`` is the problem's title in a job report (a synchronous answer takes the HTTP
    status phrase); ``dead_letter`` is ``None`` where the error is no record's fault.
    """

    status: int
    slug: str
    title: str
    dead_letter: str | None = None

    @property
    def type(self) -> str:
        """The problem ``type`` URI."""
        return problem_type(self.slug)


# An InvalidRecordError's dead-letter reason is its own ``reason`` (empty, schema, ...).
ERROR_TABLE: Mapping[type[Exception], ErrorKind] = {
    InvalidRecordError: ErrorKind(422, "validation-error", "Invalid record"),
    DimensionMismatchError: ErrorKind(
        422, "dimension-mismatch", "Dimension mismatch", "dimension_mismatch"
    ),
    TrainingError: ErrorKind(422, "training-rejected", "Training rejected"),
    RegistryError: ErrorKind(503, "registry-unavailable", "Registry unavailable"),
    ModelNotFoundError: ErrorKind(404, "model-not-found", "Model not found"),
    NoActiveModelError: ErrorKind(404, "no-active-model", "No active model"),
    ModelIntegrityError: ErrorKind(409, "model-integrity", "Model refused"),
    ModelInUseError: ErrorKind(409, "model-in-use", "Model in use"),
    NotCandidateError: ErrorKind(409, "not-candidate", "Not the candidate"),
    NoDriftReferenceError: ErrorKind(409, "no-drift-reference", "No drift reference"),
    TopicNotFoundError: ErrorKind(503, "topic-not-found", "Topic not found"),
    KafkaUnavailableError: ErrorKind(503, "kafka-unavailable", "Kafka unavailable"),
    TooManyRecordsError: ErrorKind(422, "too-many-records", "Too many records"),
    JobsBusyError: ErrorKind(429, "jobs-busy", "Jobs busy"),
    JobTimeoutError: ErrorKind(504, "job-timeout", "Job timed out"),
    JobInterruptedError: ErrorKind(503, "job-interrupted", "Job interrupted"),
    JobAbandonedError: ErrorKind(503, "job-abandoned", "Job abandoned"),
}

# Any other exception: a failure of ours, never explained to the caller.
INTERNAL_ERROR = ErrorKind(500, "internal-error", "Internal Server Error")


def error_kind(error: BaseException | type[BaseException]) -> ErrorKind:
    """The table's entry for ``error``'s class or its nearest ancestor in the table."""
    cls = error if isinstance(error, type) else type(error)
    for ancestor in cls.__mro__:
        kind = ERROR_TABLE.get(ancestor)
        if kind is not None:
            return kind
    return INTERNAL_ERROR


def dead_letter_reason(error: BaseException) -> str | None:
    """The dead-letter reason of ``error`` (``None``: it is no record's fault)."""
    if isinstance(error, InvalidRecordError):
        return error.reason
    return error_kind(error).dead_letter
