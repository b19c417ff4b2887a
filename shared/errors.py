"""The project's exceptions, one small hierarchy.

    VehicleAnomalyError
    ├── ConfigurationError          a setting is missing or invalid (the service does not start)
    ├── InvalidRecordError          one telemetry record breaks the contract (DLQ reason / HTTP 422)
    │   └── DimensionMismatchError  the record's feature count differs from the model's
    ├── TrainingError               training data cannot make a model (HTTP 422)
    └── RegistryError               the model registry cannot do what was asked
        ├── ModelNotFoundError      no such version, or no active model yet (HTTP 404)
        ├── ModelIntegrityError     checksum or signature refused; the artifact is not loaded
        └── ModelInUseError         the active version cannot be deleted (HTTP 409)

The worker maps an ``InvalidRecordError`` to a dead letter with ``reason`` as its ``error``
header; the api maps every class to a problem+json answer.
"""

from __future__ import annotations


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

    def __init__(self, got: int, expected: int) -> None:
        super().__init__(
            "dimension_mismatch",
            f"feature_vector has {got} values; the model expects {expected}",
            "feature_vector",
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


class ModelNotFoundError(RegistryError):
    """No such model version, or no active model yet."""


class ModelIntegrityError(RegistryError):
    """An artifact failed its checksum or signature check and was not loaded."""


class ModelInUseError(RegistryError):
    """The active version cannot be deleted."""
