"""Decoding a Kafka batch of raw telemetry values, the worker's hot path (msgspec).

:func:`decode_batch` turns a batch's raw values into one feature matrix plus the failures,
each with its dead-letter reason and detail; it follows the same rules as the pydantic models
of :mod:`shared.schemas` (tests hold the two to the same verdict on the same inputs).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt

from shared.errors import InvalidRecordError
from shared.schemas import (
    _TIMESTAMP_RE,
    MAX_FEATURES,
    TIMESTAMP_PATTERN,
    VEHICLE_ID_PATTERN,
    DeadLetterReason,
)

# --- msgspec decoding (the worker's hot path) ------------------------------------------------


# Two decoders of one shape. The hot path decodes with ``_fast_decoder`` (types and lengths
# only: msgspec's per-value ``pattern`` checks cost as much as the rest of the decoding) and
# checks the two strings itself, cheaply (see ``_vehicle_id_known``/``_timestamp_known``).
# Anything that fast path does not accept is decoded again by ``_decoder``, which carries
# every rule and words the dead letter's detail, so the reasons and details do not depend on
# which path a record took.


class _RecordStruct(msgspec.Struct):
    vehicle_id: Annotated[str, msgspec.Meta(pattern=VEHICLE_ID_PATTERN)]
    timestamp: Annotated[str, msgspec.Meta(pattern=TIMESTAMP_PATTERN)]
    feature_vector: Annotated[list[float], msgspec.Meta(min_length=1, max_length=MAX_FEATURES)]


class _FastRecordStruct(msgspec.Struct, gc=False):
    vehicle_id: str
    timestamp: str
    feature_vector: Annotated[list[float], msgspec.Meta(min_length=1, max_length=MAX_FEATURES)]


_decoder = msgspec.json.Decoder(_RecordStruct)
_fast_decoder = msgspec.json.Decoder(_FastRecordStruct)
_FIELD_RE = re.compile(r"(?:at `\$\.|required field `)([a-z_]+)")
# fullmatch: ``$`` alone would also match before a trailing newline
_VEHICLE_ID_RE = re.compile(VEHICLE_ID_PATTERN)
_VEHICLE_ID_DETAIL = (
    f"vehicle_id: Expected `str` matching regex {VEHICLE_ID_PATTERN!r} - at `$.vehicle_id`"
)
# The part of TIMESTAMP_PATTERN after the date, with the clock's and the zone's ranges, so a
# timestamp whose date is known valid and whose rest matches this is one that
# ``datetime.fromisoformat`` accepts (no need to call it).
_TIME_RE = re.compile(
    r"[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
# Vehicle ids and calendar dates seen valid (a fleet has few of either); bounded.
_KNOWN_LIMIT = 100_000
_known_vehicle_ids: set[str] = set()
_known_dates: set[str] = set()


def _vehicle_id_known(vehicle_id: str) -> bool:
    """Whether ``vehicle_id`` follows the contract (remembered once it did)."""
    if vehicle_id in _known_vehicle_ids:
        return True
    if _VEHICLE_ID_RE.fullmatch(vehicle_id) is None:
        return False
    if len(_known_vehicle_ids) >= _KNOWN_LIMIT:
        _known_vehicle_ids.clear()
    _known_vehicle_ids.add(vehicle_id)
    return True


def _timestamp_known(timestamp: str) -> bool:
    """Whether ``timestamp`` follows the contract; its date is remembered once valid."""
    if timestamp[:10] in _known_dates and _TIME_RE.fullmatch(timestamp, 10) is not None:
        return True
    if _TIMESTAMP_RE.fullmatch(timestamp) is None:
        return False
    try:
        datetime.fromisoformat(timestamp.upper().replace(" ", "T"))
    except ValueError:
        return False
    if len(_known_dates) >= _KNOWN_LIMIT:
        _known_dates.clear()
    _known_dates.add(timestamp[:10])
    return True


@dataclass(frozen=True, slots=True)
class Failure:
    """A record that goes to the dead-letter topic: its position in the batch and why."""

    index: int
    reason: DeadLetterReason
    detail: str


@dataclass(slots=True)
class DecodedBatch:
    """The valid records of a batch as one matrix, and the failures with their positions."""

    index: list[int] = field(default_factory=list)
    vehicle_ids: list[str] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)
    features: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    failures: list[Failure] = field(default_factory=list)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def _classify_malformed(raw: bytes) -> tuple[DeadLetterReason, str]:
    """Why msgspec refused to parse ``raw``: only runs on the failure path."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return (
            DeadLetterReason.INVALID_UTF8,
            f"value is not UTF-8: {error.reason} at byte {error.start}",
        )
    try:
        loose = json.loads(text)  # accepts NaN and Infinity, which JSON itself does not
    except ValueError as error:
        return DeadLetterReason.INVALID_JSON, f"value is not JSON: {error}"
    if _has_non_finite(loose):
        return DeadLetterReason.NON_FINITE, "feature_vector: NaN and infinities are not allowed"
    return DeadLetterReason.INVALID_JSON, "value is not valid JSON"


def _check_one(raw: bytes | None, max_bytes: int) -> _RecordStruct | tuple[DeadLetterReason, str]:
    if not raw:
        return DeadLetterReason.EMPTY, "value is empty"
    if len(raw) > max_bytes:
        return DeadLetterReason.TOO_LARGE, f"value is {len(raw)} bytes; the limit is {max_bytes}"
    try:
        record = _decoder.decode(raw)
    except msgspec.ValidationError as error:
        message = str(error)
        if message.startswith("Number out of range"):
            return DeadLetterReason.NON_FINITE, f"feature_vector: {message}"
        match = _FIELD_RE.search(message)
        prefix = f"{match.group(1)}: " if match else ""
        return DeadLetterReason.SCHEMA, prefix + message
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _classify_malformed(raw)
    except Exception as error:  # a decoder surprise must dead-letter the record, not the batch
        return DeadLetterReason.INVALID_JSON, f"value cannot be decoded: {error}"
    try:
        # msgspec has matched the RFC 3339 pattern already; this checks the calendar.
        datetime.fromisoformat(record.timestamp.upper().replace(" ", "T"))
    except ValueError as error:
        return DeadLetterReason.SCHEMA, f"timestamp: {error}"
    if _VEHICLE_ID_RE.fullmatch(record.vehicle_id) is None:  # e.g. a trailing newline
        return DeadLetterReason.SCHEMA, _VEHICLE_ID_DETAIL
    return record


def _decode_fast(raw: bytes | None, max_bytes: int) -> _FastRecordStruct | None:
    """The record when it passes every rule on the fast path, else ``None`` (no verdict)."""
    if not raw or len(raw) > max_bytes:
        return None
    try:
        record = _fast_decoder.decode(raw)
    except Exception:  # the full path words the reason
        return None
    if _vehicle_id_known(record.vehicle_id) and _timestamp_known(record.timestamp):
        return record
    return None


def decode_batch(
    values: Sequence[bytes | None], n_features: int, *, max_bytes: int = 65_536
) -> DecodedBatch:
    """Decode a batch of raw Kafka values for a model of ``n_features`` features.

    Every value ends either in the matrix (with its position in ``index``) or in
    ``failures``; none is dropped.
    """
    batch = DecodedBatch()
    index, vehicle_ids, timestamps = batch.index, batch.vehicle_ids, batch.timestamps
    flat: list[float] = []
    fast_decode = _fast_decoder.decode
    known_ids, known_dates, time_match = _known_vehicle_ids, _known_dates, _TIME_RE.fullmatch
    for position, raw in enumerate(values):
        # The fast path inline (it is _decode_fast), then the full one for anything it refuses.
        record: _FastRecordStruct | _RecordStruct | None = None
        if raw and len(raw) <= max_bytes:
            try:
                fast = fast_decode(raw)
            except Exception:
                fast = None
            if fast is not None:
                vehicle_id, timestamp = fast.vehicle_id, fast.timestamp
                if (vehicle_id in known_ids or _vehicle_id_known(vehicle_id)) and (
                    (timestamp[:10] in known_dates and time_match(timestamp, 10) is not None)
                    or _timestamp_known(timestamp)
                ):
                    record = fast
        if record is None:
            outcome = _check_one(raw, max_bytes)
            if isinstance(outcome, tuple):
                batch.failures.append(Failure(position, outcome[0], outcome[1]))
                continue
            record = outcome
        vector = record.feature_vector
        if len(vector) != n_features:
            batch.failures.append(
                Failure(
                    position,
                    DeadLetterReason.DIMENSION_MISMATCH,
                    f"feature_vector has {len(vector)} values; the model expects {n_features}",
                )
            )
            continue
        index.append(position)
        vehicle_ids.append(record.vehicle_id)
        timestamps.append(record.timestamp)
        flat.extend(vector)
    batch.features = np.array(flat, dtype=np.float64).reshape(len(index), n_features)
    return batch


def decode_record(raw: bytes, *, max_bytes: int = 65_536) -> tuple[str, str, list[float]]:
    """Decode one raw value, raising :class:`InvalidRecordError` with the dead-letter reason."""
    fast = _decode_fast(raw, max_bytes)
    if fast is not None:
        return fast.vehicle_id, fast.timestamp, fast.feature_vector
    outcome = _check_one(raw, max_bytes)
    if isinstance(outcome, tuple):
        raise InvalidRecordError(outcome[0].value, outcome[1])
    return outcome.vehicle_id, outcome.timestamp, outcome.feature_vector
